/**
 * consumeTransactional on every database: the handler's writes and the
 * message's settlement commit together or not at all, and a message whose
 * transaction committed is never handled again, whatever became of its ack.
 *
 * The handler writes to `tx_effects`, whose foreign key is checked at COMMIT
 * (DEFERRABLE INITIALLY DEFERRED): a handler pointing it at a missing guard
 * makes the COMMIT itself fail, after the settlement statement ran — so only
 * a settlement on the transaction's own connection is undone with it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { SqlClient } from "effect/sql"
import { FormulaIntake } from "../../src/intake/FormulaIntake.ts"
import { AckNotRecorded, type Delivery, MessageQueue, type QueueStats } from "../../src/queue/MessageQueue.ts"
import { consumeTransactional } from "../../src/queue/TransactionalConsumer.ts"
import * as Runtime from "../../src/Runtime.ts"
import { testDatabases } from "../support/Databases.ts"
import { singleMaterial, uniqueTag } from "../support/Formulas.ts"

const runtimeOptions: Runtime.RuntimeOptions = {
  queue: { capacity: 1_000, visibilityTimeout: Duration.seconds(1), maxDeliveries: 3 },
  cacheCapacity: 100,
  relayInterval: Duration.hours(1),
  webhooks: false,
  statsFlushInterval: false
}

const setUpTables = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE tx_guard (id int PRIMARY KEY)`
  yield* sql`INSERT INTO tx_guard VALUES (1)`
  yield* sql`CREATE TABLE tx_effects (
    message_id uuid PRIMARY KEY,
    guard int NOT NULL REFERENCES tx_guard (id) DEFERRABLE INITIALLY DEFERRED)`
})

/** The handler's effect: one row per message (a second one would violate the primary key). */
const writeEffect = (delivery: Delivery, guard = 1) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO tx_effects (message_id, guard) VALUES (${delivery.messageId}, ${guard})`
  })

const submit = Effect.map(
  FormulaIntake.use((intake) => intake.submit(singleMaterial(uniqueTag()))),
  (row) => row.messageId
)

const outboxRow = (messageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ delivered: boolean; result: unknown; attempts: number }>`
      SELECT delivered_at IS NOT NULL AS delivered, result, attempts FROM outbox WHERE message_id = ${messageId}`
    return rows[0]!
  })

const effectCount = (messageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM tx_effects WHERE message_id = ${messageId}`
    return rows[0]!.n
  })

/**
 * Lets the consumer's fibers and the database run until the queue's stats satisfy `check`: one turn
 * of the event loop at a time (database answers are I/O), for at most 30 s of real time — a bound
 * on a hang, not a sleep that orders anything.
 */
