/**
 * `formulas`: the command tree, run with the exit codes DESIGN.md gives —
 * 0 success, 1 a failure the user can fix (bad input, 4xx), 2 usage,
 * 3 the service unreachable or failing (5xx), 130 interrupted (Ctrl-C).
 * bin/formulas.js checks the Node version and loads this module.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Effect, Exit } from "effect"
import { CliError, Command } from "effect/cli"
import packageJson from "../../package.json" with { type: "json" }
import { get, list, submit } from "./FormulaCommands.ts"
import { importCommand } from "./ImportCommand.ts"
import { menu } from "./MenuCommand.ts"
import { queue } from "./QueueCommands.ts"
import { root } from "./Root.ts"
import { serve } from "./ServeCommand.ts"
import { webhooks } from "./WebhookCommands.ts"

export const formulas = root.pipe(
  Command.withSubcommands([submit, get, list, importCommand, menu, queue, webhooks, serve])
)

/** The exit code of a failed run, and the message a person needs (none when help was already shown). */
const failureOf = (cause: Cause.Cause<unknown>): { readonly code: number; readonly message?: string } => {
  if (Cause.hasInterruptsOnly(cause)) return { code: 130 }
  const error = Cause.squash(cause)
  if (CliError.isCliError(error)) {
    // The parser already printed the help and its errors; help asked for is not a failure.
    return { code: error._tag === "ShowHelp" && error.errors.length === 0 ? 0 : 2 }
  }
  if (typeof error === "object" && error !== null && "exitCode" in error && typeof error.exitCode === "number") {
    return { code: error.exitCode, message: (error as unknown as Error).message }
  }
  return { code: 1, message: Cause.pretty(cause) }
}

export const run = (argv: ReadonlyArray<string>) =>
  Command.runWith(formulas, { version: packageJson.version })(argv).pipe(
    Effect.scoped,
    Effect.provide(NodeServices.layer),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      teardown: (exit, onExit) => {
        if (Exit.isSuccess(exit)) return onExit(0)
        const { code, message } = failureOf(exit.cause)
        if (message !== undefined) process.stderr.write(`error: ${message}\n`)
        onExit(code)
      }
    })
  )
