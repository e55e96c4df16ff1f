/**
 * Closing the loop over HTTP, on every database (DESIGN.md, "Processing
 * results"): a consumer acks with a result; the ack is durable when answered;
 * the result is stored once and shown on the formula; dead letters, redrives
 * and purges show on the formula too; the events they cause (formula.processed,
 * formula.dead_lettered) get delivery rows for the formula's client's subscribed
 * endpoints in the same transaction, and none when that transaction fails.
 *
 * Each test runs its own server on a fresh database behind a fault injector
 * (test/support/FaultyStream.ts), so the ack's statement can be cut. Webhook
 * endpoints and the formula's client are written with SQL: their API is built
 * elsewhere. Every test runs with both queue backends (QUEUE_BACKEND): in
 * memory, settling outbox rows through its hooks, and in the outbox table.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option } from "effect"
import { randomUUID } from "node:crypto"
import { maxResultBytes } from "../../src/domain/MessageResult.ts"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { postgresUrl } from "../support/Databases.ts"
import { FaultInjector, type FaultyDatabase, faultyDatabases } from "../support/FaultyStream.ts"
import { assertCreated, assertProblem, postFormula, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { type JsonResponse, request, testServer } from "../support/TestServer.ts"
import type { RuntimeOptions } from "../../src/Runtime.ts"
import type { QueueBackend } from "../../src/Settings.ts"

/** The ack's settling statement, as the fault injector recognises it, per queue backend. */
const SETTLE: Record<QueueBackend, string> = {
  // FormulaSql.settleProcessed, called by the memory queue's onAck hook
  memory: "UPDATE outbox SET delivered_at",
  // FormulaSql.settleByReceipt, the postgres queue's ack: the receipt's row settled with its event in one statement
  postgres: "UPDATE outbox o SET receipt = NULL"
}

const runtime = {
  queue: { capacity: 100, visibilityTimeout: Duration.minutes(5), maxDeliveries: 2 },
  cacheCapacity: 100,
  relayInterval: Duration.hours(1),
  groupCommit: { maxBatch: 64, linger: 0, workers: 2 },
  // The tests read the delivery rows as the ack wrote them: no dispatcher here (test/webhooks sends them).
  webhooks: false as const
}

/** A server on a fresh database behind `injector`; the database's client too, for the test's own SQL. */
const app = (database: FaultyDatabase, injector: FaultInjector, options: RuntimeOptions) => {
  const db = database.layer(injector)
  return testServer(db, { runtime: { ...runtime, ...options } }).pipe(Layer.provideMerge(db))
}

const submit = Effect.gen(function* () {
  return assertCreated(yield* postFormula(summerBreeze(uniqueTag())))
})

/** Receives the one message the queue holds. */
const receiveOne = Effect.gen(function* () {
  const response = yield* request("POST", "/queue/receive", { body: { max: 10 } })
  assert.strictEqual(response.status, 200, response.text)
  assert.lengthOf(response.json.messages, 1, "one message in the queue")
  return response.json.messages[0] as { messageId: string; receipt: string; attempt: number }
})

const ack = (receipt: string, result?: unknown) =>
  request("POST", "/queue/ack", { body: result === undefined ? { receipt } : { receipt, result } })

const formula = (id: string) =>
  Effect.gen(function* () {
    const response = yield* request("GET", `/formulas/${id}`)
    assert.strictEqual(response.status, 200, response.text)
    return response.json
  })

const assertStatus = (response: JsonResponse, status: number) =>
  assert.strictEqual(response.status, status, `expected ${status}, got ${response.status}: ${response.text}`)

/** Gives the formula a client with one endpoint per entry of `endpoints`; returns the endpoint ids. */
const clientWithEndpoints = (
  formulaId: string,
  endpoints: ReadonlyArray<{ readonly events: ReadonlyArray<string>; readonly enabled: boolean }>
) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const client = `client-${uniqueTag()}`
    yield* sql`UPDATE formulas SET client_id = ${client} WHERE id = ${formulaId}`
    const ids: Array<string> = []
    for (const endpoint of endpoints) {
      const id = randomUUID()
      ids.push(id)
      yield* sql`
        INSERT INTO webhook_endpoints (id, client_id, url, events, secret, enabled, created_at, updated_at)
        VALUES (${id}, ${client}, 'http://127.0.0.1:9/hook', string_to_array(${endpoint.events.join(",")}, ','),
                'whsec_dGVzdA==', ${endpoint.enabled}, now(), now())`
    }
    // Another client's endpoint subscribed to everything: must never get this formula's events.
    yield* sql`
      INSERT INTO webhook_endpoints (id, client_id, url, events, secret, enabled, created_at, updated_at)
      VALUES (${randomUUID()}, ${client + "-other"}, 'http://127.0.0.1:9/hook',
              ARRAY['formula.processed', 'formula.dead_lettered'], 'whsec_dGVzdA==', true, now(), now())`
    return { client, ids }
  })

