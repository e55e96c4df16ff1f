/**
 * Random interleavings of publish / reserve / commit / abort / receive / ack /
 * nack / extend and clock advances against one small queue, checked against a
 * model of which messages exist. Ids are few and the capacity small so that
 * duplicates, joined reservations, full queues, stale receipts, redeliveries and
 * dead letters all happen often.
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Exit, Schema } from "effect"
import { TestClock } from "effect/testing"
import { MessageQueue, type Reservation } from "../../src/queue/MessageQueue.ts"

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))
const Id = int(0, 7)
const Slot = int(0, 15)

const Command = Schema.Union([
  Schema.TaggedStruct("Publish", { id: Id }),
  Schema.TaggedStruct("Reserve", { id: Id }),
  Schema.TaggedStruct("Commit", { slot: Slot }),
  Schema.TaggedStruct("Abort", { slot: Slot }),
  Schema.TaggedStruct("Receive", { max: int(1, 3), visibilityMs: int(1, 3_000) }),
  Schema.TaggedStruct("Ack", { slot: Slot }),
  Schema.TaggedStruct("Nack", { slot: Slot, delayMs: int(0, 2_000) }),
  Schema.TaggedStruct("Extend", { slot: Slot, visibilityMs: int(0, 3_000) }),
  Schema.TaggedStruct("Advance", { ms: int(0, 4_000) }),
  Schema.TaggedStruct("Redrive", {}),
  Schema.TaggedStruct("Purge", {})
])
type Command = typeof Command.Type

const Commands = Arbitrary.array(Arbitrary.schema(Command), { minLength: 1, maxLength: 80 })

/** How often the interesting cases came up, over the runs that shared one of these. */
const newSeen = () => ({
  redriven: 0,
  full: 0,
  joined: 0,
  duplicate: 0,
  staleAck: 0,
  redelivered: 0,
  deadLettered: 0,
  aborted: 0,
  acked: 0
})
type Seen = ReturnType<typeof newSeen>

const capacity = 4
const maxDeliveries = 2

interface Incarnation {
  readonly n: number
  readonly id: string
  status: "pending" | "committed" | "aborted" | "acked" | "purged"
  holders: number
  acks: number
  receipts: Array<string>
}

interface Body {
  readonly n: number
}

