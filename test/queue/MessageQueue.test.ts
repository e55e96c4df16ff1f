/**
 * The in-memory queue: the conformance suite every backend passes
 * (QueueConformance.ts), then what only this backend does: two-phase publish
 * with joinable reservation handles, forgetting acked and purged ids, the
 * storage hooks (ack durable when answered, dead-letterings and redrives
 * persisted in order), restored dead letters, its timer fiber, metrics and
 * configuration.
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, ConfigProvider, Context, Effect, Exit, Fiber, Latch, Layer, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import { MessageQueue, type MessageQueueOptions } from "../../src/queue/MessageQueue.ts"
import { queueConformance } from "./QueueConformance.ts"
import { capacity, Commands, maxDeliveries, newSeen, runCommands } from "./QueueInterleavings.ts"
import { memoryQueue } from "../support/QueueBackends.ts"

describe("MessageQueue conformance (memory)", () => {
  queueConformance(memoryQueue)

  // Its own interleavings (a fixed seed), so it holds when run alone, in any order.
  it.effect("the suite's generated interleavings reach every interesting case", () =>
    Effect.gen(function* () {
      const seen = newSeen()
      for (const commands of yield* Arbitrary.sampleEffect(Commands, { count: 200, size: 60, seed: 11 })) {
        yield* runCommands(commands, seen).pipe(
          Effect.provide(memoryQueue.layer({ capacity, maxDeliveries, visibilityTimeout: 1_000 }))
        )
      }
      for (const [name, count] of Object.entries(seen)) assert.isAbove(count, 10, name)
    })
  )
})

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
  it.effect("publish → receive → ack without hooks, counted in the totals", () =>
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

  it.effect("after maxDeliveries an expired message is dead-lettered by the timer at its deadline", () =>
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

  it.effect("release gives a delivery back to the front of the ready messages", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* queue.publish(msg("m1"))
      yield* queue.publish(msg("m2"))
      const [delivery] = yield* queue.receive()
      yield* queue.release(delivery!.receipt)
      const [again] = yield* queue.receive()
      assert.strictEqual(again!.messageId, "m1")
      assert.strictEqual(again!.attempt, 1)
    }).pipe(withQueue())
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

    it.effect("a message id already present is not added twice, in any state; acked ids are forgotten", () =>
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
