/**
 * Group commit's own promises, with a fake writer (no database): batches form
 * while a write is in flight; a caller that gave up before its item was
 * taken is not written; nobody waits forever — not after a timeout, not when
 * the layer closes (even mid-linger).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import * as GroupCommit from "../../src/store/GroupCommit.ts"

const recordingWriter = (gate?: Deferred.Deferred<void>) => {
  const batches: Array<ReadonlyArray<number>> = []
  const write = (items: ReadonlyArray<number>) =>
    Effect.gen(function* () {
      batches.push(items)
      if (gate !== undefined) yield* Deferred.await(gate)
      return items.map((item): Exit.Exit<number, "timed out"> => Exit.succeed(item * 10))
    })
  return { batches, write }
}

const timeoutError = () => "timed out" as const

describe("GroupCommit", () => {
  it.live("writes a lone item at once, and what queued up during a write as one batch", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const writer = recordingWriter(gate)
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 0, workers: 1, write: writer.write })
      const first = yield* Effect.forkChild(submit(1, "10 seconds", timeoutError))
      yield* Effect.sleep(20)
      const rest = yield* Effect.forkChild(
        Effect.forEach([2, 3, 4, 5], (n) => submit(n, "10 seconds", timeoutError), { concurrency: "unbounded" })
      )
      yield* Effect.sleep(20)
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(first), 10)
      assert.deepStrictEqual(yield* Fiber.join(rest), [20, 30, 40, 50])
      assert.deepStrictEqual(writer.batches, [[1], [2, 3, 4, 5]])
    }).pipe(Effect.scoped)
  )

  it.live("a caller interrupted while its item waits is not written", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const writer = recordingWriter(gate)
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 0, workers: 1, write: writer.write })
      const busy = yield* Effect.forkChild(submit(1, "10 seconds", timeoutError))
      yield* Effect.sleep(20)
      const gaveUp = yield* Effect.forkChild(submit(2, "10 seconds", timeoutError))
      const stays = yield* Effect.forkChild(submit(3, "10 seconds", timeoutError))
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(gaveUp)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(busy)
      assert.strictEqual(yield* Fiber.join(stays), 30)
      assert.deepStrictEqual(writer.batches, [[1], [3]])
    }).pipe(Effect.scoped)
  )

  it.live("a caller waiting longer than its timeout gets the timeout error, and its queued item is dropped", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const writer = recordingWriter(gate)
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 0, workers: 1, write: writer.write })
      yield* Effect.forkChild(submit(1, "10 seconds", timeoutError))
      yield* Effect.sleep(20)
      const exit = yield* Effect.exit(submit(2, "30 millis", timeoutError))
      assert.deepStrictEqual(exit, Exit.fail("timed out"))
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.sleep(20)
      assert.deepStrictEqual(writer.batches, [[1]])
    }).pipe(Effect.scoped)
  )

  it.live("closing answers every waiter, even mid-linger, and later calls do not hang", () =>
    Effect.gen(function* () {
      const writer = recordingWriter()
      const scope = yield* Scope.make()
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 200, workers: 1, write: writer.write }).pipe(
        Scope.provide(scope)
      )
      const lingering = yield* Effect.forkChild(Effect.exit(submit(1, "10 seconds", timeoutError)))
      yield* Effect.sleep(20)
      yield* Scope.close(scope, Exit.void)
      // The batch taken before closing is still written and answered.
      assert.deepStrictEqual(yield* Fiber.join(lingering), Exit.succeed(10))
      const late = yield* Effect.exit(submit(2, "10 seconds", timeoutError))
      assert.isTrue(Exit.isFailure(late) && Exit.hasInterrupts(late))
    })
  )
})
