/**
 * The MessageQueue conformance suite: what every queue backend must do, run
 * against each of them (MessageQueue.test.ts: in memory; PgMessageQueue.conformance.test.ts:
 * the outbox table, on PGlite and PostgreSQL). Receipts and stale receipts,
 * FIFO delivery, visibility timeout, nack delay, extend, max deliveries → dead
 * letters with attempts and last error, redrive (as many as fit), purge,
 * capacity, long poll, release, ack with result, and random interleavings of
 * all of them checked against a model.
 *
 * Time is the TestClock: a database backend computes its "now" from the Effect
 * Clock plus a fixed offset, so the clock drives it exactly like the memory
 * queue. What a backend may do differently is said in `QueueUnderTest`; what
 * only one backend does (reservation handles joining, hooks, the memory
 * queue's forgetting of acked ids, the table's rows) is tested beside it.
 *
 * Message ids are UUIDs throughout (the database backend requires them).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { randomUUID } from "node:crypto"
import { MessageQueue, type MessageQueueService } from "../../src/queue/MessageQueue.ts"
import { type QueueTestOptions, type QueueUnderTest, StoredResults } from "../support/QueueBackends.ts"
import { advanceUntilDone, eventually, joinWithin, settle } from "../support/TestTime.ts"
import { capacity, Commands, maxDeliveries, newSeen, runCommands } from "./QueueInterleavings.ts"

export const newId = (): string => randomUUID()

const msg = (messageId: string, body: unknown = { id: messageId }) => ({ messageId, body })

/** Ids made in order (FIFO checks compare against this order). */
const ids = (count: number): Array<string> => Array.from({ length: count }, newId)

const tagOf = <E extends { readonly _tag: string }>(effect: Effect.Effect<unknown, E>) =>
  Effect.map(Effect.flip(effect), (error) => error._tag)

const waitingIs = (queue: MessageQueueService, count: number) =>
  eventually(
    `${count} receivers waiting`,
    Effect.map(queue.stats, (stats) => stats.waiting === count)
  ).pipe(Effect.andThen(settle))

