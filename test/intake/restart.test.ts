/**
 * What a restart must keep, on every database, each runtime lifetime on the
 * same data (PGlite in a data directory, a PostgreSQL schema reused):
 *
 * - an outbox backlog larger than the queue's capacity is delivered, every
 *   message exactly once, as a consumer makes room — without the relay's
 *   interval ever passing (the TestClock never moves);
 * - a dead letter comes back as a dead letter (not delivered); a purged one
 *   stays purged; a redriven one is delivered again.
 *
 * Fibers are ordered by hand-offs only: a consumer long-polls (its wait is on
 * the TestClock, so only a message ends it). The live clock bounds a test
 * that hangs, nothing else.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Fiber, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { randomBytes } from "node:crypto"
import { FormulaIntake } from "../../src/intake/FormulaIntake.ts"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"
import * as Runtime from "../../src/Runtime.ts"
import { type DatabaseLayer, reusableDatabases } from "../support/Databases.ts"

const settings = (capacity: number, maxDeliveries = 5): Runtime.RuntimeOptions => ({
  queue: { capacity, visibilityTimeout: Duration.minutes(1), maxDeliveries },
  cacheCapacity: 1_000,
  // Never reached: the TestClock does not move in these tests.
  relayInterval: Duration.hours(1),
  groupCommit: { maxBatch: 64, linger: 0, workers: 2 }
})

type Services = Runtime.RuntimeServices | PgClient.PgClient | SqlClient.SqlClient

/** One runtime lifetime on the database `open` connects to: built, used by `body`, closed. */
const lifetime = <A, E>(
  open: () => DatabaseLayer,
  options: Runtime.RuntimeOptions,
  body: Effect.Effect<A, E, Services>
) =>
  Effect.suspend(() => {
    const db = open()
    return body.pipe(Effect.provide(Runtime.layerWith(db, options).pipe(Layer.provideMerge(db))))
  })

const makeUp = () => {
  const tag = randomBytes(6).toString("hex")
  return { name: `Restart ${tag}`, materials: [{ name: `Vetiver ${tag}`, concentration: 12.5 }] }
}

/** Submits `count` new make-ups; returns their message ids. */
const submitMany = (count: number) =>
  Effect.forEach(
    Array.from({ length: count }, makeUp),
    (input) =>
      Effect.map(
        FormulaIntake.use((intake) => intake.submit(input)),
        (row) => row.messageId
      ),
    { concurrency: 8 }
  )

/** Receives and acks until `count` deliveries arrived; returns the message ids in delivery order. */
const consume = (count: number) =>
  Effect.gen(function* () {
    const queue = yield* MessageQueue
    const received: Array<string> = []
    while (received.length < count) {
      const batch = yield* queue.receive({ max: 3, wait: Duration.hours(1) })
      for (const delivery of batch) {
        received.push(delivery.messageId)
        yield* queue.ack(delivery.receipt)
      }
    }
    return received
  })

/** Joins `fiber`, failing the test if it is not done within `seconds` of real time (a hang, not an ordering). */
const joinWithin = <A, E>(fiber: Fiber.Fiber<A, E>, seconds: number, what: string) =>
  TestClock.withLive(
    Fiber.join(fiber).pipe(
      Effect.timeoutOrElse({
        duration: Duration.seconds(seconds),
        orElse: () => Effect.die(new Error(`${what}: not done within ${seconds} s`))
      })
    )
  )

const unsettledInOutbox = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const rows = yield* sql<{ readonly count: number }>`
    SELECT count(*)::int AS count FROM outbox WHERE delivered_at IS NULL AND purged_at IS NULL`
  return rows[0]!.count
})

const timeout = 120_000

