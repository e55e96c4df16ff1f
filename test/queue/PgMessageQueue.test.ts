/**
 * The database queue's own behaviour, on every database (the shared queue
 * semantics are the conformance suite's, MessageQueue.test.ts): receipts
 * against the table, expiry and dead-lettering with their webhook events, the
 * ack of a row settled by its consumer's transaction, two instances on one
 * schema (never one message to two owners; a NOTIFY from one wakes the other's
 * long poll; the capacity bound). Time is a TestClock: the queue's "now" is
 * the Clock plus the database's offset.
 */
import { assert, describe, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Fiber, Layer, Metric, Queue } from "effect"
import { TestClock } from "effect/testing"
import { randomUUID } from "node:crypto"
import type { MessageQueueService } from "../../src/queue/MessageQueue.ts"
import * as PgMessageQueue from "../../src/queue/PgMessageQueue.ts"
import { FormulaStore, type NewFormula } from "../../src/store/FormulaStore.ts"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { testDatabases } from "../support/Databases.ts"

const services = Layer.mergeAll(FormulaStore.layerWith({ maxBatch: 1, linger: 0, workers: 1 }), DeliverySignal.layer)

const clear = PgClient.PgClient.use(
  (sql) =>
    sql`TRUNCATE webhook_attempts, webhook_deliveries, webhook_events, webhook_endpoints, outbox, formula_materials,
        formulas`
)

/** Runs `body` on an empty queue table with the store, a TestClock at the real time, and its own scope. */
const withQueues = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    yield* clear
    yield* TestClock.setTime(Date.now())
    return yield* body
  }).pipe(Effect.scoped, Effect.provide(services), Effect.provide(TestClock.layer({ warningDelay: "1 hour" })))

// Wakes and counts only: a backstop poll in the middle of a test would hide a missing wake-up.
const defaults: PgMessageQueue.PgMessageQueueOptions = { pollInterval: "1 hour", visibilityTimeout: "30 seconds" }

const makeQueue = (options: PgMessageQueue.PgMessageQueueOptions = {}) =>
  PgMessageQueue.make({ ...defaults, ...options })

const message = (body: unknown = { hello: "world" }) => ({ messageId: randomUUID(), body })

const newFormula = (): NewFormula => {
  const id = randomUUID()
  return {
    id,
    fingerprint: randomUUID(),
    name: "Summer Breeze",
    materials: [{ name: "Bergamot Oil", concentration: "100" }],
    createdAt: new Date(),
    message: { id: randomUUID(), body: { type: "FormulaSubmitted", formulaId: id } }
  }
}

/** A formula of client `client-a` with its message, and an endpoint hearing of processed and dead-lettered ones. */
const formulaWithEndpoint = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const formulaId = randomUUID()
  const messageId = randomUUID()
  yield* sql`INSERT INTO formulas (id, fingerprint, name, client_id) VALUES (${formulaId}, ${randomUUID()}, 'x', 'client-a')`
  yield* sql`INSERT INTO outbox (message_id, formula_id, body) VALUES (${messageId}, ${formulaId}, '{"n":1}')`
  yield* sql`
    INSERT INTO webhook_endpoints (id, client_id, url, events, secret, created_at, updated_at)
    VALUES (${randomUUID()}, 'client-a', 'http://127.0.0.1:1/', ARRAY['formula.processed', 'formula.dead_lettered'],
            'whsec_x', now(), now())`
  return { formulaId, messageId }
})

const events = PgClient.PgClient.use(
  (sql) =>
    sql<{ readonly type: string; readonly body: string }>`SELECT type, body FROM webhook_events ORDER BY created_at, id`
)

const outboxRow = (messageId: string) =>
  PgClient.PgClient.use((sql) =>
    Effect.map(
      sql<{
        readonly receipt: string | null
        readonly attempts: number
        readonly delivered_at: Date | null
        readonly result: unknown
        readonly dead_lettered_at: Date | null
        readonly last_error: string | null
      }>`SELECT receipt::text AS receipt, attempts, delivered_at, result, dead_lettered_at, last_error
           FROM outbox WHERE message_id = ${messageId}`,
      (rows) => rows[0]!
    )
  )

