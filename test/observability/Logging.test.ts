/**
 * The process logger: LOG_LEVEL filters, LOG_FORMAT=json writes one JSON
 * object per line (what log collectors and test/process read).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Logging from "../../src/observability/Logging.ts"
import { writtenToStdout } from "../support/Stdout.ts"

/** The lines written to stdout while `effect` ran. */
const capture = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(writtenToStdout(effect), (chunks) =>
    chunks
      .join("")
      .split("\n")
      .filter((line) => line !== "")
  )

describe("Logging.layer", () => {
  it.effect("json: one object per line, below the level dropped", () =>
    Effect.gen(function* () {
      const lines = yield* capture(
        Effect.gen(function* () {
          yield* Effect.logDebug("hidden")
          yield* Effect.logInfo("listening on http://127.0.0.1:1").pipe(Effect.annotateLogs({ address: "x" }))
          yield* Effect.logWarning("careful")
        }).pipe(Effect.provide(Logging.layer({ level: "Info", format: "json" })))
      )
      const entries = lines.map((line) => JSON.parse(line))
      assert.deepStrictEqual(
        entries.map((entry) => [entry.level, entry.message]),
        [
          ["INFO", "listening on http://127.0.0.1:1"],
          ["WARN", "careful"]
        ]
      )
      assert.deepStrictEqual(entries[0].annotations, { address: "x" })
    })
  )

  it.effect("LOG_LEVEL=error keeps only errors", () =>
    Effect.gen(function* () {
      const lines = yield* capture(
        Effect.gen(function* () {
          yield* Effect.logInfo("shutting down")
          yield* Effect.logError("PORT=1: in use")
        }).pipe(Effect.provide(Logging.layer({ level: "Error", format: "json" })))
      )
      assert.deepStrictEqual(
        lines.map((line) => JSON.parse(line).message),
        ["PORT=1: in use"]
      )
    })
  )
})