const run = (commands: ReadonlyArray<Command>, seen: Seen) =>
  Effect.gen(function* () {
    const queue = yield* MessageQueue
    const incarnations = new Map<number, Incarnation>()
    /** id → the incarnation present in the queue (pending or committed, not yet acked). */
    const present = new Map<string, Incarnation>()
    const open: Array<{ readonly reservation: Reservation; readonly incarnation: Incarnation | undefined }> = []
    const receipts: Array<{ readonly receipt: string; readonly incarnation: Incarnation }> = []
    let nextN = 0

    const checkStats = Effect.gen(function* () {
      const stats = yield* queue.stats
      assert.strictEqual(stats.size, stats.pending + stats.ready + stats.delayed + stats.inFlight)
      assert.strictEqual(stats.available, stats.capacity - stats.size)
      assert.isAtMost(stats.size, capacity)
      const all = [...incarnations.values()]
      assert.strictEqual(stats.pending, all.filter((i) => i.status === "pending").length, "pending")
      assert.strictEqual(
        stats.ready + stats.delayed + stats.inFlight + stats.deadLettered,
        all.filter((i) => i.status === "committed").length,
        "committed messages"
      )
      const { acked, deadLettered, published, purged, redriven } = stats.totals
      assert.strictEqual(deadLettered - redriven - purged, stats.deadLettered, "dead letters add up")
      assert.strictEqual(published + redriven - acked - deadLettered, stats.size - stats.pending, "totals add up")
    })

    const deliver = (deliveries: ReadonlyArray<{ readonly receipt: string; readonly body: unknown }>) =>
      Effect.gen(function* () {
        for (const delivery of deliveries) {
          const incarnation = incarnations.get((delivery.body as Body).n)!
          assert.strictEqual(incarnation.status, "committed", "only committed messages are delivered")
          // One owner at a time: every earlier receipt of this message is dead.
          for (const old of incarnation.receipts) {
            const exit = yield* Effect.exit(queue.extend(old, 1_000))
            assert.isTrue(Exit.isFailure(exit), "an earlier receipt is still valid")
          }
          if (incarnation.receipts.length > 0) seen.redelivered++
          incarnation.receipts.push(delivery.receipt)
          receipts.push({ receipt: delivery.receipt, incarnation })
        }
      })

    const ackSucceeded = (incarnation: Incarnation) => {
      incarnation.acks++
      assert.strictEqual(incarnation.acks, 1, "acked once")
      incarnation.status = "acked"
      present.delete(incarnation.id)
    }

    const reserveOrPublish = (id: string, publish: boolean) =>
      Effect.gen(function* () {
        const existing = present.get(id)
        const sizeBefore = (yield* queue.stats).size
        const n = nextN++
        const message = { messageId: id, body: { n } satisfies Body }
        if (publish) {
          const exit = yield* Effect.exit(queue.publish(message))
          if (existing !== undefined) {
            assert.deepStrictEqual(exit, Exit.succeed({ messageId: id, duplicate: true }))
            // publish joins a pending reservation and commits it
            if (existing.status === "pending") existing.status = "committed"
          } else if (sizeBefore >= capacity) {
            assert.isTrue(Exit.isFailure(exit), "QueueFull when full")
            seen.full++
          } else {
            assert.deepStrictEqual(exit, Exit.succeed({ messageId: id, duplicate: false }))
            const incarnation: Incarnation = { n, id, status: "committed", holders: 0, acks: 0, receipts: [] }
            incarnations.set(n, incarnation)
            present.set(id, incarnation)
          }
          return
        }
        const exit = yield* Effect.exit(queue.reserve(message))
        if (existing !== undefined) {
          assert.isTrue(Exit.isSuccess(exit) && exit.value.duplicate)
          if (Exit.isSuccess(exit)) {
            const joins = existing.status === "pending"
            if (joins) existing.holders++
            seen[joins ? "joined" : "duplicate"]++
            open.push({ reservation: exit.value, incarnation: joins ? existing : undefined })
          }
        } else if (sizeBefore >= capacity) {
          assert.isTrue(Exit.isFailure(exit), "QueueFull when full")
          seen.full++
        } else {
          assert.isTrue(Exit.isSuccess(exit) && !exit.value.duplicate)
          if (Exit.isSuccess(exit)) {
            const incarnation: Incarnation = { n, id, status: "pending", holders: 1, acks: 0, receipts: [] }
            incarnations.set(n, incarnation)
            present.set(id, incarnation)
            open.push({ reservation: exit.value, incarnation })
          }
        }
      })

    const settleReservation = (slot: number, commit: boolean) =>
      Effect.gen(function* () {
        if (open.length === 0) return
        const [{ incarnation, reservation }] = open.splice(slot % open.length, 1)
        yield* commit ? queue.commit(reservation) : queue.abort(reservation)
        if (incarnation === undefined) return
        incarnation.holders--
        if (incarnation.status !== "pending") return
        if (commit) incarnation.status = "committed"
        else if (incarnation.holders === 0) {
          incarnation.status = "aborted"
          present.delete(incarnation.id)
          seen.aborted++
        }
      })

    for (const command of commands) {
      switch (command._tag) {
        case "Publish":
        case "Reserve":
          yield* reserveOrPublish(`m${command.id}`, command._tag === "Publish")
          break
        case "Commit":
        case "Abort":
          yield* settleReservation(command.slot, command._tag === "Commit")
          break
        case "Receive":
          yield* deliver(yield* queue.receive({ max: command.max, visibilityTimeout: command.visibilityMs }))
          break
        case "Ack": {
          if (receipts.length === 0) break
          const { incarnation, receipt } = receipts[command.slot % receipts.length]
          yield* queue.ack(receipt).pipe(
            Effect.match({
              onSuccess: () => ackSucceeded(incarnation),
              onFailure: (error) => {
                assert.strictEqual(error._tag, "ReceiptInvalid")
                seen.staleAck++
              }
            })
          )
          break
        }
        case "Nack": {
          if (receipts.length === 0) break
          const { receipt } = receipts[command.slot % receipts.length]
          yield* Effect.ignore(queue.nack(receipt, { delay: command.delayMs, error: "nacked by test" }))
          break
        }
        case "Extend": {
          if (receipts.length === 0) break
          const { receipt } = receipts[command.slot % receipts.length]
          yield* Effect.ignore(queue.extend(receipt, command.visibilityMs))
          break
        }
        case "Advance":
          yield* TestClock.adjust(command.ms)
          break
        case "Redrive":
          seen.redriven += yield* queue.redrive()
          break
        case "Purge": {
          const dead = yield* queue.deadLetters
          assert.strictEqual(yield* queue.purge(), dead.length)
          for (const letter of dead) {
            const incarnation = incarnations.get((letter.body as Body).n)!
            assert.strictEqual(incarnation.status, "committed")
            incarnation.status = "purged"
            present.delete(incarnation.id)
          }
          break
        }
      }
      yield* checkStats
    }

    // Drain: commit what is still reserved, then receive and ack until empty.
    while (open.length > 0) yield* settleReservation(0, true)
    yield* checkStats
    for (let round = 0; round < 100 && (yield* queue.stats).size > 0; round++) {
      yield* TestClock.adjust(10_000)
      const deliveries = yield* queue.receive({ max: 100 })
      yield* deliver(deliveries)
      for (const delivery of deliveries) {
        yield* queue.ack(delivery.receipt)
        ackSucceeded(incarnations.get((delivery.body as Body).n)!)
      }
    }
    assert.strictEqual((yield* queue.stats).size, 0, "drained")

    // Every committed message ended acked or dead-lettered, exactly once.
    const dead = (yield* queue.deadLetters).map((letter) => (letter.body as Body).n)
    assert.strictEqual(new Set(dead).size, dead.length)
    seen.deadLettered += dead.length
    seen.acked += [...incarnations.values()].filter((i) => i.status === "acked").length
    for (const incarnation of incarnations.values()) {
      const isDead = dead.includes(incarnation.n)
      if (incarnation.status === "purged") {
        assert.isFalse(isDead)
      } else if (incarnation.status === "aborted") {
        assert.strictEqual(incarnation.receipts.length, 0, "an aborted message was delivered")
        assert.isFalse(isDead)
      } else if (isDead) {
        assert.strictEqual(incarnation.acks, 0)
        assert.isAtLeast(incarnation.receipts.length, 1)
      } else {
        assert.strictEqual(incarnation.status, "acked")
        assert.strictEqual(incarnation.acks, 1)
      }
    }
  }).pipe(Effect.provide(MessageQueue.layerWith({ capacity, maxDeliveries, visibilityTimeout: 1_000 })))

describe("MessageQueue properties", () => {
  it.effect.prop(
    "random interleavings keep the queue's guarantees",
    [Commands],
    ([commands]) => run(commands, newSeen()),
    { arbitrary: { runs: 1000, size: 80 } }
  )

  // Its own interleavings (a fixed seed), so it holds when run alone, in any order.
  it.effect("the generated interleavings reach every interesting case", () =>
    Effect.gen(function* () {
      const seen = newSeen()
      for (const commands of yield* Arbitrary.sampleEffect(Commands, { count: 300, size: 80, seed: 9 })) {
        yield* run(commands, seen)
      }
      for (const [name, count] of Object.entries(seen)) assert.isAbove(count, 10, name)
    })
  )
})