const unsettledCount = PgClient.PgClient.use((sql) =>
  Effect.map(
    sql<{ readonly n: number }>`
      SELECT count(*)::int AS n FROM outbox WHERE delivered_at IS NULL AND purged_at IS NULL AND dead_lettered_at IS NULL`,
    (rows) => rows[0]!.n
  )
)

/** A long poll's answer, within 10 real seconds (a missing wake-up fails here rather than at the test's timeout). */
const answer = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Fiber.join(fiber).pipe(Effect.timeout("10 seconds"), TestClock.withLive)

/** The webhook dispatcher was woken (a statement wrote deliveries), within 10 real seconds. */
const dispatcherWoken = DeliverySignal.use((signal) => signal.waitForWake).pipe(
  Effect.timeout("10 seconds"),
  TestClock.withLive
)

const receiptInvalid = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && String(exit.cause).includes("ReceiptInvalid") ? true : `not ReceiptInvalid: ${exit}`
  )

for (const database of testDatabases) {
  describe(`PgMessageQueue on ${database.name}`, () => {
    layer(database.layer(), { excludeTestServices: true, timeout: "120 seconds" })((it) => {
      it.effect("publish → receive → ack; a receipt works once; unknown and malformed receipts are stale", () =>
        withQueues(
          Effect.gen(function* () {
            const queue = yield* makeQueue()
            const published = message({ a: [1, "two"] })
            assert.deepStrictEqual(yield* queue.publish(published), {
              messageId: published.messageId,
              duplicate: false
            })
            assert.deepStrictEqual(yield* queue.publish(published), { messageId: published.messageId, duplicate: true })

            const [delivery, ...rest] = yield* queue.receive({ max: 10 })
            assert.strictEqual(rest.length, 0)
            assert.strictEqual(delivery!.messageId, published.messageId)
            assert.strictEqual(delivery!.attempt, 1)
            assert.deepStrictEqual(delivery!.body, { a: [1, "two"] })
            const inFlight = yield* queue.stats
            assert.deepStrictEqual([inFlight.ready, inFlight.inFlight, inFlight.size], [0, 1, 1])

            yield* queue.ack(delivery!.receipt)
            assert.isTrue(yield* receiptInvalid(queue.ack(delivery!.receipt)))
            assert.isTrue(yield* receiptInvalid(queue.nack(randomUUID())))
            assert.isTrue(yield* receiptInvalid(queue.extend("not-a-receipt", "1 second")))
            const row = yield* outboxRow(published.messageId)
            assert.isNull(row.receipt)
            assert.isNotNull(row.delivered_at)
            assert.strictEqual(row.attempts, 1)
            const after = yield* queue.stats
            assert.deepStrictEqual([after.size, after.totals.acked, after.totals.published], [0, 1, 1])
            assert.deepStrictEqual(yield* queue.receive({ max: 10 }), [])
          })
        )
      )

      it.effect(
        "an expired receipt is stale before the redelivery; the redelivery is attempt 2 with a new receipt",
        () =>
          withQueues(
            Effect.gen(function* () {
              const queue = yield* makeQueue()
              yield* queue.publish(message())
              const [first] = yield* queue.receive({ visibilityTimeout: "10 seconds" })
              yield* TestClock.adjust("9999 millis")
              yield* queue.extend(first!.receipt, "10 seconds") // still current: its deadline moves on
              yield* TestClock.adjust("10 seconds")
              assert.isTrue(yield* receiptInvalid(queue.ack(first!.receipt)))
              assert.strictEqual((yield* queue.stats).ready, 1)
              const [second] = yield* queue.receive()
              assert.strictEqual(second!.attempt, 2)
              assert.notStrictEqual(second!.receipt, first!.receipt)
              assert.isTrue(yield* receiptInvalid(queue.nack(first!.receipt)))
              yield* queue.ack(second!.receipt, { result: { ok: true } })
              assert.deepStrictEqual((yield* outboxRow(second!.messageId)).result, { ok: true })
            })
          )
      )

      it.effect("a long poll wakes for a message published meanwhile, and at the next expiry", () =>
        withQueues(
          Effect.gen(function* () {
            const queue = yield* makeQueue()
            const waiting = yield* Effect.forkChild(queue.receive({ wait: "1 hour" }))
            yield* Effect.sleep("50 millis").pipe(TestClock.withLive)
            const published = message()
            yield* queue.publish(published)
            const [delivery] = yield* answer(waiting)
            assert.strictEqual(delivery!.messageId, published.messageId)

            // In flight for 5 s: a long poll now sleeps until then, not until the (hour-long) backstop.
            const again = yield* Effect.forkChild(queue.receive({ wait: "1 hour" }))
            yield* Effect.sleep("50 millis").pipe(TestClock.withLive)
            yield* queue.extend(delivery!.receipt, "5 seconds")
            yield* Fiber.interrupt(again)
            const expiring = yield* Effect.forkChild(queue.receive({ wait: "1 hour" }))
            yield* Effect.sleep("50 millis").pipe(TestClock.withLive)
            yield* TestClock.adjust("5 seconds")
            const [redelivered] = yield* answer(expiring)
            assert.strictEqual(redelivered!.attempt, 2)
          })
        )
      )

      it.effect(
        "a long poll asleep until a later deadline wakes when this instance's nack makes a row due sooner",
        () =>
          withQueues(
            Effect.gen(function* () {
              const queue = yield* makeQueue()
              yield* queue.publish(message())
              yield* queue.publish(message())
              const [first] = yield* queue.receive({ visibilityTimeout: "1 hour" })
              yield* queue.receive({ visibilityTimeout: "1 hour" })
              const waiting = yield* Effect.forkChild(queue.receive({ wait: "2 hours" }))
              yield* Effect.yieldNow
              assert.strictEqual((yield* queue.stats).waiting, 1) // counted from its start, not once asleep
              yield* Effect.sleep("100 millis").pipe(TestClock.withLive)
              yield* queue.nack(first!.receipt, { delay: "5 seconds" })
              yield* TestClock.adjust("5 seconds")
              const [again] = yield* answer(waiting)
              assert.strictEqual(again!.messageId, first!.messageId)
              assert.strictEqual(again!.attempt, 2)
              assert.strictEqual((yield* queue.stats).waiting, 0)
            })
          )
      )

      it.effect(
        "nack of the last delivery dead-letters at once, with its error and a formula.dead_lettered event",
        () =>
          withQueues(
            Effect.gen(function* () {
              const queue = yield* makeQueue({ maxDeliveries: 2 })
              const { formulaId, messageId } = yield* formulaWithEndpoint
              const [first] = yield* queue.receive()
              yield* queue.nack(first!.receipt, { error: "first" }) // no delay: ready again
              const [second] = yield* queue.receive()
              assert.strictEqual(second!.attempt, 2)
              yield* queue.nack(second!.receipt, { error: "boom", delay: "1 hour" })
              yield* dispatcherWoken // its event's delivery may go out now
              const letters = yield* queue.deadLetters
              assert.deepStrictEqual(
                letters.map((l) => [l.messageId, l.attempts, l.lastError]),
                [[messageId, 2, "boom"]]
              )
              assert.deepStrictEqual(yield* queue.receive(), [])
              const [event] = yield* events
              assert.strictEqual(event!.type, "formula.dead_lettered")
              const body = JSON.parse(event!.body)
              assert.deepStrictEqual(body.data, { formulaId, messageId, attempts: 2, lastError: "boom" })

              assert.strictEqual(yield* queue.redrive(), 1)
              const [redriven] = yield* queue.receive()
              assert.strictEqual(redriven!.attempt, 1)
              yield* queue.nack(redriven!.receipt)
              const [again] = yield* queue.receive()
              yield* queue.nack(again!.receipt)
              assert.strictEqual(yield* queue.purge(), 1)
              assert.deepStrictEqual(yield* queue.deadLetters, [])
            })
          )
      )

      it.effect("an expired last delivery is dead-lettered by the next claim, not delivered, with its event", () =>
        withQueues(
          Effect.gen(function* () {
            const queue = yield* makeQueue({ maxDeliveries: 1 })
            const { messageId } = yield* formulaWithEndpoint
            const [only] = yield* queue.receive({ visibilityTimeout: "1 second" })
            yield* TestClock.adjust("1 second")
            assert.deepStrictEqual(yield* queue.receive(), [])
            const row = yield* outboxRow(messageId)
            assert.isNotNull(row.dead_lettered_at)
            assert.strictEqual(row.last_error, "visibility timeout expired")
            assert.isNull(row.receipt)
            assert.isTrue(yield* receiptInvalid(queue.ack(only!.receipt)))
            const [letter] = yield* queue.deadLetters
            // In the Clock's frame, like the in-memory queue's.
            assert.strictEqual(letter!.deadLetteredAt, yield* Effect.clockWith((c) => c.currentTimeMillis))
            assert.deepStrictEqual(
              (yield* events).map((e) => [e.type, JSON.parse(e.body).data.lastError]),
              [["formula.dead_lettered", "visibility timeout expired"]]
            )
          })
        )
      )

      it.effect("without any claim, stats and dead letters see expired deliveries as the in-memory queue would", () =>
        withQueues(
          Effect.gen(function* () {
            const queue = yield* makeQueue({ maxDeliveries: 2 })
            const { messageId } = yield* formulaWithEndpoint
            const [first] = yield* queue.receive({ visibilityTimeout: "1 second" })
            yield* TestClock.adjust("1 second")
            const expired = yield* queue.stats
            assert.deepStrictEqual([expired.ready, expired.inFlight, expired.totals.expired], [1, 0, 1])
            assert.isTrue(yield* receiptInvalid(queue.ack(first!.receipt)))
            yield* queue.receive({ visibilityTimeout: "1 second" })
            yield* TestClock.adjust("1 second")
            const [letter] = yield* queue.deadLetters
            assert.deepStrictEqual(
              [letter!.messageId, letter!.attempts, letter!.lastError],
              [messageId, 2, "visibility timeout expired"]
            )
            assert.strictEqual((yield* events).length, 1)
            const stats = yield* queue.stats
            assert.deepStrictEqual([stats.deadLettered, stats.ready, stats.size], [1, 0, 0])
          })
        )
      )

      it.effect(
        "ack settles with its result and one formula.processed event; an ack of a row already settled only clears the receipt",
        () =>
          withQueues(
            Effect.gen(function* () {
              const sql = yield* PgClient.PgClient
              const queue = yield* makeQueue()
              const first = yield* formulaWithEndpoint
              const [delivery] = yield* queue.receive()
              yield* queue.ack(delivery!.receipt, { result: { score: 7 } })
              yield* dispatcherWoken
              assert.deepStrictEqual((yield* outboxRow(first.messageId)).result, { score: 7 })
              const [processed] = yield* events
              assert.deepStrictEqual(JSON.parse(processed!.body).data, {
                formulaId: first.formulaId,
                messageId: first.messageId,
                result: { score: 7 }
              })

              // consumeTransactional: the handler's transaction settled the row (result, event) before the ack.
              const second = yield* formulaWithEndpoint
              const [held] = yield* queue.receive()
              yield* sql`UPDATE outbox SET delivered_at = now(), result = '"in the transaction"' WHERE message_id = ${second.messageId}`
              yield* queue.ack(held!.receipt, { result: "from the ack" })
              const row = yield* outboxRow(second.messageId)
              assert.isNull(row.receipt)
              assert.strictEqual(row.result, "in the transaction")
              assert.strictEqual((yield* events).length, 1)
              assert.isTrue(yield* receiptInvalid(queue.ack(held!.receipt)))
            })
          )
      )

      it.effect("release gives the delivery back at once without counting it", () =>
        withQueues(
          Effect.gen(function* () {
            const queue = yield* makeQueue()
            yield* queue.publish(message())
            const [delivery] = yield* queue.receive()
            yield* queue.release(delivery!.receipt)
            const [again] = yield* queue.receive()
            assert.strictEqual(again!.attempt, 1)
          })
        )
      )

      it.effect("exposes the in-memory queue's metrics: gauges from the latest count, totals of this instance", () =>
        withQueues(
          Effect.gen(function* () {
            const queue = yield* makeQueue({ name: "pg-metrics-test" })
            yield* queue.publish(message())
            yield* queue.publish(message())
            const [delivery] = yield* queue.receive()
            yield* queue.ack(delivery!.receipt)
            yield* queue.stats // a count, as every pollInterval
            const snapshots = (yield* Metric.snapshot).filter((s) => s.attributes?.["queue"] === "pg-metrics-test")
            const value = (id: string) => {
              const state = snapshots.find((s) => s.id === id)?.state as { value?: number; count?: number } | undefined
              return state?.value ?? state?.count
            }
            assert.strictEqual(value("queue_messages_ready"), 1)
            assert.strictEqual(value("queue_messages_in_flight"), 0)
            assert.strictEqual(value("queue_published_total"), 2)
            assert.strictEqual(value("queue_delivered_total"), 1)
            assert.strictEqual(value("queue_acked_total"), 1)
          }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
        )
      )

      it.effect("publish refuses a message id that is not a UUID, as a defect", () =>
        withQueues(
          Effect.gen(function* () {
            const queue = yield* makeQueue()
            const exit = yield* Effect.exit(queue.publish({ messageId: "m1", body: {} }))
            assert.isTrue(Exit.hasDies(exit))
            assert.include(String(exit), "UUID")
          })
        )
      )

      it.effect("two instances on one schema never hand one message to two owners", () =>
        withQueues(
          Effect.gen(function* () {
            const a = yield* makeQueue()
            const b = yield* makeQueue()
            const total = 120
            for (let i = 0; i < total; i++) yield* (i % 2 === 0 ? a : b).publish(message({ i }))
            const owners = new Map<string, number>()
            const drain = (queue: MessageQueueService, worker: number) =>
              Effect.gen(function* () {
                while (true) {
                  const deliveries = yield* queue.receive({ max: 3 })
                  if (deliveries.length === 0) return
                  for (const d of deliveries) {
                    assert.isUndefined(owners.get(d.messageId), `${d.messageId} handed out twice`)
                    owners.set(d.messageId, worker)
                    yield* queue.ack(d.receipt)
                  }
                }
              })
            yield* Effect.all(
              Array.from({ length: 8 }, (_, worker) => drain(worker % 2 === 0 ? a : b, worker)),
              { concurrency: "unbounded" }
            )
            assert.strictEqual(owners.size, total)
            assert.strictEqual(yield* unsettledCount, 0)
          })
        )
      )

      it.effect("capacity across two instances: filling in turns stops at the capacity exactly", () =>
        withQueues(
          Effect.gen(function* () {
            const capacity = 40
            const a = yield* makeQueue({ capacity })
            const b = yield* makeQueue({ capacity })
            let refused = 0
            for (let i = 0; i < 3 * capacity; i++) {
              const exit = yield* Effect.exit((i % 2 === 0 ? a : b).publish(message({ i })))
              if (Exit.isFailure(exit)) refused++
            }
            assert.strictEqual(yield* unsettledCount, capacity)
            assert.strictEqual(refused, 2 * capacity)
            // Room made by one instance's consumer is seen by the other's next count.
            const [delivery] = yield* a.receive()
            yield* a.ack(delivery!.receipt)
            yield* b.publish(message())
            assert.strictEqual(yield* unsettledCount, capacity)
          })
        )
      )

      it.effect(
        "capacity across two instances publishing at once: over by at most the other's submissions in flight",
        () =>
          withQueues(
            Effect.gen(function* () {
              const capacity = 40
              const concurrency = 4
              const a = yield* makeQueue({ capacity })
              const b = yield* makeQueue({ capacity })
              const fill = (queue: MessageQueueService) =>
                Effect.forEach(
                  Array.from({ length: 2 * capacity }, (_, i) => i),
                  (i) => Effect.exit(queue.publish(message({ i }))),
                  { concurrency }
                )
              yield* Effect.all([fill(a), fill(b)], { concurrency: 2 })
              const total = yield* unsettledCount
              assert.isAtMost(total, capacity + concurrency, `${total} unsettled`)
              assert.isAtLeast(total, capacity - concurrency, `${total} unsettled`)
            })
          )
      )

      if (database.name === "postgres") {
        it.effect("a message published through one instance wakes a long poll on another (NOTIFY)", () =>
          withQueues(
            Effect.gen(function* () {
              const a = yield* makeQueue()
              const b = yield* makeQueue()
              const waiting = yield* Effect.forkChild(b.receive({ wait: "1 hour" }))
              yield* Effect.sleep("100 millis").pipe(TestClock.withLive)
              const published = message()
              yield* a.publish(published)
              // The TestClock never moves: only the notification can end this wait.
              const [delivery] = yield* answer(waiting)
              assert.strictEqual(delivery!.messageId, published.messageId)
            })
          )
        )

        it.effect("after its LISTEN connection is killed, an instance listens again and is woken as before", () =>
          withQueues(
            Effect.gen(function* () {
              const sql = yield* PgClient.PgClient
              const a = yield* makeQueue()
              const b = yield* makeQueue()
              const [{ channel }] = yield* sql<{ readonly channel: string }>`
                SELECT 'formula_queue_' || md5(current_schema()) AS channel`
              const listeners = sql<{ readonly pid: number }>`
                SELECT pid FROM pg_stat_activity WHERE query = ${`LISTEN "${channel}"`}`
              const killed = (yield* listeners).map((row) => row.pid)
              assert.strictEqual(killed.length, 2, "one LISTEN connection per instance")
              yield* sql`SELECT pg_terminate_backend(pid) FROM unnest(${killed}::int[]) AS pid`
              // They retry after a pollInterval (the TestClock's), then listen on new connections.
              yield* Effect.sleep("200 millis").pipe(TestClock.withLive)
              yield* TestClock.adjust("1 hour")
              for (let tries = 0; tries < 100; tries++) {
                const pids = (yield* listeners).map((row) => row.pid)
                if (pids.length === 2 && pids.every((pid) => !killed.includes(pid))) break
                yield* Effect.sleep("100 millis").pipe(TestClock.withLive)
              }
              const waiting = yield* Effect.forkChild(b.receive({ wait: "2 hours" }))
              yield* Effect.sleep("100 millis").pipe(TestClock.withLive)
              const published = message()
              yield* a.publish(published)
              const [delivery] = yield* answer(waiting)
              assert.strictEqual(delivery!.messageId, published.messageId)
            })
          )
        )

        it.effect(
          "a submission committed through one instance's queue is announced after its commit: another instance's long poll wakes",
          () =>
            withQueues(
              Effect.gen(function* () {
                const a = yield* makeQueue()
                const b = yield* makeQueue()
                const waiting = yield* Effect.forkChild(b.receive({ wait: "1 hour" }))
                yield* Effect.sleep("100 millis").pipe(TestClock.withLive)
                // The submit path's steps (FormulaIntake): reserve, the store's INSERT (no NOTIFY in it), commit.
                const formula = newFormula()
                const reservation = yield* a.reserve({ messageId: formula.message.id, body: formula.message.body })
                const outcome = yield* FormulaStore.use((store) => store.insert(formula))
                assert.strictEqual(outcome._tag, "Created")
                yield* a.commit(reservation)
                // The TestClock never moves: only the announcement can end this wait.
                const [delivery] = yield* answer(waiting)
                assert.strictEqual(delivery!.messageId, formula.message.id)
              })
            )
        )

        it.effect("announcements coalesce: many commits at once are one or two NOTIFYs telling their total", () =>
          withQueues(
            Effect.gen(function* () {
              const sql = yield* PgClient.PgClient
              const a = yield* makeQueue()
              const [{ channel }] = yield* sql<{ readonly channel: string }>`
                SELECT 'formula_queue_' || md5(current_schema()) AS channel`
              const notifications = yield* sql.listen(channel)
              const formulas = Array.from({ length: 20 }, newFormula)
              const reservations = yield* Effect.forEach(formulas, (formula) =>
                a.reserve({ messageId: formula.message.id, body: formula.message.body })
              )
              yield* Effect.forEach(formulas, (formula) => FormulaStore.use((store) => store.insert(formula)), {
                concurrency: "unbounded"
              })
              // All 20 requested while none is in flight: the first takes them all (at most, a second some).
              yield* Effect.forEach(reservations, a.commit)
              const payloads: Array<number> = []
              while (payloads.reduce((sum, n) => sum + n, 0) < formulas.length) {
                const notification = yield* Queue.take(notifications).pipe(
                  Effect.timeout("10 seconds"),
                  TestClock.withLive
                )
                payloads.push(Number(notification.payload))
              }
              assert.isAtMost(payloads.length, 2, `payloads ${payloads}`)
              // Nothing more follows (none was requested while the last was in flight).
              const more = yield* Queue.take(notifications).pipe(
                Effect.timeout("300 millis"),
                Effect.option,
                TestClock.withLive
              )
              assert.isTrue(more._tag === "None", `one more: ${JSON.stringify(more)}`)
            })
          )
        )
      }
    })
  })
}
