import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { backoffDelay, consume, describeFailure } from "../../src/queue/Consumer.ts"
import { type Delivery, MessageQueue, type MessageQueueOptions, type QueueStats } from "../../src/queue/MessageQueue.ts"
import { Cause } from "effect"

const withQueue =
  (options: MessageQueueOptions = {}) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.provide(effect, MessageQueue.layerWith(options))

const msg = (messageId: string) => ({ messageId, body: { id: messageId } })

/** Lets the consumer's fibers run until `check` holds (no clock involved). */
const eventually = (check: (stats: QueueStats) => boolean) =>
  Effect.gen(function* () {
    const queue = yield* MessageQueue
    for (let i = 0; i < 500; i++) {
      const stats = yield* queue.stats
      if (check(stats)) return stats
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`condition never held: ${JSON.stringify(yield* queue.stats)}`))
  })

/** Starts a consumer in its own scope; closing the scope stops it. */
const startConsumer = <E>(
  handler: (delivery: Delivery) => Effect.Effect<unknown, E>,
  options: Parameters<typeof consume>[1]
) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* consume(handler, options).pipe(Scope.provide(scope))
    return scope
  })

describe("consume", () => {
  it.effect("acks each message its handler processed", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const seen: Array<string> = []
      yield* startConsumer((delivery) => Effect.sync(() => seen.push(delivery.messageId)), { concurrency: 2 })
      for (let i = 0; i < 5; i++) yield* queue.publish(msg(`m${i}`))
      const stats = yield* eventually((s) => s.totals.acked === 5)
      assert.strictEqual(stats.size, 0)
      assert.sameMembers(seen, ["m0", "m1", "m2", "m3", "m4"])
    }).pipe(withQueue())
  )

  it.effect(
    "the handler's value is the ack's result (undefined: none); an ack that cannot be recorded leaves the message in flight and the worker going",
    () => {
      const results: Array<[string, unknown]> = []
      let refuse = true
      return Effect.gen(function* () {
        const queue = yield* MessageQueue
        yield* startConsumer(
          (delivery) => Effect.succeed(delivery.messageId === "none" ? undefined : { class: delivery.messageId }),
          { concurrency: 1, visibilityTimeout: 1_000 }
        )
        yield* queue.publish(msg("refused"))
        yield* eventually((s) => s.inFlight === 1 && results.length === 1)
        assert.strictEqual((yield* queue.stats).totals.acked, 0, "not recorded: not acked")
        // Redelivered at its deadline, processed again, recorded this time.
        yield* TestClock.adjust(1_000)
        yield* eventually((s) => s.totals.acked === 1)
        yield* queue.publish(msg("parfum"))
        yield* queue.publish(msg("none"))
        yield* eventually((s) => s.totals.acked === 3)
        assert.deepStrictEqual(results, [
          ["refused", { class: "refused" }],
          ["refused", { class: "refused" }],
          ["parfum", { class: "parfum" }],
          ["none", undefined]
        ])
      }).pipe(
        withQueue({
          onAck: (ack) =>
            Effect.suspend(() => {
              results.push([ack.messageId, ack.result])
              if (refuse) {
                refuse = false
                return Effect.fail(new Error("database unavailable"))
              }
              return Effect.void
            })
        })
      )
    }
  )

  it.effect("runs at most `concurrency` handlers at once", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      let running = 0
      let peak = 0
      yield* startConsumer(
        () =>
          Effect.gen(function* () {
            running++
            peak = Math.max(peak, running)
            yield* Effect.sleep(100)
            running--
          }),
        { concurrency: 3 }
      )
      for (let i = 0; i < 10; i++) yield* queue.publish(msg(`m${i}`))
      yield* eventually((s) => s.inFlight === 3)
      for (let i = 0; i < 4; i++) {
        yield* TestClock.adjust(100)
        yield* eventually((s) => s.totals.acked >= Math.min(10, 3 * (i + 1)))
      }
      assert.strictEqual((yield* queue.stats).totals.acked, 10)
      assert.strictEqual(peak, 3)
    }).pipe(withQueue())
  )

  it.effect("a failing handler is nacked with exponential backoff, then dead-lettered with its error", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const attempts: Array<number> = []
      yield* startConsumer(
        (delivery) =>
          Effect.sync(() => attempts.push(delivery.attempt)).pipe(
            Effect.andThen(Effect.fail(new Error(`downstream refused attempt ${delivery.attempt}`)))
          ),
        { concurrency: 1, backoff: { initial: 100, max: 150 } }
      )
      yield* queue.publish(msg("m1"))
      yield* eventually((s) => s.delayed === 1)
      assert.deepStrictEqual(attempts, [1])

      yield* TestClock.adjust(99) // backoff after attempt 1: 100 ms
      yield* eventually((s) => s.delayed === 1)
      assert.deepStrictEqual(attempts, [1])
      yield* TestClock.adjust(1)
      yield* eventually((s) => s.delayed === 1 && attempts.length === 2)

      yield* TestClock.adjust(149) // after attempt 2: min(150, 200) ms
      yield* eventually((s) => s.delayed === 1)
      assert.deepStrictEqual(attempts, [1, 2])
      yield* TestClock.adjust(1)
      const stats = yield* eventually((s) => s.deadLettered === 1)
      assert.deepStrictEqual(attempts, [1, 2, 3])
      assert.strictEqual(stats.size, 0)
      const [letter] = yield* queue.deadLetters
      assert.strictEqual(letter.attempts, 3)
      assert.strictEqual(letter.lastError, "Error: downstream refused attempt 3")
    }).pipe(withQueue({ maxDeliveries: 3 }))
  )

  it.effect("a defect in the handler counts as a failure", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      yield* startConsumer(() => Effect.die("kaboom"), { concurrency: 1 })
      yield* queue.publish(msg("m1"))
      yield* eventually((s) => s.deadLettered === 1)
      assert.strictEqual((yield* queue.deadLetters)[0].lastError, "kaboom")
    }).pipe(withQueue({ maxDeliveries: 1 }))
  )

  it.effect("a slow handler's delivery is extended while it runs, not redelivered", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const attempts: Array<number> = []
      yield* startConsumer(
        (delivery) => Effect.sync(() => attempts.push(delivery.attempt)).pipe(Effect.andThen(Effect.sleep(5_000))),
        { concurrency: 2, visibilityTimeout: 1_000 }
      )
      yield* queue.publish(msg("slow"))
      yield* eventually((s) => s.inFlight === 1)
      for (let t = 0; t < 5_000; t += 250) {
        yield* TestClock.adjust(250)
        yield* eventually(() => true)
      }
      const stats = yield* eventually((s) => s.totals.acked === 1)
      assert.deepStrictEqual(attempts, [1])
      assert.strictEqual(stats.totals.expired, 0)
      assert.strictEqual(stats.totals.redelivered, 0)
    }).pipe(withQueue())
  )

  it.effect("stopping returns in-flight messages to the queue without counting the attempt", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const scope = yield* startConsumer(() => Effect.never, { concurrency: 2 })
      yield* queue.publish(msg("a"))
      yield* queue.publish(msg("b"))
      yield* queue.publish(msg("c"))
      yield* eventually((s) => s.inFlight === 2)
      yield* Scope.close(scope, Exit.void)
      const stats = yield* queue.stats
      assert.strictEqual(stats.inFlight, 0)
      assert.strictEqual(stats.ready, 3)
      assert.strictEqual(stats.totals.released, 2)
      const deliveries = yield* queue.receive({ max: 3 })
      assert.deepStrictEqual(
        deliveries.map((d) => d.attempt),
        [1, 1, 1]
      )
    }).pipe(withQueue())
  )

  it.effect("stopping with a grace period lets running handlers finish and ack", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const scope = yield* startConsumer(() => Effect.sleep(100), { concurrency: 1, shutdownGracePeriod: 1_000 })
      yield* queue.publish(msg("a"))
      yield* queue.publish(msg("b"))
      yield* eventually((s) => s.inFlight === 1)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* eventually(() => true)
      yield* TestClock.adjust(100)
      yield* Fiber.join(closing)
      const stats = yield* queue.stats
      assert.strictEqual(stats.totals.acked, 1)
      assert.strictEqual(stats.ready, 1) // the consumer took nothing new while stopping
      assert.strictEqual(stats.inFlight, 0)
    }).pipe(withQueue())
  )

  it.effect("idle workers stop at once", () =>
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const scope = yield* startConsumer(() => Effect.void, { concurrency: 4, shutdownGracePeriod: 60_000 })
      yield* eventually((s) => s.waiting === 4)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* queue.stats).waiting, 0)
    }).pipe(withQueue())
  )

  it("backoffDelay doubles from the initial delay up to the maximum", () => {
    assert.deepStrictEqual(
      [1, 2, 3, 4, 5].map((attempt) => backoffDelay(attempt, 100, 1_000)),
      [100, 200, 400, 800, 1_000]
    )
  })

  it("describeFailure names tagged errors and truncates long text", () => {
    class Refused extends Error {
      readonly _tag = "Refused"
    }
    assert.strictEqual(describeFailure(Cause.fail(new Refused("no"))), "Refused: no")
    assert.strictEqual(describeFailure(Cause.fail({ code: 7 })), '{"code":7}')
    assert.isAtMost(describeFailure(Cause.fail("x".repeat(10_000))).length, 2_001)
  })
})
