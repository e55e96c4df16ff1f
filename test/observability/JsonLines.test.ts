/**
 * The batched JSON-lines logger writes what Logger.consoleJson writes — one
 * JSON object per line, same members — only later and in one write: the
 * lines of a turn of the event loop leave together.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as JsonLines from "../../src/observability/JsonLines.ts"
import { writtenToStdout as written } from "../support/Stdout.ts"

describe("JsonLines", () => {
  it.effect("lines have Logger.consoleJson's members and leave in one write", () =>
    Effect.gen(function* () {
      const chunks = yield* written(
        Effect.gen(function* () {
          yield* Effect.logInfo("first").pipe(Effect.annotateLogs({ requestId: "r-1", status: 409 }))
          yield* Effect.logWarning("second", { detail: true }).pipe(Effect.withLogSpan("work"))
        }).pipe(Effect.provide(JsonLines.layer))
      )
      assert.lengthOf(chunks, 1, "one write for the turn")
      const lines = chunks[0]!
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line))
      assert.lengthOf(lines, 2)
      const [first, second] = lines
      assert.deepStrictEqual(Object.keys(first), ["message", "level", "timestamp", "annotations", "spans", "fiberId"])
      assert.strictEqual(first.message, "first")
      assert.strictEqual(first.level, "INFO")
      assert.strictEqual(new Date(first.timestamp).toISOString(), first.timestamp)
      assert.deepStrictEqual(first.annotations, { requestId: "r-1", status: 409 })
      assert.match(first.fiberId, /^#\d+$/)
      assert.deepStrictEqual(second.message, ["second", { detail: true }])
      assert.strictEqual(second.level, "WARN")
      assert.isNumber(second.spans.work)
    })
  )

  it.effect("a value JSON.stringify refuses (a BigInt) still makes a line", () =>
    Effect.gen(function* () {
      const chunks = yield* written(Effect.logInfo("big", 10n).pipe(Effect.provide(JsonLines.layer)))
      const line = JSON.parse(chunks.join("").trimEnd())
      assert.strictEqual(line.level, "INFO")
      assert.include(JSON.stringify(line.message), "10")
    })
  )
})