const untilStats = (check: (stats: QueueStats) => boolean) =>
  Effect.gen(function* () {
    const queue = yield* MessageQueue
    const giveUpAt = Date.now() + 30_000
    while (Date.now() < giveUpAt) {
      const stats = yield* queue.stats
      if (check(stats)) return stats
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    return yield* Effect.die(new Error(`condition never held: ${JSON.stringify(yield* queue.stats)}`))
  })

const backends = ["memory", "postgres"] as const

for (const database of testDatabases) {
  for (const backend of backends) {
    describe(`consumeTransactional on ${database.name}, ${backend} queue`, () => {
      const withRuntime = <A, E, R>(body: Effect.Effect<A, E, R | Scope.Scope>) =>
        Effect.suspend(() => {
          const db = database.layer()
          // Consumers started by `body` stop (their scope closes) before the runtime they use does.
          return Effect.andThen(setUpTables, body).pipe(
            Effect.scoped,
            Effect.provide(
              Runtime.layerWith(db, { ...runtimeOptions, queueBackend: backend }).pipe(Layer.provideMerge(db))
            )
          )
        })

      it.effect("the handler's writes and the settlement commit together; a failing handler leaves neither", () =>
        withRuntime(
          Effect.gen(function* () {
            const ok = yield* submit
            const fails = yield* submit
            const commitFails = yield* submit
            const tooLarge = yield* submit
            const calls: Array<string> = []
            yield* consumeTransactional(
              (delivery) =>
                Effect.gen(function* () {
                  calls.push(delivery.messageId)
                  if (delivery.messageId === commitFails) {
                    // The settlement statement runs after this; the COMMIT then fails on the deferred key.
                    yield* writeEffect(delivery, 2)
                    return "refused at commit"
                  }
                  yield* writeEffect(delivery)
                  if (delivery.messageId === fails) return yield* Effect.fail(new Error("handler failed"))
                  // A result that cannot be stored fails the settlement, so the transaction too.
                  if (delivery.messageId === tooLarge) return "x".repeat(70_000)
                  return { class: "Eau de Toilette" }
                }),
              { concurrency: 2, pollWait: Duration.hours(1) }
            )
            yield* untilStats((stats) => stats.totals.acked === 1 && stats.delayed === 3)

            assert.strictEqual(yield* effectCount(ok), 1)
            assert.deepStrictEqual(yield* outboxRow(ok), {
              delivered: true,
              result: { class: "Eau de Toilette" },
              attempts: 1
            })
            for (const messageId of [fails, commitFails, tooLarge]) {
              assert.strictEqual(yield* effectCount(messageId), 0, "the failed transaction left no effect")
              assert.isFalse((yield* outboxRow(messageId)).delivered, "…and did not settle the message")
            }
            assert.sameMembers(calls, [ok, fails, commitFails, tooLarge])
          })
        )
      )

      it.effect.skipIf(backend !== "memory")(
        "a message whose transaction committed is acked, not handled again, when its ack failed",
        () =>
          withRuntime(
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const messageId = yield* submit
              let acks = 0
              // The first ack fails (as an ack whose answer never came): the message stays in flight.
              const flakyQueue = MessageQueue.of({
                ...queue,
                ack: (receipt, options) =>
                  acks++ === 0
                    ? Effect.fail(new AckNotRecorded({ messageId: "", message: "answer lost" }))
                    : queue.ack(receipt, options)
              })
              const attempts: Array<number> = []
              const scope = yield* Scope.make()
              yield* consumeTransactional(
                (delivery) =>
                  Effect.andThen(
                    Effect.sync(() => attempts.push(delivery.attempt)),
                    writeEffect(delivery)
                  ),
                { concurrency: 1, pollWait: Duration.hours(1) }
              ).pipe(Effect.provideService(MessageQueue, flakyQueue), Scope.provide(scope))

              yield* untilStats((stats) => acks === 1 && stats.inFlight === 1)
              assert.isTrue((yield* outboxRow(messageId)).delivered, "committed before the ack")
              // Redelivered at its deadline: the row is settled, so the handler is skipped and the ack goes through.
              yield* TestClock.adjust(Duration.seconds(1))
              const stats = yield* untilStats((stats) => stats.totals.acked === 1)
              assert.strictEqual(stats.totals.delivered, 2, "delivered twice")
              assert.deepStrictEqual(attempts, [1], "handled once")
              assert.strictEqual(yield* effectCount(messageId), 1)
              assert.deepStrictEqual(yield* outboxRow(messageId), { delivered: true, result: null, attempts: 1 })
              yield* Scope.close(scope, Exit.void)
            })
          )
      )

      // Two connections needed: PGlite has one, so transactions there never overlap at all.
      it.effect.skipIf(database.name !== "postgres" || backend !== "memory")(
        "two overlapping deliveries of one message: the second waits for the first's lock, then skips the handler",
        () =>
          withRuntime(
            Effect.gen(function* () {
              const sql = yield* SqlClient.SqlClient
              const messageId = yield* submit
              const started = yield* Deferred.make<void>()
              const finish = yield* Deferred.make<void>()
              let calls = 0
              yield* consumeTransactional(
                (delivery) =>
                  Effect.gen(function* () {
                    calls++
                    yield* Deferred.succeed(started, undefined)
                    yield* Deferred.await(finish)
                    yield* writeEffect(delivery)
                  }),
                // No heartbeat before the deadline: the memory queue redelivers to the second worker.
                { concurrency: 2, pollWait: Duration.hours(1), heartbeat: Duration.hours(1) }
              )
              yield* Deferred.await(started)
              yield* TestClock.adjust(Duration.seconds(1))
              yield* untilStats((stats) => stats.totals.delivered === 2)
              // The second delivery's transaction is waiting for the row lock (a real event, seen by the server).
              const giveUpAt = Date.now() + 20_000
              while (true) {
                if (Date.now() > giveUpAt) assert.fail("the second delivery never waited for the row lock")
                const waiting = yield* sql<{ n: number }>`
                SELECT count(*)::int AS n FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%AS settled FROM outbox%FOR UPDATE%'`
                if (waiting[0]!.n > 0) break
                yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
              }
              yield* Deferred.succeed(finish, undefined)
              yield* untilStats((stats) => stats.totals.acked === 1 && stats.inFlight === 0)
              assert.strictEqual(calls, 1, "handled once")
              assert.strictEqual(yield* effectCount(messageId), 1)
              assert.deepStrictEqual(yield* outboxRow(messageId), { delivered: true, result: null, attempts: 1 })
            })
          )
      )

      it.effect.skipIf(backend !== "memory")(
        "a message with no outbox row is never handled: nacked, then a dead letter saying why",
        () =>
          withRuntime(
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              yield* queue.publish({ messageId: "direct-1", body: {} })
              yield* queue.publish({ messageId: crypto.randomUUID(), body: {} })
              let calls = 0
              yield* consumeTransactional(() => Effect.sync(() => calls++), {
                concurrency: 1,
                pollWait: Duration.hours(1),
                backoff: { initial: 0 }
              })
              yield* untilStats((stats) => stats.deadLettered === 2)
              assert.strictEqual(calls, 0)
              for (const letter of yield* queue.deadLetters) {
                assert.strictEqual(letter.attempts, 3)
                assert.match(letter.lastError, /^NoOutboxRow: .* has no outbox row/)
              }
            })
          )
      )

      it.effect.skipIf(backend !== "memory")(
        "heartbeats the delivery while its transaction runs; none when the queue's claims skip locked rows",
        () =>
          withRuntime(
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              for (const lockedRowsAreSkipped of [false, true]) {
                const messageId = yield* submit
                let extends_ = 0
                const counting = MessageQueue.of({
                  ...queue,
                  settings: { ...queue.settings, lockedRowsAreSkipped },
                  extend: (receipt, timeout) =>
                    Effect.andThen(
                      Effect.sync(() => extends_++),
                      queue.extend(receipt, timeout)
                    )
                })
                const started = yield* Deferred.make<void>()
                const finish = yield* Deferred.make<void>()
                const scope = yield* Scope.make()
                yield* consumeTransactional(
                  (delivery) =>
                    Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(finish)).pipe(
                      Effect.andThen(writeEffect(delivery))
                    ),
                  { concurrency: 1, pollWait: Duration.hours(1), heartbeat: Duration.millis(100) }
                ).pipe(Effect.provideService(MessageQueue, counting), Scope.provide(scope))
                yield* Deferred.await(started)
                for (let i = 0; i < 3; i++) yield* TestClock.adjust(Duration.millis(100))
                yield* Deferred.succeed(finish, undefined)
                yield* untilStats((stats) => stats.inFlight === 0 && stats.ready === 0)
                yield* Scope.close(scope, Exit.void)
                assert.strictEqual(yield* effectCount(messageId), 1)
                if (lockedRowsAreSkipped) assert.strictEqual(extends_, 0, "no heartbeat against a locked row")
                else assert.isAtLeast(extends_, 3, "heartbeats while the transaction runs")
              }
            })
          )
      )

      it.effect.skipIf(backend !== "postgres")(
        "a message whose transaction committed is never claimed again, even when its ack failed; the ack, retried, succeeds",
        () =>
          withRuntime(
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const messageId = yield* submit
              let failedReceipt: string | undefined
              const flakyQueue = MessageQueue.of({
                ...queue,
                ack: (receipt) =>
                  Effect.suspend(() => {
                    failedReceipt = receipt
                    return Effect.fail(new AckNotRecorded({ messageId: "", message: "answer lost" }))
                  })
              })
              const attempts: Array<number> = []
              const scope = yield* Scope.make()
              yield* consumeTransactional(
                (delivery) =>
                  Effect.andThen(
                    Effect.sync(() => attempts.push(delivery.attempt)),
                    writeEffect(delivery)
                  ),
                { concurrency: 1, pollWait: Duration.hours(1) }
              ).pipe(Effect.provideService(MessageQueue, flakyQueue), Scope.provide(scope))
              yield* untilStats(() => failedReceipt !== undefined)
              yield* Scope.close(scope, Exit.void)
              // Past the deadline: the row is settled, so no claim takes it.
              yield* TestClock.adjust(Duration.seconds(2))
              assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [], "never delivered again")
              yield* queue.ack(failedReceipt!)
              assert.deepStrictEqual(attempts, [1], "handled once")
              assert.strictEqual(yield* effectCount(messageId), 1)
              assert.deepStrictEqual(yield* outboxRow(messageId), { delivered: true, result: null, attempts: 1 })
            })
          )
      )

      it.effect.skipIf(backend !== "postgres")(
        "a message published directly is its own outbox row: handled once and settled",
        () =>
          withRuntime(
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const messageId = crypto.randomUUID()
              yield* queue.publish({ messageId, body: { direct: true } })
              let calls = 0
              yield* consumeTransactional(
                (delivery) =>
                  Effect.andThen(
                    Effect.sync(() => calls++),
                    Effect.as(writeEffect(delivery), "done")
                  ),
                { concurrency: 1, pollWait: Duration.hours(1) }
              )
              yield* untilStats((stats) => stats.totals.acked === 1)
              assert.strictEqual(calls, 1)
              assert.strictEqual(yield* effectCount(messageId), 1)
              assert.deepStrictEqual(yield* outboxRow(messageId), { delivered: true, result: "done", attempts: 1 })
            })
          )
      )

      it.effect.skipIf(backend !== "postgres")(
        "no heartbeat: the row lock alone keeps the message from every other consumer past its visibility timeout",
        () =>
          withRuntime(
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const messageId = yield* submit
              let extends_ = 0
              const counting = MessageQueue.of({
                ...queue,
                extend: (receipt, timeout) =>
                  Effect.andThen(
                    Effect.sync(() => extends_++),
                    queue.extend(receipt, timeout)
                  )
              })
              const started = yield* Deferred.make<void>()
              const finish = yield* Deferred.make<void>()
              let calls = 0
              yield* consumeTransactional(
                (delivery) =>
                  Effect.gen(function* () {
                    calls++
                    yield* Deferred.succeed(started, undefined)
                    yield* Deferred.await(finish)
                    yield* writeEffect(delivery)
                  }),
                { concurrency: 2, pollWait: Duration.hours(1), heartbeat: Duration.millis(100) }
              ).pipe(Effect.provideService(MessageQueue, counting))
              yield* Deferred.await(started)
              for (let i = 0; i < 4; i++) yield* TestClock.adjust(Duration.millis(500))
              // PGlite's one connection is the transaction's until it ends: a claim could only wait.
              if (database.name === "postgres") {
                assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [], "expired but locked: skipped")
              }
              yield* Deferred.succeed(finish, undefined)
              yield* untilStats((stats) => stats.totals.acked === 1)
              assert.strictEqual(extends_, 0, "no heartbeat against a locked row")
              assert.strictEqual(calls, 1)
              assert.strictEqual(yield* effectCount(messageId), 1)
              assert.deepStrictEqual(yield* outboxRow(messageId), { delivered: true, result: null, attempts: 1 })
            })
          )
      )
    })
  }
}
