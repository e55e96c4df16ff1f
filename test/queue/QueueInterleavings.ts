/**
 * The conformance suite's random interleavings (QueueConformance.ts): publish,
 * receive, ack, nack, extend, release, clock advances, redrive and purge
 * against one small queue, checked against a model of which messages exist.
 * Ids are few (a slot holds one id until its message is gone, then a fresh
 * one) and the capacity small, so duplicates, full queues, stale receipts,
 * redeliveries, dead letters, redrives and purges all happen often. Acked and
 * purged ids are never published again: the memory queue forgets them, the
 * table remembers them (each backend's own tests say which).
 */
import { assert } from "@effect/vitest"
import { Arbitrary, Effect, Exit, Schema } from "effect"
import { TestClock } from "effect/testing"
import { randomUUID } from "node:crypto"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))
const IdSlot = int(0, 5)
const ReceiptSlot = int(0, 15)

const Command = Schema.Union([
  Schema.TaggedStruct("Publish", { slot: IdSlot }),
  Schema.TaggedStruct("Receive", { max: int(1, 3), visibilityMs: int(1, 3_000) }),
  Schema.TaggedStruct("Ack", { slot: ReceiptSlot }),
  Schema.TaggedStruct("Nack", { slot: ReceiptSlot, delayMs: int(0, 2_000) }),
  Schema.TaggedStruct("Extend", { slot: ReceiptSlot, visibilityMs: int(0, 3_000) }),
  Schema.TaggedStruct("Release", { slot: ReceiptSlot }),
  Schema.TaggedStruct("Advance", { ms: int(0, 4_000) }),
  Schema.TaggedStruct("Redrive", {}),
  Schema.TaggedStruct("Purge", {})
])
type Command = typeof Command.Type

export const Commands = Arbitrary.array(Arbitrary.schema(Command), { minLength: 1, maxLength: 60 })

export const capacity = 3
export const maxDeliveries = 2

/** How often the interesting cases came up, over the runs that shared one of these. */
export const newSeen = () => ({
  full: 0,
  duplicate: 0,
  staleReceipt: 0,
  redelivered: 0,
  released: 0,
  deadLettered: 0,
  redriven: 0,
  purged: 0,
  acked: 0
})
export type Seen = ReturnType<typeof newSeen>

interface Incarnation {
  readonly n: number
  readonly id: string
  status: "present" | "acked" | "purged"
  acks: number
  receipts: Array<string>
}

interface Body {
  readonly n: number
}