interface DeliveryRow {
  readonly event_id: string
  readonly type: string
  readonly body: string
  readonly client_id: string
  readonly endpoint_id: string
  readonly status: string
  readonly attempt_count: number
  readonly due: boolean
}

/** Every delivery of events of `type`, with its event. */
const deliveriesOf = (type: string) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    return yield* sql<DeliveryRow>`
      SELECT e.id AS event_id, e.type, e.body, e.client_id, d.endpoint_id::text AS endpoint_id, d.status,
             d.attempt_count, d.next_attempt_at IS NOT NULL AS due
        FROM webhook_events e JOIN webhook_deliveries d ON d.event_id = e.id
       WHERE e.type = ${type} ORDER BY d.endpoint_id`
  })

const eventCount = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const rows = yield* sql<{ readonly count: number }>`SELECT count(*)::int AS count FROM webhook_events`
  return rows[0]!.count
})

const timeout = 60_000

for (const [database, queueBackend] of faultyDatabases(postgresUrl).flatMap((database) =>
  (["memory", "postgres"] as const).map((backend) => [database, backend] as const)
)) {
  describe(`results and message status over HTTP on ${database.name}, queue in ${queueBackend}`, () => {
    const onApp = <A, E, R>(
      database: FaultyDatabase,
      body: (injector: FaultInjector) => Effect.Effect<A, E, R>,
      options: RuntimeOptions = {}
    ) =>
      Effect.suspend(() => {
        const injector = new FaultInjector()
        return body(injector).pipe(Effect.provide(app(database, injector, { queueBackend, ...options })))
      })

    it.live(
      "ack with a result: 204; GET /formulas/{id} and GET /formulas show it processed, with attempts, processedAt and the result",
      () =>
        onApp(database, () =>
          Effect.gen(function* () {
            const created = yield* submit
            assert.deepInclude(created.message, { status: "pending", attempts: 0, result: null, processedAt: null })
            const delivery = yield* receiveOne
            assert.deepInclude((yield* formula(created.id)).message, { status: "pending", attempts: 1 })
            const result = { concentrationClass: "Parfum", total: 30.7, notes: ["citrus", "wood"], exact: null }
            assertStatus(yield* ack(delivery.receipt, result), 204)

            const shown = (yield* formula(created.id)).message
            assert.deepInclude(shown, { id: delivery.messageId, status: "processed", attempts: 1, lastError: null })
            assert.deepStrictEqual(shown.result, result)
            assert.isString(shown.processedAt)
            assert.strictEqual(shown.deliveredAt, shown.processedAt, "the earlier name still says the same")
            const listed = (yield* request("GET", "/formulas")).json.items.find((item: any) => item.id === created.id)
            assert.deepStrictEqual(listed.message, shown)
            assert.strictEqual((yield* MessageQueue.use((queue) => queue.stats)).size, 0)
          })
        ),
      timeout
    )

    it.live(
      "a result over 64 KiB serialized is a 400 at /body/result and stores nothing; exactly 64 KiB is stored",
      () =>
        onApp(database, () =>
          Effect.gen(function* () {
            const created = yield* submit
            const delivery = yield* receiveOne
            // A JSON string's serialized form is its text plus two quotes; "é" is two bytes of UTF-8.
            const tooLarge = "é".repeat(maxResultBytes / 2 - 1) + "x"
            const rejected = yield* ack(delivery.receipt, tooLarge)
            assertProblem(rejected, 400, "invalid-request")
            assert.deepStrictEqual(
              rejected.json.errors.map((error: any) => error.path),
              ["/body/result"]
            )
            assert.deepInclude((yield* formula(created.id)).message, { status: "pending", result: null })
            assert.strictEqual((yield* MessageQueue.use((queue) => queue.stats)).inFlight, 1, "still in flight")

            const largest = "é".repeat(maxResultBytes / 2 - 1)
            assert.strictEqual(Buffer.byteLength(JSON.stringify(largest)), maxResultBytes)
            assertStatus(yield* ack(delivery.receipt, largest), 204)
            assert.strictEqual((yield* formula(created.id)).message.result, largest)
          })
        ),
      timeout
    )

    it.live(
      "the database cut as the ack's statement is sent: 503 + Retry-After, the message still in flight under the same receipt, no event; ack again: 204, the result stored, one event",
      () =>
        onApp(database, (injector) =>
          Effect.gen(function* () {
            const created = yield* submit
            const { ids } = yield* clientWithEndpoints(created.id, [{ events: ["formula.processed"], enabled: true }])
            const delivery = yield* receiveOne
            const fault = injector.arm(SETTLE[queueBackend], "before")
            const failed = yield* ack(delivery.receipt, { grade: 1 })
            assert.isTrue(yield* fault.hasFired)
            assertProblem(failed, 503, "database-unavailable")
            assert.match(failed.headers.get("retry-after") ?? "", /^\d+$/)
            const stats = yield* MessageQueue.use((queue) => queue.stats)
            assert.strictEqual(stats.inFlight, 1, "the message was not lost")
            if (queueBackend === "memory") assert.strictEqual(stats.totals.acked, 0)
            assert.deepInclude((yield* formula(created.id)).message, { status: "pending", result: null })
            assert.strictEqual(yield* eventCount, 0, "no event for an ack that did not commit")

            assertStatus(yield* ack(delivery.receipt, { grade: 1 }), 204)
            assert.deepInclude((yield* formula(created.id)).message, { status: "processed", result: { grade: 1 } })
            const deliveries = yield* deliveriesOf("formula.processed")
            assert.deepStrictEqual(
              deliveries.map((row) => row.endpoint_id),
              ids
            )
          })
        ),
      timeout
    )

    it.live(
      "results are stored once: the ack's statement commits but its answer is lost (503); acked again with another result (memory: 204; postgres: 409, the receipt went with the settlement), and once more after a redelivery, the first result stays, with one event",
      () =>
        onApp(database, (injector) =>
          Effect.gen(function* () {
            const created = yield* submit
            yield* clientWithEndpoints(created.id, [{ events: ["formula.processed"], enabled: true }])
            const delivery = yield* receiveOne
            const fault = injector.arm(SETTLE[queueBackend], "after")
            assertProblem(yield* ack(delivery.receipt, "first"), 503, "database-unavailable")
            assert.isTrue(yield* fault.hasFired)
            // The memory queue kept the message in flight (its hook failed); the table's committed ack cleared the
            // receipt, so acking again cannot tell "recorded" from "stale" (PgMessageQueue.ts says so).
            const again = yield* ack(delivery.receipt, "second")
            if (queueBackend === "memory") assertStatus(again, 204)
            else assertProblem(again, 409, "queue-receipt-invalid")
            assert.strictEqual((yield* formula(created.id)).message.result, "first")

            // Delivered again (as the memory queue's outbox relay does with a message whose outcome it could not
            // learn). In the table the settled row is the message: published again it is a duplicate, never delivered.
            const republished = yield* MessageQueue.use((queue) =>
              queue.publish({ messageId: delivery.messageId, body: { formulaId: created.id } })
            )
            if (queueBackend === "memory") {
              const again = yield* receiveOne
              assertStatus(yield* ack(again.receipt, "third"), 204)
            } else {
              assert.isTrue(republished.duplicate)
              assert.deepStrictEqual((yield* request("POST", "/queue/receive", { body: { max: 10 } })).json, {
                messages: []
              })
            }
            const shown = (yield* formula(created.id)).message
            assert.deepInclude(shown, { status: "processed", result: "first", attempts: 1 })
            assert.lengthOf(yield* deliveriesOf("formula.processed"), 1, "one event, one delivery")
          })
        ),
      timeout
    )

    it.live(
      "formula.processed: one event, a pending delivery per enabled endpoint of the formula's client subscribed to it; none for a disabled or unsubscribed endpoint or another client; the body as specified",
      () =>
        onApp(database, () =>
          Effect.gen(function* () {
            const created = yield* submit
            const { client, ids } = yield* clientWithEndpoints(created.id, [
              { events: ["formula.processed", "formula.created"], enabled: true },
              { events: ["formula.processed"], enabled: true },
              { events: ["formula.processed"], enabled: false },
              { events: ["formula.dead_lettered"], enabled: true }
            ])
            const delivery = yield* receiveOne
            assertStatus(yield* ack(delivery.receipt, { grade: "A" }), 204)
            const woken = yield* DeliverySignal.use((signal) => signal.waitForWake).pipe(
              Effect.timeoutOption(Duration.seconds(10))
            )
            assert.isTrue(Option.isSome(woken), "the dispatcher is woken after the commit")

            const deliveries = yield* deliveriesOf("formula.processed")
            assert.sameMembers(
              deliveries.map((row) => row.endpoint_id),
              ids.slice(0, 2)
            )
            assert.strictEqual(new Set(deliveries.map((row) => row.event_id)).size, 1, "one event")
            const row = deliveries[0]!
            assert.match(row.event_id, /^evt_[0-9a-f]{32}$/)
            assert.strictEqual(row.client_id, client)
            assert.deepInclude(row, { status: "pending", attempt_count: 0, due: true })
            const body = JSON.parse(row.body)
            assert.deepStrictEqual(Object.keys(body), ["type", "timestamp", "data"])
            assert.strictEqual(body.type, "formula.processed")
            assert.strictEqual(new Date(body.timestamp).toISOString(), body.timestamp)
            assert.deepStrictEqual(body.data, {
              formulaId: created.id,
              messageId: delivery.messageId,
              result: { grade: "A" }
            })
            assert.strictEqual(row.body, JSON.stringify(body), "compact JSON, as sent")
          })
        ),
      timeout
    )

    it.live(
      "no event for a formula without a client, nor for a client without endpoints",
      () =>
        onApp(database, () =>
          Effect.gen(function* () {
            const lone = yield* submit
            const withClient = yield* submit
            yield* clientWithEndpoints(withClient.id, [])
            const received = yield* request("POST", "/queue/receive", { body: { max: 10 } })
            assert.lengthOf(received.json.messages, 2)
            for (const delivery of received.json.messages) assertStatus(yield* ack(delivery.receipt, 1), 204)
            assert.strictEqual((yield* formula(lone.id)).message.status, "processed")
            assert.strictEqual((yield* formula(withClient.id)).message.status, "processed")
            assert.strictEqual(yield* eventCount, 0)
          })
        ),
      timeout
    )

    it.live(
      "a dead letter is persisted with its formula.dead_lettered event and shown on the formula with its last error; redriven it is pending again; dead again and purged, purged",
      () =>
        onApp(database, () =>
          Effect.gen(function* () {
            const created = yield* submit
            const { ids } = yield* clientWithEndpoints(created.id, [
              { events: ["formula.dead_lettered"], enabled: true },
              { events: ["formula.processed"], enabled: true }
            ])
            const queue = yield* MessageQueue
            const failTwice = Effect.gen(function* () {
              for (const error of ["timeout", "classifier unavailable"]) {
                const delivery = yield* receiveOne
                const nacked = yield* request("POST", "/queue/nack", { body: { receipt: delivery.receipt, error } })
                assertStatus(nacked, 204)
              }
              yield* queue.awaitPersisted
            })
            yield* failTwice
            const dead = (yield* formula(created.id)).message
            assert.deepInclude(dead, {
              status: "dead-lettered",
              attempts: 2,
              lastError: "classifier unavailable",
              result: null,
              processedAt: null
            })
            assert.isString(dead.deadLetteredAt)
            const deliveries = yield* deliveriesOf("formula.dead_lettered")
            assert.deepStrictEqual(
              deliveries.map((row) => row.endpoint_id),
              [ids[0]]
            )
            assert.deepStrictEqual(JSON.parse(deliveries[0]!.body).data, {
              formulaId: created.id,
              messageId: dead.id,
              attempts: 2,
              lastError: "classifier unavailable"
            })

            assertStatus(yield* request("POST", "/queue/dead-letters/redrive"), 200)
            yield* queue.awaitPersisted
            assert.deepInclude((yield* formula(created.id)).message, {
              status: "pending",
              attempts: 0,
              lastError: null,
              deadLetteredAt: null
            })

            yield* failTwice
            assert.strictEqual((yield* formula(created.id)).message.status, "dead-lettered")
            assert.lengthOf(yield* deliveriesOf("formula.dead_lettered"), 2, "an event per dead-lettering")
            assertStatus(yield* request("DELETE", "/queue/dead-letters"), 200)
            assert.deepInclude((yield* formula(created.id)).message, {
              status: "purged",
              lastError: "classifier unavailable"
            })
          })
        ),
      timeout
    )

    it.live(
      "a full queue: POST /formulas is a 503 queue-full with Retry-After, nothing stored; an ack makes room again",
      () =>
        onApp(
          database,
          () =>
            Effect.gen(function* () {
              const first = yield* submit
              const full = yield* postFormula(summerBreeze(uniqueTag()))
              assertProblem(full, 503, "queue-full")
              assert.match(full.headers.get("retry-after") ?? "", /^\d+$/)
              const listed = (yield* request("GET", "/formulas")).json.items
              assert.deepStrictEqual(
                listed.map((item: any) => item.id),
                [first.id],
                "the refused formula was not stored"
              )
              const stats = yield* MessageQueue.use((queue) => queue.stats)
              assert.deepInclude(stats, { capacity: 1, size: 1, available: 0 })

              const delivery = yield* receiveOne
              assertStatus(yield* ack(delivery.receipt, { grade: "A" }), 204)
              yield* submit
            }),
          { queue: { ...runtime.queue, capacity: 1 } }
        ),
      timeout
    )
  })
}