/** Registers the suite's tests for `backend` in the current describe block. */
export const queueConformance = (backend: QueueUnderTest) => {
  const withQueue =
    (options: QueueTestOptions = {}) =>
    <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provide(effect, backend.layer(options))
  // A time-driven wake is seen within one backstop poll (at once in memory).
  const pollStep = Math.max(1, backend.pollIntervalMs)

  it.effect("publish → receive → ack", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const id = newId()
      const result = yield* queue.publish(msg(id, { hello: "world" }))
      assert.deepStrictEqual(result, { messageId: id, duplicate: false })
      assert.strictEqual((yield* queue.stats).ready, 1)

      const [delivery, ...rest] = yield* queue.receive({ max: 10 })
      assert.strictEqual(rest.length, 0)
      assert.strictEqual(delivery!.messageId, id)
      assert.strictEqual(delivery!.attempt, 1)
      assert.deepStrictEqual(delivery!.body, { hello: "world" })

      let stats = yield* queue.stats
      assert.strictEqual(stats.inFlight, 1)
      assert.strictEqual(stats.ready, 0)
      assert.strictEqual(stats.size, 1)

      yield* queue.ack(delivery!.receipt)
      stats = yield* queue.stats
      assert.strictEqual(stats.size, 0)
      assert.strictEqual(stats.inFlight, 0)
      assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
    }).pipe(withQueue())
  )

  it.effect("delivers in FIFO order, up to max, with fresh receipts", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const published = ids(5)
      for (const id of published) yield* queue.publish(msg(id))
      const first = yield* queue.receive({ max: 3 })
      const second = yield* queue.receive({ max: 3 })
      assert.deepStrictEqual(
        [...first, ...second].map((d) => d.messageId),
        published
      )
      assert.strictEqual(new Set([...first, ...second].map((d) => d.receipt)).size, 5)
    }).pipe(withQueue())
  )

  it.effect("visibility timeout returns an unacked message at its deadline, with a new attempt and receipt", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const id = newId()
      yield* queue.publish(msg(id))
      const [first] = yield* queue.receive({ visibilityTimeout: 1_000 })

      yield* TestClock.adjust(999)
      assert.deepStrictEqual(yield* queue.receive(), [])
      assert.strictEqual((yield* queue.stats).inFlight, 1)

      yield* TestClock.adjust(1)
      const stats = yield* queue.stats
      assert.strictEqual(stats.inFlight, 0)
      assert.strictEqual(stats.ready, 1)

      const [second] = yield* queue.receive()
      assert.strictEqual(second!.messageId, id)
      assert.strictEqual(second!.attempt, 2)
      assert.notStrictEqual(second!.receipt, first!.receipt)
    }).pipe(withQueue())
  )

  it.effect(
    "a redelivery joins the ready line at its deadline: behind what was ready then, ahead of what came later",
    () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const [expiring, before1, before2, after1, after2, after3, after4] = ids(7)
        yield* queue.publish(msg(expiring!))
        const [held] = yield* queue.receive({ visibilityTimeout: 1_000 })
        assert.strictEqual(held!.messageId, expiring)
        // Ready before the deadline: served first.
        yield* queue.publish(msg(before1!))
        yield* queue.publish(msg(before2!))
        yield* TestClock.adjust(1_000)
        // After the deadline, a stream of new messages: one more arrives before each receive.
        const order: Array<string> = []
        for (const id of [after1!, after2!, after3!, after4!]) {
          yield* TestClock.adjust(1)
          yield* queue.publish(msg(id))
          const [delivery] = yield* queue.receive()
          order.push(delivery!.messageId)
        }
        assert.deepStrictEqual(order, [before1, before2, expiring, after1])
        const rest = yield* queue.receive({ max: 10 })
        assert.deepStrictEqual(
          rest.map((d) => d.messageId),
          [after2, after3, after4]
        )
      }).pipe(withQueue())
  )

  it.effect("uses the configured default visibility timeout", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      assert.strictEqual(queue.settings.visibilityTimeoutMs, 5_000)
      yield* queue.publish(msg(newId()))
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
      yield* queue.publish(msg(newId()))
      const [first] = yield* queue.receive({ visibilityTimeout: 100 })
      yield* TestClock.adjust(100)
      const [second] = yield* queue.receive({ visibilityTimeout: 100 })
      assert.strictEqual(second!.attempt, 2)

      const late = yield* Effect.flip(queue.ack(first!.receipt))
      assert.strictEqual(late._tag, "ReceiptInvalid")
      assert.strictEqual(late._tag === "ReceiptInvalid" ? late.receipt : undefined, first!.receipt)
      assert.strictEqual((yield* queue.stats).inFlight, 1)

      // stale for nack, extend and release too; none of them touched the new delivery
      assert.strictEqual(yield* tagOf(queue.nack(first!.receipt)), "ReceiptInvalid")
      assert.strictEqual(yield* tagOf(queue.extend(first!.receipt, 1_000)), "ReceiptInvalid")
      assert.strictEqual(yield* tagOf(queue.release(first!.receipt)), "ReceiptInvalid")
      assert.strictEqual((yield* queue.stats).inFlight, 1)

      yield* queue.ack(second!.receipt)
      assert.strictEqual(yield* tagOf(queue.ack(second!.receipt)), "ReceiptInvalid", "acked twice")
      assert.strictEqual((yield* queue.stats).size, 0)
    }).pipe(withQueue())
  )

  it.effect("a receipt never issued, or not even a UUID, is ReceiptInvalid for ack, nack, extend and release", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg(newId()))
      yield* queue.receive()
      for (const receipt of [newId(), "never-issued", ""]) {
        assert.strictEqual(yield* tagOf(queue.ack(receipt)), "ReceiptInvalid", `ack ${receipt}`)
        assert.strictEqual(yield* tagOf(queue.nack(receipt)), "ReceiptInvalid", `nack ${receipt}`)
        assert.strictEqual(yield* tagOf(queue.extend(receipt, 1_000)), "ReceiptInvalid", `extend ${receipt}`)
        assert.strictEqual(yield* tagOf(queue.release(receipt)), "ReceiptInvalid", `release ${receipt}`)
      }
      assert.strictEqual((yield* queue.stats).inFlight, 1)
    }).pipe(withQueue())
  )

  it.effect("an expired receipt is stale even before the message is redelivered", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg(newId()))
      const [first] = yield* queue.receive({ visibilityTimeout: 100 })
      yield* TestClock.adjust(100)
      assert.strictEqual(yield* tagOf(queue.ack(first!.receipt)), "ReceiptInvalid", "ack")
      assert.strictEqual(yield* tagOf(queue.extend(first!.receipt, 1_000)), "ReceiptInvalid", "extend")
      assert.strictEqual(yield* tagOf(queue.nack(first!.receipt)), "ReceiptInvalid", "nack")
      assert.strictEqual((yield* queue.stats).ready, 1)
      const [second] = yield* queue.receive()
      assert.strictEqual(second!.attempt, 2)
    }).pipe(withQueue())
  )

  it.effect("receive takes its own visibility timeout", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const [short, long] = ids(2)
      yield* queue.publish(msg(short!))
      yield* queue.publish(msg(long!))
      yield* queue.receive({ visibilityTimeout: 200 })
      yield* queue.receive({ visibilityTimeout: 60_000 })
      yield* TestClock.adjust(200)
      assert.deepStrictEqual(
        (yield* queue.receive({ max: 10 })).map((d) => [d.messageId, d.attempt]),
        [[short, 2]]
      )
    }).pipe(withQueue())
  )

  it.effect("nack returns the message after its delay; without a delay at once", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg(newId()))
      const [first] = yield* queue.receive()
      yield* queue.nack(first!.receipt, { delay: 500 })
      let stats = yield* queue.stats
      assert.strictEqual(stats.delayed, 1)
      assert.strictEqual(stats.inFlight, 0)
      assert.strictEqual(stats.size, 1, "a delayed message counts against the capacity")
      assert.deepStrictEqual(yield* queue.receive(), [])
      assert.strictEqual(yield* tagOf(queue.ack(first!.receipt)), "ReceiptInvalid", "a nacked receipt is spent")

      yield* TestClock.adjust(499)
      assert.deepStrictEqual(yield* queue.receive(), [])
      yield* TestClock.adjust(1)
      stats = yield* queue.stats
      assert.strictEqual(stats.delayed, 0)
      assert.strictEqual(stats.ready, 1)
      const [second] = yield* queue.receive()
      assert.strictEqual(second!.attempt, 2)

      yield* queue.nack(second!.receipt)
      const [third] = yield* queue.receive()
      assert.strictEqual(third!.attempt, 3)
    }).pipe(withQueue())
  )

  it.effect("extend moves the deadline to now + duration; the receipt stays valid until then", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg(newId()))
      const [delivery] = yield* queue.receive({ visibilityTimeout: 1_000 })
      yield* TestClock.adjust(800)
      yield* queue.extend(delivery!.receipt, 1_000) // deadline 1800
      yield* TestClock.adjust(999) // 1799
      assert.strictEqual((yield* queue.stats).inFlight, 1)
      assert.deepStrictEqual(yield* queue.receive(), [])
      yield* TestClock.adjust(1) // 1800
      assert.strictEqual((yield* queue.stats).ready, 1)
      assert.strictEqual(yield* tagOf(queue.extend(delivery!.receipt, 1_000)), "ReceiptInvalid")
    }).pipe(withQueue())
  )

  it.effect("extend can shorten the deadline", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg(newId()))
      const [delivery] = yield* queue.receive({ visibilityTimeout: 60_000 })
      yield* queue.extend(delivery!.receipt, 10)
      yield* TestClock.adjust(10)
      assert.strictEqual((yield* queue.stats).ready, 1)
      const [again] = yield* queue.receive()
      assert.strictEqual(again!.attempt, 2)
    }).pipe(withQueue())
  )

  it.effect("an acked message is never delivered again, even after its visibility timeout", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg(newId()))
      const [delivery] = yield* queue.receive({ visibilityTimeout: 100 })
      yield* queue.ack(delivery!.receipt)
      yield* TestClock.adjust(10_000)
      assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
      assert.strictEqual((yield* queue.stats).size, 0)
    }).pipe(withQueue())
  )

  it.effect(
    "after maxDeliveries a nacked message is dead-lettered at once with its attempts, body and last error",
    () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const id = newId()
        yield* queue.publish(msg(id, { n: 1 }))
        const [first] = yield* queue.receive()
        yield* queue.nack(first!.receipt, { error: "first failure" })
        const [second] = yield* queue.receive()
        assert.strictEqual(second!.attempt, 2)
        // A delay does not postpone the dead-lettering.
        yield* queue.nack(second!.receipt, { error: "boom", delay: 5_000 })

        const stats = yield* queue.stats
        assert.strictEqual(stats.deadLettered, 1)
        assert.strictEqual(stats.size, 0, "dead letters do not count against the capacity")
        assert.strictEqual(stats.delayed, 0)
        const letters = yield* queue.deadLetters
        assert.strictEqual(letters.length, 1)
        const { deadLetteredAt, ...letter } = letters[0]!
        assert.deepStrictEqual(letter, { messageId: id, attempts: 2, lastError: "boom", body: { n: 1 } })
        assert.isTrue(Number.isFinite(deadLetteredAt))
        yield* TestClock.adjust(10_000)
        assert.deepStrictEqual(yield* queue.receive(), [])
      }).pipe(withQueue({ maxDeliveries: 2 }))
  )

  it.effect("a nack without an error dead-letters with a last error all the same", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg(newId()))
      const [delivery] = yield* queue.receive()
      yield* queue.nack(delivery!.receipt)
      const [letter] = yield* queue.deadLetters
      assert.strictEqual(letter!.attempts, 1)
      assert.isString(letter!.lastError)
      assert.isAbove(letter!.lastError.length, 0)
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect(
    "after maxDeliveries an expired message is dead-lettered as 'visibility timeout expired', never delivered again",
    () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const id = newId()
        yield* queue.publish(msg(id))
        for (let attempt = 1; attempt <= 3; attempt++) {
          const [delivery] = yield* queue.receive({ visibilityTimeout: 100 })
          assert.strictEqual(delivery!.attempt, attempt)
          yield* TestClock.adjust(100)
        }
        // A backend may dead-letter at the deadline or at the next receive that finds it due: either way, not delivered.
        assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
        const letters = yield* queue.deadLetters
        assert.deepStrictEqual(
          letters.map((letter) => [letter.messageId, letter.attempts, letter.lastError]),
          [[id, 3, "visibility timeout expired"]]
        )
        const stats = yield* queue.stats
        assert.strictEqual(stats.deadLettered, 1)
        assert.strictEqual(stats.size, 0)
      }).pipe(withQueue({ maxDeliveries: 3 }))
  )

  it.effect("dead letters are listed oldest first", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const published = ids(3)
      for (const id of published) yield* queue.publish(msg(id))
      // Dead-lettered in the reverse order of publishing, a second apart.
      const deliveries = yield* queue.receive({ max: 3 })
      for (const delivery of [...deliveries].reverse()) {
        yield* queue.nack(delivery.receipt, { error: `failed ${delivery.messageId}` })
        yield* TestClock.adjust(1_000)
      }
      const letters = yield* queue.deadLetters
      assert.deepStrictEqual(
        letters.map((letter) => letter.messageId),
        [...published].reverse()
      )
      assert.deepStrictEqual(
        letters.map((letter) => letter.lastError),
        [...published].reverse().map((id) => `failed ${id}`)
      )
      assert.strictEqual(letters[1]!.deadLetteredAt - letters[0]!.deadLetteredAt, 1_000)
      assert.strictEqual(letters[2]!.deadLetteredAt - letters[1]!.deadLetteredAt, 1_000)
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect("redrive makes dead letters ready again, attempts from 1", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const published = ids(2)
      for (const id of published) yield* queue.publish(msg(id))
      for (const delivery of yield* queue.receive({ max: 2 })) yield* queue.nack(delivery.receipt)
      assert.strictEqual((yield* queue.stats).deadLettered, 2)

      assert.strictEqual(yield* queue.redrive(), 2)
      const stats = yield* queue.stats
      assert.strictEqual(stats.deadLettered, 0)
      assert.strictEqual(stats.ready, 2)
      assert.deepStrictEqual(yield* queue.deadLetters, [])
      const deliveries = yield* queue.receive({ max: 2 })
      assert.deepStrictEqual(
        deliveries.map((d) => [d.messageId, d.attempt]),
        published.map((id) => [id, 1])
      )
      assert.strictEqual(yield* queue.redrive(), 0)
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect("redrive by ids brings back those only; unknown ids are ignored", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const [a, b, c] = ids(3)
      for (const id of [a!, b!, c!]) yield* queue.publish(msg(id))
      for (const delivery of yield* queue.receive({ max: 3 })) yield* queue.nack(delivery.receipt)
      assert.strictEqual(yield* queue.redrive({ messageIds: [b!, newId()] }), 1)
      // (Dead-lettered at one instant: their order is the backend's; "oldest first" is tested above.)
      assert.sameMembers(
        (yield* queue.deadLetters).map((letter) => letter.messageId),
        [a!, c!]
      )
      assert.deepStrictEqual(
        (yield* queue.receive({ max: 10 })).map((d) => d.messageId),
        [b]
      )
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect("redrive brings back only as many dead letters as fit, oldest first; the rest stay", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const [a, b, c, d, e] = ids(5)
      for (const id of [a!, b!, c!]) {
        yield* queue.publish(msg(id))
        const [delivery] = yield* queue.receive()
        yield* queue.nack(delivery!.receipt)
        yield* TestClock.adjust(1)
      }
      yield* queue.publish(msg(d!)) // dead letters do not count: room for d and e
      yield* queue.publish(msg(e!))
      assert.strictEqual(yield* queue.redrive(), 1)
      assert.strictEqual((yield* queue.stats).size, 3)
      assert.deepStrictEqual(
        (yield* queue.deadLetters).map((letter) => letter.messageId),
        [b, c]
      )
      assert.strictEqual(yield* queue.redrive({ messageIds: [c!] }), 0, "full: nothing fits")
      assert.strictEqual(yield* tagOf(queue.publish(msg(newId()))), "QueueFull")
      // Where a redriven message queues (behind the others in memory, by age in a table) is the backend's own.
      assert.sameMembers(
        (yield* queue.receive({ max: 10 })).map((delivery) => delivery.messageId),
        [a, d, e]
      )
    }).pipe(withQueue({ maxDeliveries: 1, capacity: 3 }))
  )

  it.effect("purge drops dead letters (all, or by ids) and says how many", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const [a, b, c, live] = ids(4)
      for (const id of [a!, b!, c!]) yield* queue.publish(msg(id))
      for (const delivery of yield* queue.receive({ max: 3 })) yield* queue.nack(delivery.receipt)
      yield* queue.publish(msg(live!))

      assert.strictEqual(yield* queue.purge({ messageIds: [b!, live!, newId()] }), 1, "dead letters only")
      // (Dead-lettered at one instant: their order is the backend's; "oldest first" is tested above.)
      assert.sameMembers(
        (yield* queue.deadLetters).map((letter) => letter.messageId),
        [a!, c!]
      )
      assert.strictEqual(yield* queue.purge(), 2)
      assert.strictEqual((yield* queue.stats).deadLettered, 0)
      assert.deepStrictEqual(yield* queue.deadLetters, [])
      assert.strictEqual(yield* queue.purge(), 0)
      assert.strictEqual(yield* queue.redrive(), 0, "a purged message cannot be redriven")
      assert.deepStrictEqual(
        (yield* queue.receive({ max: 10 })).map((delivery) => delivery.messageId),
        [live],
        "the live message is untouched"
      )
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect("release gives a delivery back without counting the attempt", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const id = newId()
      yield* queue.publish(msg(id))
      const [delivery] = yield* queue.receive()
      yield* queue.release(delivery!.receipt)
      assert.strictEqual((yield* queue.stats).ready, 1)
      assert.strictEqual(yield* tagOf(queue.release(delivery!.receipt)), "ReceiptInvalid")
      const [again] = yield* queue.receive()
      assert.strictEqual(again!.messageId, id)
      assert.strictEqual(again!.attempt, 1)
      // maxDeliveries 1: had the releases counted, the message would be out of deliveries by now.
      yield* queue.release(again!.receipt)
      const [third] = yield* queue.receive()
      assert.strictEqual(third!.attempt, 1)
      yield* queue.ack(third!.receipt)
      assert.strictEqual((yield* queue.stats).deadLettered, 0)
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect("ack with a result stores it; the result of a stale ack is not stored", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const stored = yield* StoredResults
      const [done, expired] = ids(2)
      yield* queue.publish(msg(done!))
      yield* queue.publish(msg(expired!))
      const [first] = yield* queue.receive({ visibilityTimeout: 60_000 })
      const [second] = yield* queue.receive({ visibilityTimeout: 100 })
      const result = { concentrationClass: "Parfum", total: 30.7, notes: ["citrus", "wood"], exact: null }
      yield* queue.ack(first!.receipt, { result })
      assert.deepStrictEqual(yield* stored.resultOf(done!), Option.some(result))

      yield* TestClock.adjust(100)
      assert.strictEqual(yield* tagOf(queue.ack(second!.receipt, { result: "late" })), "ReceiptInvalid")
      assert.isTrue(Option.isNone(yield* stored.resultOf(expired!)))
      const [again] = yield* queue.receive()
      yield* queue.ack(again!.receipt, { result: 2 })
      assert.deepStrictEqual(yield* stored.resultOf(expired!), Option.some(2))
    }).pipe(withQueue())
  )

  describe("duplicates", () => {
    it.effect("a message id already present is not added twice: ready, in flight, delayed or dead-lettered", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const id = newId()
        yield* queue.publish(msg(id, { v: 1 }))
        assert.deepStrictEqual(yield* queue.publish(msg(id, { v: 2 })), { messageId: id, duplicate: true })
        const [delivery] = yield* queue.receive({ max: 10 })
        assert.deepStrictEqual(delivery!.body, { v: 1 }, "the first body stays")
        assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])

        assert.isTrue((yield* queue.publish(msg(id))).duplicate, "in flight")
        assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
        yield* queue.nack(delivery!.receipt, { delay: 1_000 })
        assert.isTrue((yield* queue.publish(msg(id))).duplicate, "delayed")
        assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
        yield* TestClock.adjust(1_000)
        const [again] = yield* queue.receive({ max: 10 })
        yield* queue.nack(again!.receipt) // → dead letter (maxDeliveries 2)
        assert.isTrue((yield* queue.publish(msg(id))).duplicate, "dead-lettered")
        assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
        assert.strictEqual((yield* queue.deadLetters).length, 1)
      }).pipe(withQueue({ maxDeliveries: 2 }))
    )

    it.effect("a duplicate id is answered even when the queue is full", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const id = newId()
        yield* queue.publish(msg(id))
        assert.isTrue((yield* queue.publish(msg(id))).duplicate)
      }).pipe(withQueue({ capacity: 1 }))
    )
  })

  describe("capacity", () => {
    it.effect("publishing into a full queue fails at once with QueueFull; in flight counts; an ack frees room", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const [a, b, c] = ids(3)
        yield* queue.publish(msg(a!))
        yield* queue.publish(msg(b!))
        const error = yield* Effect.flip(queue.publish(msg(c!)))
        assert.strictEqual(error._tag, "QueueFull")
        assert.strictEqual(error.capacity, 2)
        assert.strictEqual(error.messageId, c)
        assert.strictEqual(yield* tagOf(queue.reserve(msg(c!))), "QueueFull")
        const stats = yield* queue.stats
        assert.deepInclude(stats, { capacity: 2, size: 2, available: 0 })

        const [delivery] = yield* queue.receive()
        assert.strictEqual(yield* tagOf(queue.publish(msg(c!))), "QueueFull", "in flight counts")
        yield* queue.ack(delivery!.receipt)
        assert.isFalse((yield* queue.publish(msg(c!))).duplicate)
        assert.deepStrictEqual(
          (yield* queue.receive({ max: 10 })).map((d) => d.messageId),
          [b, c]
        )
      }).pipe(withQueue({ capacity: 2 }))
    )

    it.effect("reservations count against the capacity; abort frees their room", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const [a, b, c] = ids(3)
        const reservation = yield* queue.reserve(msg(a!))
        assert.isFalse(reservation.duplicate)
        yield* queue.reserve(msg(b!))
        assert.strictEqual(yield* tagOf(queue.publish(msg(c!))), "QueueFull")
        yield* queue.abort(reservation)
        yield* queue.publish(msg(c!))
        assert.strictEqual((yield* queue.stats).size, 2)
      }).pipe(withQueue({ capacity: 2 }))
    )

    it.effect("a dead-lettering frees room", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg(newId()))
        const [delivery] = yield* queue.receive()
        assert.strictEqual(yield* tagOf(queue.publish(msg(newId()))), "QueueFull")
        yield* queue.nack(delivery!.receipt)
        yield* queue.publish(msg(newId()))
      }).pipe(withQueue({ capacity: 1, maxDeliveries: 1 }))
    )

    it.effect("awaitRoom completes at once while there is room, else when a message leaves", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.awaitRoom
        yield* queue.publish(msg(newId()))
        const fiber = yield* Effect.forkChild(queue.awaitRoom)
        yield* settle
        assert.isUndefined(fiber.pollUnsafe())
        const [delivery] = yield* queue.receive()
        yield* queue.ack(delivery!.receipt)
        yield* advanceUntilDone(fiber, pollStep, 10 * pollStep)
      }).pipe(withQueue({ capacity: 1 }))
    )
  })

  describe("long poll", () => {
    it.effect("a waiting receive is woken by a publish", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fiber = yield* Effect.forkChild(queue.receive({ wait: "10 seconds" }))
        yield* waitingIs(queue, 1)
        const id = newId()
        yield* queue.publish(msg(id))
        const deliveries = yield* joinWithin(fiber, 5_000)
        assert.deepStrictEqual(
          deliveries.map((d) => d.messageId),
          [id]
        )
        assert.strictEqual((yield* queue.stats).waiting, 0)
      }).pipe(withQueue())
    )

    it.effect("returns empty once the wait is over", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fiber = yield* Effect.forkChild(queue.receive({ wait: 2_000 }))
        yield* waitingIs(queue, 1)
        yield* TestClock.adjust(1_999)
        assert.isUndefined(fiber.pollUnsafe())
        assert.deepStrictEqual(yield* advanceUntilDone(fiber, pollStep, 2 * pollStep), [])
        assert.strictEqual((yield* queue.stats).waiting, 0)
      }).pipe(withQueue())
    )

    it.effect("a message returning from a visibility timeout wakes a waiter", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg(newId()))
        yield* queue.receive({ visibilityTimeout: 500 })
        const fiber = yield* Effect.forkChild(queue.receive({ wait: 10_000 }))
        yield* waitingIs(queue, 1)
        yield* TestClock.adjust(499)
        const [delivery] = yield* advanceUntilDone(fiber, pollStep, 1 + 2 * pollStep)
        assert.strictEqual(delivery!.attempt, 2)
      }).pipe(withQueue())
    )

    it.effect("a message returning from a nack delay wakes a waiter", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* queue.publish(msg(newId()))
        const [first] = yield* queue.receive()
        yield* queue.nack(first!.receipt, { delay: 500 })
        const fiber = yield* Effect.forkChild(queue.receive({ wait: 10_000 }))
        yield* waitingIs(queue, 1)
        yield* TestClock.adjust(499)
        const [delivery] = yield* advanceUntilDone(fiber, pollStep, 1 + 2 * pollStep)
        assert.strictEqual(delivery!.attempt, 2)
      }).pipe(withQueue())
    )

    it.effect("several waiters share a burst of messages and none is stranded", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(queue.receive({ wait: 10_000 })))
        yield* waitingIs(queue, 3)
        const published = ids(3)
        for (const id of published) yield* queue.publish(msg(id))
        const results = yield* Effect.forEach(fibers, (fiber) => joinWithin(fiber, 5_000))
        assert.deepStrictEqual(
          results.map((deliveries) => deliveries.length),
          [1, 1, 1]
        )
        assert.sameMembers(
          results.flat().map((d) => d.messageId),
          published
        )
      }).pipe(withQueue())
    )

    it.effect("an interrupted waiter takes nothing with it", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fiber = yield* Effect.forkChild(queue.receive({ wait: 10_000 }))
        yield* waitingIs(queue, 1)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual((yield* queue.stats).waiting, 0)
        yield* queue.publish(msg(newId()))
        yield* settle
        assert.strictEqual((yield* queue.stats).ready, 1)
        assert.strictEqual((yield* queue.receive()).length, 1)
      }).pipe(withQueue())
    )

    it.effect("stopWaiting (shutdown) answers every waiter now with nothing; later receives do not wait", () =>
      Effect.gen(function* () {
        const queue = yield* MessageQueue
        const fibers = yield* Effect.forEach([1, 2], () => Effect.forkChild(queue.receive({ wait: 10_000 })))
        yield* waitingIs(queue, 2)
        yield* queue.stopWaiting
        // No clock adjustment: the waiters return without their wait running out.
        assert.deepStrictEqual(yield* Effect.forEach(fibers, (fiber) => joinWithin(fiber, 5_000)), [[], []])
        assert.deepStrictEqual(yield* joinWithin(yield* Effect.forkChild(queue.receive({ wait: 10_000 })), 5_000), [])
        // Messages are still delivered to whoever asks.
        const id = newId()
        yield* queue.publish(msg(id))
        assert.deepStrictEqual(
          (yield* queue.receive({ wait: 10_000 })).map((delivery) => delivery.messageId),
          [id]
        )
      }).pipe(withQueue())
    )
  })

  it.effect.prop(
    "random interleavings keep the queue's guarantees",
    [Commands],
    ([commands]) =>
      runCommands(commands, newSeen()).pipe(withQueue({ capacity, maxDeliveries, visibilityTimeout: 1_000 })),
    { arbitrary: { runs: backend.propertyRuns, size: 60 } }
  )
}
