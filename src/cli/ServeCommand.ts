/**
 * `formulas serve`: the service itself, started exactly as `node src/main.ts`
 * starts it (settings checked before anything else loads, the same messages
 * and exit codes). bin/formulas.js takes a shortcut for a plain
 * `formulas serve` and loads src/main.ts without the CLI's modules, so
 * `npm start` starts as fast as before; this command is what `--help` shows,
 * and the path taken when flags come first (`formulas --url … serve`).
 */
import { Effect } from "effect"
import { Command } from "effect/cli"

export const serve = Command.make("serve", {}, () =>
  // The server runs its own main fiber and handles its own signals; this command's fiber waits forever
  // so the CLI's runtime does not exit underneath it.
  Effect.promise(() => import("../main.ts")).pipe(Effect.andThen(Effect.never))
).pipe(
  Command.withDescription(
    "Run the formula service (what `npm start` runs): configured by environment variables (PORT, DATABASE_URL, …; see README)"
  )
)
