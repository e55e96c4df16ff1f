/**
 * Group commit's own promises, with a fake writer (no database): batches form
 * while a write is in flight; a caller that gave up before its item was
 * taken is not written; nobody waits forever — not after a timeout, not when
 * the layer closes (even mid-linger).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Queue, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as GroupCommit from "../../src/store/GroupCommit.ts"

/** A writer that records its batches; with a gate, each write waits for it. `started` hands over each batch as its write begins. */
const recordingWriter = (gate?: Deferred.Deferred<void>) =>
  Effect.map(Queue.unbounded<ReadonlyArray<number>>(), (started) => {
    const batches: Array<ReadonlyArray<number>> = []
    const write = (items: ReadonlyArray<number>) =>
      Effect.gen(function* () {
        batches.push(items)
        yield* Queue.offer(started, items)
        if (gate !== undefined) yield* Deferred.await(gate)
        return items.map((item): Exit.Exit<number, "timed out"> => Exit.succeed(item * 10))
      })
    return { batches, write, nextWrite: Queue.take(started) }
  })

/** Submits in a fiber that runs at once up to its first wait: its item is queued when this returns. */
const queued = <A, E>(effect: Effect.Effect<A, E>) => Effect.forkChild(effect, { startImmediately: true })

const timeoutError = () => "timed out" as const

describe("GroupCommit", () => {
  it.effect("writes a lone item at once, and what queued up during a write as one batch", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const writer = yield* recordingWriter(gate)
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 0, workers: 1, write: writer.write })
      const first = yield* queued(submit(1, "10 seconds", timeoutError))
      assert.deepStrictEqual(yield* writer.nextWrite, [1], "a lone item is written without waiting for company")
      const rest: Array<Fiber.Fiber<number, "timed out">> = []
      for (const n of [2, 3, 4, 5]) rest.push(yield* queued(submit(n, "10 seconds", timeoutError)))
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(first), 10)
      assert.deepStrictEqual(yield* Effect.forEach(rest, Fiber.join), [20, 30, 40, 50])
      assert.deepStrictEqual(writer.batches, [[1], [2, 3, 4, 5]])
    }).pipe(Effect.scoped)
  )

  it.effect("a caller interrupted while its item waits is not written", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const writer = yield* recordingWriter(gate)
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 0, workers: 1, write: writer.write })
      const busy = yield* queued(submit(1, "10 seconds", timeoutError))
      yield* writer.nextWrite
      const gaveUp = yield* queued(submit(2, "10 seconds", timeoutError))
      const stays = yield* queued(submit(3, "10 seconds", timeoutError))
      yield* Fiber.interrupt(gaveUp)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(busy)
      assert.strictEqual(yield* Fiber.join(stays), 30)
      assert.deepStrictEqual(writer.batches, [[1], [3]])
    }).pipe(Effect.scoped)
  )

  it.effect("a caller waiting longer than its timeout gets the timeout error, and its queued item is dropped", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const writer = yield* recordingWriter(gate)
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 0, workers: 1, write: writer.write })
      yield* queued(submit(1, "10 seconds", timeoutError))
      yield* writer.nextWrite
      const late = yield* queued(Effect.exit(submit(2, "30 millis", timeoutError)))
      yield* TestClock.adjust("30 millis")
      assert.deepStrictEqual(yield* Fiber.join(late), Exit.fail(timeoutError()))
      yield* Deferred.succeed(gate, undefined)
      // The next batch the worker writes holds a later item, not the dropped one.
      assert.strictEqual(yield* submit(3, "10 seconds", timeoutError), 30)
      assert.deepStrictEqual(writer.batches, [[1], [3]])
    }).pipe(Effect.scoped)
  )

  it.live("closing answers every waiter, even mid-linger, and later calls do not hang", () =>
    Effect.gen(function* () {
      const writer = yield* recordingWriter()
      const scope = yield* Scope.make()
      const submit = yield* GroupCommit.make({ maxBatch: 64, linger: 200, workers: 1, write: writer.write }).pipe(
        Scope.provide(scope)
      )
      const lingering = yield* Effect.forkChild(Effect.exit(submit(1, "10 seconds", timeoutError)))
      // No hand-off shows the worker lingering (nothing observable happens until it writes): a short real wait.
      yield* Effect.sleep(20)
      yield* Scope.close(scope, Exit.void)
      // The batch taken before closing is still written and answered.
      assert.deepStrictEqual(yield* Fiber.join(lingering), Exit.succeed(10))
      const late = yield* Effect.exit(submit(2, "10 seconds", timeoutError))
      assert.isTrue(Exit.isFailure(late) && Exit.hasInterrupts(late))
    })
  )
})