for (const database of reusableDatabases) {
  describe(`restart on ${database.name}`, () => {
    it.effect(
      "a backlog of 40 unsettled messages and a queue of 5: every message is delivered exactly once as the consumer acks, the relay's interval never passing — protects the relay following the backlog as the queue makes room (MessageQueue.awaitRoom, OutboxRelay cursor)",
      () =>
        Effect.gen(function* () {
          const { open } = yield* database.place
          const submitted = yield* lifetime(open, settings(100), submitMany(40))
          assert.strictEqual(new Set(submitted).size, 40)

          const delivered = yield* lifetime(
            open,
            settings(5),
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const recovered = yield* queue.stats
              assert.strictEqual(recovered.ready, 5, "start-up recovery fills the queue, no more")
              const consumer = yield* Effect.forkChild(consume(40))
              const delivered = yield* joinWithin(consumer, 30, "the consumer receiving 40 messages")
              const after = yield* queue.stats
              assert.strictEqual(after.size, 0, "nothing left in the queue")
              assert.strictEqual(after.totals.delivered, 40, "40 deliveries, no redelivery")
              assert.strictEqual(after.totals.published, 40, "each message enqueued once")
              assert.deepStrictEqual(yield* queue.receive({ max: 100 }), [], "nothing more to receive")
              assert.strictEqual(yield* unsettledInOutbox, 0, "every acked message settled its outbox row")
              return delivered
            })
          )
          assert.strictEqual(new Set(delivered).size, 40, "no message delivered twice")
          assert.sameMembers(delivered, submitted, "every committed message delivered")

          // And the next start finds nothing to deliver.
          yield* lifetime(
            open,
            settings(5),
            Effect.gen(function* () {
              const stats = yield* MessageQueue.use((queue) => queue.stats)
              assert.strictEqual(stats.size, 0, "nothing recovered after everything was acked")
            })
          )
        }).pipe(Effect.scoped),
      timeout
    )

    it.effect(
      "dead letters survive a restart as dead letters, with their attempts and last error, and are not delivered; a purged one stays purged; a redriven one is delivered after the next restart — protects persisting dead-lettering, redrive and purge (onDeadLetter, onRedrive, onPurge → outbox) and their recovery (OutboxRelay)",
      () =>
        Effect.gen(function* () {
          const { open } = yield* database.place
          const [purged, kept] = yield* lifetime(
            open,
            settings(10, 1),
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const [purged, kept] = yield* submitMany(2)
              const deliveries = yield* queue.receive({ max: 2 })
              assert.strictEqual(deliveries.length, 2)
              for (const delivery of deliveries) yield* queue.nack(delivery.receipt, { error: "poison" })
              assert.strictEqual((yield* queue.stats).deadLettered, 2, "one attempt each: both dead-lettered")
              yield* queue.awaitPersisted
              assert.strictEqual(yield* queue.purge({ messageIds: [purged!] }), 1)
              return [purged!, kept!] as const
            })
          )

          yield* lifetime(
            open,
            settings(10, 1),
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const stats = yield* queue.stats
              assert.strictEqual(stats.deadLettered, 1, "the dead letter not purged is a dead letter again")
              assert.strictEqual(stats.size, 0, "nothing to deliver")
              const [letter] = yield* queue.deadLetters
              assert.deepInclude(letter, { messageId: kept, attempts: 1, lastError: "poison" })
              assert.notStrictEqual(letter!.messageId, purged, `the purged message ${purged} does not come back`)
              assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
              assert.strictEqual(yield* queue.redrive(), 1)
              // Not received: the redrive must bring it back at the next start on its own.
            })
          )

          yield* lifetime(
            open,
            settings(10, 1),
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              assert.strictEqual((yield* queue.stats).deadLettered, 0)
              const deliveries = yield* queue.receive({ max: 10 })
              assert.deepStrictEqual(
                deliveries.map((delivery) => delivery.messageId),
                [kept],
                "the redriven message is pending again"
              )
            })
          )
        }).pipe(Effect.scoped),
      timeout
    )

    it.effect(
      "a dead-lettering not yet persisted when the process stops is recovered as ready (no event): consistent — protects the dead-letter statement being all or nothing",
      () =>
        Effect.gen(function* () {
          const { open } = yield* database.place
          const [messageId] = yield* lifetime(open, settings(10, 1), submitMany(1))
          yield* lifetime(
            open,
            settings(10, 1),
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const sql = yield* PgClient.PgClient
              // The outbox refuses the dead-lettering for this lifetime: it cannot commit.
              yield* sql`ALTER TABLE outbox ADD CONSTRAINT no_dead_letters CHECK (dead_lettered_at IS NULL) NOT VALID`
              const [delivery] = yield* queue.receive()
              yield* queue.nack(delivery!.receipt, { error: "poison" })
              assert.strictEqual((yield* queue.stats).deadLettered, 1)
            })
          )
          yield* lifetime(
            open,
            settings(10, 1),
            Effect.gen(function* () {
              const sql = yield* PgClient.PgClient
              yield* sql`ALTER TABLE outbox DROP CONSTRAINT no_dead_letters`
              const events = yield* sql<{ readonly count: number }>`SELECT count(*)::int AS count FROM webhook_events`
              assert.strictEqual(events[0]!.count, 0)
              const queue = yield* MessageQueue
              const deliveries = yield* queue.receive({ max: 10 })
              assert.deepStrictEqual(
                deliveries.map((delivery) => delivery.messageId),
                [messageId]
              )
            })
          )
        }).pipe(Effect.scoped),
      timeout
    )
  })
}
