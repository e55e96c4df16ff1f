import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Fiber, Latch, Layer, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import { MessageQueue, type MessageQueueOptions } from "../../src/queue/MessageQueue.ts"

const withQueue =
  (options: MessageQueueOptions = {}) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.provide(effect, MessageQueue.layerWith(options))

const msg = (messageId: string, body: unknown = { id: messageId }) => ({ messageId, body })

/** Lets forked fibers run until they block (no clock involved). */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("MessageQueue", () => {
  it.effect("publish → receive → ack", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const result = yield* queue.publish(msg("m1", { hello: "world" }))
      assert.deepStrictEqual(result, { messageId: "m1", duplicate: false })

      const [delivery, ...rest] = yield* queue.receive({ max: 10 })
      assert.strictEqual(rest.length, 0)
      assert.strictEqual(delivery.messageId, "m1")
      assert.strictEqual(delivery.attempt, 1)
      assert.deepStrictEqual(delivery.body, { hello: "world" })

      let stats = yield* queue.stats
      assert.strictEqual(stats.inFlight, 1)
      assert.strictEqual(stats.ready, 0)

      yield* queue.ack(delivery.receipt)
      stats = yield* queue.stats
      assert.strictEqual(stats.size, 0)
      assert.strictEqual(stats.totals.acked, 1)
      assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
    }).pipe(withQueue())
  )

  it.effect("delivers in FIFO order, up to max, with fresh receipts", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      for (let i = 0; i < 5; i++) yield* queue.publish(msg(`m${i}`))
      const first = yield* queue.receive({ max: 3 })
      const second = yield* queue.receive({ max: 3 })
      assert.deepStrictEqual(
        [...first, ...second].map((d) => d.messageId),
        ["m0", "m1", "m2", "m3", "m4"]
      )
      const receipts = new Set([...first, ...second].map((d) => d.receipt))
      assert.strictEqual(receipts.size, 5)
    }).pipe(withQueue())
  )

  it.effect("visibility timeout returns an unacked message at its deadline, with a new attempt", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      const [first] = yield* queue.receive({ visibilityTimeout: 1_000 })

      yield* TestClock.adjust(999)
      assert.deepStrictEqual(yield* queue.receive(), [])
      assert.strictEqual((yield* queue.stats).inFlight, 1)

      yield* TestClock.adjust(1)
      const stats = yield* queue.stats
      assert.strictEqual(stats.inFlight, 0)
      assert.strictEqual(stats.ready, 1)
      assert.strictEqual(stats.totals.expired, 1)

      const [second] = yield* queue.receive()
      assert.strictEqual(second.messageId, "m1")
      assert.strictEqual(second.attempt, 2)
      assert.notStrictEqual(second.receipt, first.receipt)
    }).pipe(withQueue())
  )

  it.effect("uses the configured default visibility timeout", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      yield* queue.receive()
      yield* TestClock.adjust(4_999)
      assert.strictEqual((yield* queue.stats).inFlight, 1)
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* queue.stats).ready, 1)
    }).pipe(withQueue({ visibilityTimeout: "5 seconds" }))
  )

  it.effect("a late ack after redelivery is rejected and leaves the new owner's message alone", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      const [first] = yield* queue.receive({ visibilityTimeout: 100 })
      yield* TestClock.adjust(100)
      const [second] = yield* queue.receive({ visibilityTimeout: 100 })

      const late = yield* Effect.flip(queue.ack(first.receipt))
      assert.strictEqual(late._tag, "ReceiptInvalid")
      assert.strictEqual(late._tag === "ReceiptInvalid" ? late.receipt : undefined, first.receipt)
      assert.strictEqual((yield* queue.stats).inFlight, 1)

      // stale for nack and extend too
      assert.strictEqual((yield* Effect.flip(queue.nack(first.receipt)))._tag, "ReceiptInvalid")
      assert.strictEqual((yield* Effect.flip(queue.extend(first.receipt, 1_000)))._tag, "ReceiptInvalid")

      yield* queue.ack(second.receipt)
      assert.strictEqual((yield* Effect.flip(queue.ack(second.receipt)))._tag, "ReceiptInvalid")
      assert.strictEqual((yield* Effect.flip(queue.ack("never-issued")))._tag, "ReceiptInvalid")
      assert.strictEqual((yield* queue.stats).size, 0)
    }).pipe(withQueue())
  )

  it.effect("an expired receipt is stale even before the message is redelivered", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      const [first] = yield* queue.receive({ visibilityTimeout: 100 })
      yield* TestClock.adjust(100)
      assert.strictEqual((yield* Effect.flip(queue.ack(first.receipt)))._tag, "ReceiptInvalid")
      assert.strictEqual((yield* queue.stats).ready, 1)
    }).pipe(withQueue())
  )

  it.effect("nack returns the message after its delay", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      const [first] = yield* queue.receive()
      yield* queue.nack(first.receipt, { delay: 500 })
      let stats = yield* queue.stats
      assert.strictEqual(stats.delayed, 1)
      assert.strictEqual(stats.inFlight, 0)
      assert.deepStrictEqual(yield* queue.receive(), [])

      yield* TestClock.adjust(499)
      assert.deepStrictEqual(yield* queue.receive(), [])
      yield* TestClock.adjust(1)
      stats = yield* queue.stats
      assert.strictEqual(stats.delayed, 0)
      assert.strictEqual(stats.ready, 1)
      const [second] = yield* queue.receive()
      assert.strictEqual(second.attempt, 2)

      // no delay: ready at once
      yield* queue.nack(second.receipt)
      const [third] = yield* queue.receive()
      assert.strictEqual(third.attempt, 3)
    }).pipe(withQueue())
  )

  it.effect("extend moves the deadline to now + duration", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      const [delivery] = yield* queue.receive({ visibilityTimeout: 1_000 })
      yield* TestClock.adjust(800)
      yield* queue.extend(delivery.receipt, 1_000) // deadline 1800
      yield* TestClock.adjust(999) // 1799
      assert.strictEqual((yield* queue.stats).inFlight, 1)
      yield* TestClock.adjust(1) // 1800
      assert.strictEqual((yield* queue.stats).ready, 1)
      assert.strictEqual((yield* Effect.flip(queue.extend(delivery.receipt, 1_000)))._tag, "ReceiptInvalid")
    }).pipe(withQueue())
  )

  it.effect("extend can shorten the deadline, waking the timer early", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      const [delivery] = yield* queue.receive({ visibilityTimeout: 60_000 })
      yield* queue.extend(delivery.receipt, 10)
      yield* TestClock.adjust(10)
      assert.strictEqual((yield* queue.stats).ready, 1)
    }).pipe(withQueue())
  )

  it.effect("after maxDeliveries a nacked message is dead-lettered with its last error", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* TestClock.adjust(1_000)
      yield* queue.publish(msg("m1", { n: 1 }))
      const [first] = yield* queue.receive()
      yield* queue.nack(first.receipt, { error: "first failure" })
      const [second] = yield* queue.receive()
      assert.strictEqual(second.attempt, 2)
      yield* queue.nack(second.receipt, { error: "boom", delay: 5_000 })

      const stats = yield* queue.stats
      assert.strictEqual(stats.deadLettered, 1)
      assert.strictEqual(stats.size, 0)
      assert.strictEqual(stats.delayed, 0)
      assert.deepStrictEqual(yield* queue.deadLetters, [
        { messageId: "m1", attempts: 2, lastError: "boom", body: { n: 1 }, deadLetteredAt: 1_000 }
      ])
      yield* TestClock.adjust(10_000)
      assert.deepStrictEqual(yield* queue.receive(), [])
    }).pipe(withQueue({ maxDeliveries: 2 }))
  )

  it.effect("after maxDeliveries an expired message is dead-lettered as 'visibility timeout expired'", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      for (let attempt = 1; attempt <= 3; attempt++) {
        const [delivery] = yield* queue.receive({ visibilityTimeout: 100 })
        assert.strictEqual(delivery.attempt, attempt)
        yield* TestClock.adjust(100)
      }
      const [letter] = yield* queue.deadLetters
      assert.strictEqual(letter.attempts, 3)
      assert.strictEqual(letter.lastError, "visibility timeout expired")
      assert.strictEqual(letter.deadLetteredAt, 300)
      const stats = yield* queue.stats
      assert.strictEqual(stats.deadLettered, 1)
      assert.strictEqual(stats.totals.deadLettered, 1)
    }).pipe(withQueue({ maxDeliveries: 3 }))
  )

  it.effect("redrive makes dead letters ready again, attempts from 1", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      yield* queue.publish(msg("m2"))
      for (const delivery of yield* queue.receive({ max: 2 })) yield* queue.nack(delivery.receipt)
      assert.strictEqual((yield* queue.stats).deadLettered, 2)

      assert.strictEqual(yield* queue.redrive(), 2)
      const stats = yield* queue.stats
      assert.strictEqual(stats.deadLettered, 0)
      assert.strictEqual(stats.ready, 2)
      const deliveries = yield* queue.receive({ max: 2 })
      assert.deepStrictEqual(
        deliveries.map((d) => [d.messageId, d.attempt]),
        [
          ["m1", 1],
          ["m2", 1]
        ]
      )
      assert.strictEqual(yield* queue.redrive(), 0)
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect("redrive brings back only as many dead letters as fit; the rest stay", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      for (const id of ["a", "b", "c"]) {
        yield* queue.publish(msg(id))
        const [delivery] = yield* queue.receive()
        yield* queue.nack(delivery.receipt)
      }
      yield* queue.publish(msg("d")) // dead letters do not count: room for d
      yield* queue.publish(msg("e"))
      assert.strictEqual(yield* queue.redrive(), 1)
      const stats = yield* queue.stats
      assert.strictEqual(stats.size, 3)
      assert.deepStrictEqual(
        (yield* queue.deadLetters).map((d) => d.messageId),
        ["b", "c"]
      )
      assert.strictEqual(yield* queue.redrive({ messageIds: ["c"] }), 0)
    }).pipe(withQueue({ maxDeliveries: 1, capacity: 3 }))
  )

  it.effect("purge drops dead letters, calls onPurge, and frees their ids", () => {
    const purgedIds: Array<string> = []
    return Effect.gen(function* () {
      const queue = yield* MessageQueue
      for (const id of ["a", "b"]) {
        yield* queue.publish(msg(id))
        const [delivery] = yield* queue.receive()
        yield* queue.nack(delivery.receipt)
      }
      assert.strictEqual(yield* queue.purge(), 2)
      assert.deepStrictEqual(purgedIds, ["a", "b"])
      assert.strictEqual((yield* queue.stats).deadLettered, 0)
      assert.deepStrictEqual(yield* queue.deadLetters, [])
      assert.strictEqual(yield* queue.purge(), 0)
      // a purged id may be published again
      assert.isFalse((yield* queue.publish(msg("a"))).duplicate)
    }).pipe(
      withQueue({
        maxDeliveries: 1,
        onPurge: (ids) =>
          Effect.sync(() => {
            purgedIds.push(...ids)
          })
      })
    )
  })

  it.effect("release gives a delivery back to the front without counting the attempt", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      yield* queue.publish(msg("m2"))
      const [delivery] = yield* queue.receive()
      yield* queue.release(delivery.receipt)
      const [again] = yield* queue.receive()
      assert.strictEqual(again.messageId, "m1")
      assert.strictEqual(again.attempt, 1)
      assert.strictEqual((yield* Effect.flip(queue.release(delivery.receipt)))._tag, "ReceiptInvalid")
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  describe("long poll", () => {
    it.effect("a waiting receive is woken by a commit", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const reservation = yield* queue.reserve(msg("m1"))
        const fiber = yield* Effect.forkChild(queue.receive({ wait: "10 seconds" }))
        yield* settle
        assert.strictEqual((yield* queue.stats).waiting, 1)
        yield* queue.commit(reservation)
        const deliveries = yield* Fiber.join(fiber)
        assert.deepStrictEqual(
          deliveries.map((d) => d.messageId),
          ["m1"]
        )
        assert.strictEqual((yield* queue.stats).waiting, 0)
      }).pipe(withQueue())
    )

    it.effect("returns empty once the wait is over", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fiber = yield* Effect.forkChild(queue.receive({ wait: 2_000 }))
        yield* settle
        yield* TestClock.adjust(1_999)
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust(1)
        assert.deepStrictEqual(yield* Fiber.join(fiber), [])
        assert.strictEqual((yield* queue.stats).waiting, 0)
      }).pipe(withQueue())
    )

    it.effect("a message returning from a visibility timeout wakes a waiter", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg("m1"))
        yield* queue.receive({ visibilityTimeout: 500 })
        const fiber = yield* Effect.forkChild(queue.receive({ wait: 10_000 }))
        yield* settle
        yield* TestClock.adjust(500)
        const [delivery] = yield* Fiber.join(fiber)
        assert.strictEqual(delivery.attempt, 2)
      }).pipe(withQueue())
    )

    it.effect("several waiters share a burst of messages and none is stranded", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(queue.receive({ wait: 10_000 })))
        yield* settle
        assert.strictEqual((yield* queue.stats).waiting, 3)
        for (const id of ["a", "b", "c"]) yield* queue.publish(msg(id))
        const results = yield* Effect.forEach(fibers, Fiber.join)
        assert.deepStrictEqual(
          results
            .flat()
            .map((d) => d.messageId)
            .sort(),
          ["a", "b", "c"]
        )
      }).pipe(withQueue())
    )

    it.effect("an interrupted waiter takes nothing with it", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fiber = yield* Effect.forkChild(queue.receive({ wait: 10_000 }))
        yield* settle
        yield* Fiber.interrupt(fiber)
        assert.strictEqual((yield* queue.stats).waiting, 0)
        yield* queue.publish(msg("m1"))
        assert.strictEqual((yield* queue.stats).ready, 1)
      }).pipe(withQueue())
    )

    it.effect("stopWaiting (shutdown) answers every waiter now with nothing; later receives do not wait", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fibers = yield* Effect.forEach([1, 2], () => Effect.forkChild(queue.receive({ wait: 10_000 })))
        yield* settle
        assert.strictEqual((yield* queue.stats).waiting, 2)
        yield* queue.stopWaiting
        // No clock adjustment: the waiters return without their wait running out.
        assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), [[], []])
        assert.deepStrictEqual(yield* queue.receive({ wait: 10_000 }), [])
        // Messages are still delivered to whoever asks.
        yield* queue.publish(msg("m1"))
        assert.deepStrictEqual(
          (yield* queue.receive({ wait: 10_000 })).map((delivery) => delivery.messageId),
          ["m1"]
        )
      }).pipe(withQueue())
    )
  })

  describe("capacity", () => {
    it.effect("publishing into a full queue fails at once with QueueFull", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg("a"))
        yield* queue.publish(msg("b"))
        const error = yield* Effect.flip(queue.publish(msg("c")))
        assert.strictEqual(error._tag, "QueueFull")
        assert.strictEqual(error.capacity, 2)
        assert.strictEqual(error.messageId, "c")
        assert.strictEqual((yield* Effect.flip(queue.reserve(msg("c"))))._tag, "QueueFull")

        // in flight still counts; an ack frees room
        const [delivery] = yield* queue.receive()
        assert.strictEqual((yield* Effect.flip(queue.publish(msg("c"))))._tag, "QueueFull")
        yield* queue.ack(delivery.receipt)
        yield* queue.publish(msg("c"))
      }).pipe(withQueue({ capacity: 2 }))
    )

    it.effect("reservations count; abort frees their room", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const a = yield* queue.reserve(msg("a"))
        yield* queue.reserve(msg("b"))
        assert.strictEqual((yield* queue.stats).pending, 2)
        assert.strictEqual((yield* Effect.flip(queue.publish(msg("c"))))._tag, "QueueFull")
        yield* queue.abort(a)
        yield* queue.publish(msg("c"))
        assert.strictEqual((yield* queue.stats).size, 2)
      }).pipe(withQueue({ capacity: 2 }))
    )

    it.effect("a duplicate id is answered even when the queue is full", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg("a"))
        assert.isTrue((yield* queue.publish(msg("a"))).duplicate)
      }).pipe(withQueue({ capacity: 1 }))
    )
  })

  describe("two-phase publish", () => {
    it.effect("an aborted message is never delivered", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const reservation = yield* queue.reserve(msg("m1"))
        assert.deepStrictEqual(yield* queue.receive(), [])
        yield* queue.abort(reservation)
        yield* queue.commit(reservation) // settled: a no-op
        assert.deepStrictEqual(yield* queue.receive(), [])
        const stats = yield* queue.stats
        assert.strictEqual(stats.size, 0)
        assert.strictEqual(stats.totals.aborted, 1)
      }).pipe(withQueue())
    )

    it.effect("a reserved message is invisible until committed; commit is idempotent", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const reservation = yield* queue.reserve(msg("m1"))
        assert.isFalse(reservation.duplicate)
        assert.deepStrictEqual(yield* queue.receive(), [])
        yield* queue.commit(reservation)
        yield* queue.commit(reservation)
        yield* queue.abort(reservation)
        assert.strictEqual((yield* queue.receive({ max: 10 })).length, 1)
      }).pipe(withQueue())
    )

    it.effect("a message id already present is not added twice, in any state", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg("ready", { v: 1 }))
        assert.isTrue((yield* queue.publish(msg("ready", { v: 2 }))).duplicate)

        // a duplicate reservation is a no-op: its commit adds nothing, its abort removes nothing
        const dup = yield* queue.reserve(msg("ready", { v: 3 }))
        assert.isTrue(dup.duplicate)
        yield* queue.abort(dup)
        const dup2 = yield* queue.reserve(msg("ready", { v: 4 }))
        yield* queue.commit(dup2)
        const [delivery] = yield* queue.receive({ max: 10 })
        assert.deepStrictEqual(delivery.body, { v: 1 })
        assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])

        // in flight
        assert.isTrue((yield* queue.publish(msg("ready"))).duplicate)
        yield* queue.nack(delivery.receipt) // → dead letter (maxDeliveries 1)
        // dead-lettered
        assert.isTrue((yield* queue.publish(msg("ready"))).duplicate)
        assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
        // acked ids are forgotten
        yield* queue.publish(msg("done"))
        const [done] = yield* queue.receive()
        yield* queue.ack(done.receipt)
        assert.isFalse((yield* queue.publish(msg("done"))).duplicate)
        assert.strictEqual((yield* queue.stats).totals.duplicates, 5)
      }).pipe(withQueue({ maxDeliveries: 1 }))
    )

    it.effect("reserving a pending id joins it: delivered once if any holder commits", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const first = yield* queue.reserve(msg("m1"))
        const second = yield* queue.reserve(msg("m1"))
        assert.isTrue(second.duplicate)
        assert.strictEqual((yield* queue.stats).pending, 1)
        yield* queue.abort(first)
        assert.strictEqual((yield* queue.stats).pending, 1)
        yield* queue.commit(second)
        assert.strictEqual((yield* queue.receive({ max: 10 })).length, 1)
      }).pipe(withQueue())
    )

    it.effect("reserving a pending id joins it: gone only when every holder aborted", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const first = yield* queue.reserve(msg("m1"))
        const second = yield* queue.reserve(msg("m1"))
        yield* queue.abort(second)
        yield* queue.abort(first)
        const stats = yield* queue.stats
        assert.strictEqual(stats.size, 0)
        assert.isFalse((yield* queue.reserve(msg("m1"))).duplicate)
      }).pipe(withQueue())
    )

    it.effect("withReservation commits on success, aborts on failure and interruption", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.withReservation(msg("ok"), () => Effect.void)
        const failed = yield* Effect.exit(queue.withReservation(msg("failed"), () => Effect.fail("db down")))
        assert.isTrue(Exit.isFailure(failed))
        const fiber = yield* Effect.forkChild(queue.withReservation(msg("interrupted"), () => Effect.never))
        yield* settle
        assert.strictEqual((yield* queue.stats).pending, 1)
        yield* Fiber.interrupt(fiber)
        const stats = yield* queue.stats
        assert.strictEqual(stats.pending, 0)
        assert.deepStrictEqual(
          (yield* queue.receive({ max: 10 })).map((d) => d.messageId),
          ["ok"]
        )
      }).pipe(withQueue())
    )

    it.effect("a reservation from another queue is a defect", () =>
      Effect.gen(function* () {
        const foreign = yield* Effect.provide(
          MessageQueue.use((other) => other.reserve(msg("x"))),
          MessageQueue.layerWith()
        )
        const queue = yield* MessageQueue
        const exit = yield* Effect.exit(queue.commit(foreign))
        assert.isTrue(Exit.isFailure(exit))
      }).pipe(withQueue())
    )
  })

  it.effect(
    "ack is durable when answered: onAck runs while the message is in flight with its result; a failing hook fails the ack and keeps the message in flight under the same receipt",
    () => {
      const acked: Array<{ messageId: string; attempts: number; result: unknown }> = []
      let failNext = true
      return Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg("m1"))
        const [delivery] = yield* queue.receive()
        const failed = yield* Effect.flip(queue.ack(delivery!.receipt, { result: { grade: "A" } }))
        assert.strictEqual(failed._tag, "AckNotRecorded")
        assert.strictEqual((yield* queue.stats).inFlight, 1, "still in flight")
        assert.strictEqual((yield* queue.stats).totals.acked, 0)
        // The same receipt still holds: ack again.
        yield* queue.ack(delivery!.receipt, { result: { grade: "A" } })
        assert.deepStrictEqual(acked, [
          { messageId: "m1", attempts: 1, result: { grade: "A" } },
          { messageId: "m1", attempts: 1, result: { grade: "A" } }
        ])
        assert.strictEqual((yield* queue.stats).size, 0)
        assert.strictEqual((yield* Effect.flip(queue.ack(delivery!.receipt)))._tag, "ReceiptInvalid")
        assert.strictEqual(acked.length, 2, "a stale receipt never reaches the hook")
      }).pipe(
        withQueue({
          onAck: (ack) =>
            Effect.suspend(() => {
              acked.push({ ...ack })
              if (failNext) {
                failNext = false
                return Effect.fail(new Error("database unavailable"))
              }
              return Effect.void
            })
        })
      )
    }
  )

  it.effect(
    "a receipt that goes stale while onAck runs: the ack succeeds (recorded); the redelivered copy is acked by its new owner, and one dead-lettered meanwhile is forgotten",
    () => {
      const gate: Array<Effect.Effect<void>> = []
      return Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg("m1"))
        const [first] = yield* queue.receive({ visibilityTimeout: 100 })
        const latch = yield* Latch.make(false)
        gate.push(latch.await)
        const acking = yield* Effect.forkChild(queue.ack(first!.receipt, { result: 1 }))
        yield* settle
        // Its deadline passes while the hook runs; maxDeliveries 1: dead-lettered.
        yield* TestClock.adjust(100)
        assert.strictEqual((yield* queue.stats).deadLettered, 1)
        yield* latch.open
        yield* Fiber.join(acking)
        const stats = yield* queue.stats
        assert.strictEqual(stats.deadLettered, 0, "processed, so no longer a dead letter")
        assert.strictEqual(stats.size, 0)
      }).pipe(
        withQueue({
          maxDeliveries: 1,
          onAck: () => Effect.suspend(() => gate.shift() ?? Effect.void)
        })
      )
    }
  )

  it.effect(
    "dead-lettering and redrive are persisted in order by the hooks, retried until they succeed; awaitPersisted waits for them",
    () => {
      const log: Array<string> = []
      let failures = 2
      return Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg("m1"))
        const [delivery] = yield* queue.receive()
        yield* queue.nack(delivery!.receipt, { error: "poison" })
        assert.strictEqual((yield* queue.stats).deadLettered, 1, "dead-lettered at once, in memory")
        assert.strictEqual(yield* queue.redrive(), 1)
        const waiting = yield* Effect.forkChild(queue.awaitPersisted)
        yield* settle
        assert.deepStrictEqual(log, ["dead:m1:1:poison:fail"])
        // Backoff 100 ms, then 200 ms: the redrive waits behind the dead-lettering.
        yield* TestClock.adjust(100)
        yield* settle
        yield* TestClock.adjust(200)
        yield* Fiber.join(waiting)
        assert.deepStrictEqual(log, [
          "dead:m1:1:poison:fail",
          "dead:m1:1:poison:fail",
          "dead:m1:1:poison",
          "redrive:m1"
        ])
      }).pipe(
        withQueue({
          maxDeliveries: 1,
          onDeadLetter: (letter) =>
            Effect.suspend(() => {
              const entry = `dead:${letter.messageId}:${letter.attempts}:${letter.lastError}`
              if (failures-- > 0) {
                log.push(entry + ":fail")
                return Effect.fail("database unavailable")
              }
              log.push(entry)
              return Effect.void
            }),
          onRedrive: (ids) => Effect.sync(() => log.push(`redrive:${ids.join(",")}`))
        })
      )
    }
  )

  it.effect("at shutdown, a dead-lettering whose persisting was cut short gets one more attempt", () =>
    Effect.gen(function* () {
      const persisted: Array<string> = []
      let calls = 0
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        MessageQueue.layerWith({
          maxDeliveries: 1,
          // The first attempt hangs (a statement the shutdown interrupts); the next one succeeds.
          onDeadLetter: (letter) => (calls++ === 0 ? Effect.never : Effect.sync(() => persisted.push(letter.messageId)))
        }),
        scope
      )
      const queue = Context.get(context, MessageQueue)
      yield* queue.publish(msg("m1"))
      const [delivery] = yield* queue.receive()
      yield* queue.nack(delivery!.receipt)
      yield* settle
      assert.strictEqual(calls, 1, "the first attempt is running")
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(persisted, ["m1"])
    })
  )

  it.effect("a restored dead letter is listed, never delivered, not persisted again, and can be redriven", () => {
    const persisted: Array<string> = []
    return Effect.gen(function* () {
      const queue = yield* MessageQueue
      const letter = { messageId: "m1", attempts: 3, lastError: "poison", body: { n: 1 }, deadLetteredAt: 42 }
      assert.isTrue(yield* queue.restoreDeadLetter(letter))
      assert.isFalse(yield* queue.restoreDeadLetter(letter), "an id already present is not added twice")
      assert.deepStrictEqual(yield* queue.deadLetters, [letter])
      assert.strictEqual(queue.attemptsOf("m1"), 3)
      assert.strictEqual((yield* queue.receive()).length, 0)
      yield* queue.awaitPersisted
      assert.deepStrictEqual(persisted, [])
      assert.strictEqual(yield* queue.redrive(), 1)
      const [delivery] = yield* queue.receive()
      assert.strictEqual(delivery!.attempt, 1)
    }).pipe(withQueue({ onDeadLetter: (letter) => Effect.sync(() => persisted.push(letter.messageId)) }))
  })

  it.effect("exposes its sizes and totals as metrics", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("a"))
      yield* queue.publish(msg("b"))
      const [delivery] = yield* queue.receive()
      yield* queue.ack(delivery.receipt)
      const snapshots = (yield* Metric.snapshot).filter((s) => s.attributes?.["queue"] === "metrics-test")
      const value = (id: string) => {
        const state = snapshots.find((s) => s.id === id)?.state as { value?: number; count?: number } | undefined
        return state?.value ?? state?.count
      }
      assert.strictEqual(value("queue_messages_ready"), 1)
      assert.strictEqual(value("queue_messages_in_flight"), 0)
      assert.strictEqual(value("queue_published_total"), 2)
      assert.strictEqual(value("queue_delivered_total"), 1)
      assert.strictEqual(value("queue_acked_total"), 1)
    }).pipe(withQueue({ name: "metrics-test" }), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  describe("configuration", () => {
    const withEnv = (env: Record<string, string>) =>
      Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

    it.effect("reads QUEUE_* variables, with defaults", () =>
      Effect.gen(function* () {
        const defaults = yield* Effect.provide(MessageQueue.use(Effect.succeed), MessageQueue.layer).pipe(withEnv({}))
        assert.deepStrictEqual(defaults.settings, { capacity: 10_000, maxDeliveries: 5, visibilityTimeoutMs: 30_000 })
        const custom = yield* Effect.provide(MessageQueue.use(Effect.succeed), MessageQueue.layer).pipe(
          withEnv({ QUEUE_CAPACITY: "7", QUEUE_VISIBILITY_TIMEOUT_MS: "1500", QUEUE_MAX_DELIVERIES: "2" })
        )
        assert.deepStrictEqual(custom.settings, { capacity: 7, maxDeliveries: 2, visibilityTimeoutMs: 1_500 })
      })
    )

    it.effect.each([
      ["QUEUE_CAPACITY", "lots"],
      ["QUEUE_CAPACITY", "0"],
      ["QUEUE_VISIBILITY_TIMEOUT_MS", "-5"],
      ["QUEUE_MAX_DELIVERIES", "1.5"]
    ])("a bad %s fails start-up naming the variable", ([name, value]) =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Effect.provide(MessageQueue.use(Effect.succeed), MessageQueue.layer).pipe(withEnv({ [name]: value }))
        )
        assert.strictEqual(error._tag, "ConfigError")
        assert.include(error.message, name)
      })
    )
  })

  it.effect("the timer fiber stops with the layer", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(MessageQueue.layerWith(), scope)
      const queue = Context.get(context, MessageQueue)
      yield* queue.publish(msg("m1"))
      yield* queue.receive({ visibilityTimeout: 100 })
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust(100)
      assert.strictEqual((yield* queue.stats).inFlight, 1)
    })
  )
})