/** Runs `commands` against the queue in context (capacity and maxDeliveries as above, visibility 1 s). */
export const runCommands = (commands: ReadonlyArray<Command>, seen: Seen) =>
  Effect.gen(function* () {
    const queue = yield* MessageQueue
    const incarnations = new Map<number, Incarnation>()
    /** slot → the message present under that slot's id */
    const slots = new Map<number, Incarnation>()
    const receipts: Array<{ readonly receipt: string; readonly incarnation: Incarnation }> = []
    let nextN = 0

    const checkStats = Effect.gen(function* () {
      const stats = yield* queue.stats
      assert.strictEqual(stats.size, stats.pending + stats.ready + stats.delayed + stats.inFlight)
      assert.strictEqual(stats.pending, 0)
      assert.strictEqual(stats.available, stats.capacity - stats.size)
      assert.isAtMost(stats.size, capacity)
      const present = [...incarnations.values()].filter((i) => i.status === "present").length
      assert.strictEqual(stats.ready + stats.delayed + stats.inFlight + stats.deadLettered, present, "present messages")
    })

    const deliver = (deliveries: ReadonlyArray<{ readonly receipt: string; readonly body: unknown }>) =>
      Effect.gen(function* () {
        for (const delivery of deliveries) {
          const incarnation = incarnations.get((delivery.body as Body).n)!
          assert.strictEqual(incarnation.status, "present", "only present messages are delivered")
          // One owner at a time: every earlier receipt of this message is dead.
          for (const old of incarnation.receipts) {
            assert.isTrue(Exit.isFailure(yield* Effect.exit(queue.extend(old, 1_000))), "an earlier receipt is valid")
          }
          if (incarnation.receipts.length > 0) seen.redelivered++
          incarnation.receipts.push(delivery.receipt)
          receipts.push({ receipt: delivery.receipt, incarnation })
        }
      })

    const ackSucceeded = (incarnation: Incarnation) => {
      incarnation.acks++
      seen.acked++
      assert.strictEqual(incarnation.acks, 1, "acked once")
      incarnation.status = "acked"
    }

    const publish = (slot: number) =>
      Effect.gen(function* () {
        const existing = slots.get(slot)
        const current = existing?.status === "present" ? existing : undefined
        const id = current?.id ?? randomUUID()
        const sizeBefore = (yield* queue.stats).size
        const n = nextN++
        const exit = yield* Effect.exit(queue.publish({ messageId: id, body: { n } satisfies Body }))
        if (current !== undefined) {
          assert.deepStrictEqual(exit, Exit.succeed({ messageId: id, duplicate: true }))
          seen.duplicate++
        } else if (sizeBefore >= capacity) {
          assert.isTrue(Exit.isFailure(exit), "QueueFull when full")
          seen.full++
        } else {
          assert.deepStrictEqual(exit, Exit.succeed({ messageId: id, duplicate: false }))
          const incarnation: Incarnation = { n, id, status: "present", acks: 0, receipts: [] }
          incarnations.set(n, incarnation)
          slots.set(slot, incarnation)
        }
      })

    for (const command of commands) {
      switch (command._tag) {
        case "Publish":
          yield* publish(command.slot)
          break
        case "Receive":
          yield* deliver(yield* queue.receive({ max: command.max, visibilityTimeout: command.visibilityMs }))
          break
        case "Ack": {
          if (receipts.length === 0) break
          const { incarnation, receipt } = receipts[command.slot % receipts.length]!
          yield* queue.ack(receipt).pipe(
            Effect.match({
              onSuccess: () => ackSucceeded(incarnation),
              onFailure: (error) => {
                assert.strictEqual(error._tag, "ReceiptInvalid")
                seen.staleReceipt++
              }
            })
          )
          break
        }
        case "Nack": {
          if (receipts.length === 0) break
          const { receipt } = receipts[command.slot % receipts.length]!
          yield* Effect.ignore(queue.nack(receipt, { delay: command.delayMs, error: "nacked by test" }))
          break
        }
        case "Extend": {
          if (receipts.length === 0) break
          const { receipt } = receipts[command.slot % receipts.length]!
          yield* Effect.ignore(queue.extend(receipt, command.visibilityMs))
          break
        }
        case "Release": {
          if (receipts.length === 0) break
          const { receipt } = receipts[command.slot % receipts.length]!
          if (Exit.isSuccess(yield* Effect.exit(queue.release(receipt)))) seen.released++
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
            assert.strictEqual(incarnation.status, "present")
            incarnation.status = "purged"
            seen.purged++
          }
          break
        }
      }
      yield* checkStats
    }

    // Drain: receive and ack until nothing is left but dead letters.
    for (let round = 0; round < 50 && (yield* queue.stats).size > 0; round++) {
      yield* TestClock.adjust(10_000)
      const deliveries = yield* queue.receive({ max: 100 })
      yield* deliver(deliveries)
      for (const delivery of deliveries) {
        yield* queue.ack(delivery.receipt)
        ackSucceeded(incarnations.get((delivery.body as Body).n)!)
      }
    }
    assert.strictEqual((yield* queue.stats).size, 0, "drained")

    // Every published message ended acked once, dead-lettered or purged.
    const dead = (yield* queue.deadLetters).map((letter) => (letter.body as Body).n)
    assert.strictEqual(new Set(dead).size, dead.length)
    seen.deadLettered += dead.length
    for (const incarnation of incarnations.values()) {
      const isDead = dead.includes(incarnation.n)
      if (incarnation.status === "purged") {
        assert.isFalse(isDead)
      } else if (isDead) {
        assert.strictEqual(incarnation.status, "present")
        assert.isAtLeast(incarnation.receipts.length, 1)
      } else {
        assert.strictEqual(incarnation.status, "acked")
      }
    }
  })
