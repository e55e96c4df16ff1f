/**
 * The whole service with QUEUE_BACKEND=postgres (the queue is the outbox
 * table, queue/PgMessageQueue.ts), on every database, over a real socket: a
 * submission is receivable at once (a waiting long poll wakes), an ack with a
 * result settles the formula, the formula shows the live attempt count, and a
 * full queue answers 503 with Retry-After.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber } from "effect"
import { assertCreated, assertProblem, postFormula, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { testDatabases } from "../support/Databases.ts"
import { request, testServer } from "../support/TestServer.ts"

const runtime = {
  queueBackend: "postgres" as const,
  queue: { capacity: 2, visibilityTimeout: Duration.minutes(5), maxDeliveries: 3 },
  queuePollInterval: Duration.seconds(30),
  webhooks: false as const,
  statsFlushInterval: false as const
}

for (const database of testDatabases) {
  describe(`the service with the queue in the database, on ${database.name}`, () => {
    it.live(
      "submit → a waiting long poll gets it → nack → redelivered → ack with a result; full → 503",
      () =>
        Effect.gen(function* () {
          const waiting = yield* Effect.forkChild(request("POST", "/queue/receive", { body: { waitMs: 10_000 } }))
          yield* Effect.sleep("100 millis")
          const created = yield* postFormula(summerBreeze(uniqueTag()))
          assertCreated(created)
          const formulaId = created.json.id
          const received = yield* Fiber.join(waiting)
          assert.strictEqual(received.status, 200)
          const [delivery] = received.json.messages
          assert.strictEqual(delivery.body.formulaId, formulaId)
          assert.strictEqual(delivery.attempt, 1)

          const nacked = yield* request("POST", "/queue/nack", { body: { receipt: delivery.receipt, error: "again" } })
          assert.strictEqual(nacked.status, 204, nacked.text)
          const again = yield* request("POST", "/queue/receive", { body: {} })
          const [redelivery] = again.json.messages
          assert.strictEqual(redelivery.attempt, 2)
          const pending = yield* request("GET", `/formulas/${formulaId}`)
          assert.strictEqual(pending.json.message.status, "pending")
          assert.strictEqual(pending.json.message.attempts, 2)

          const stale = yield* request("POST", "/queue/ack", { body: { receipt: delivery.receipt } })
          assertProblem(stale, 409)
          const acked = yield* request("POST", "/queue/ack", {
            body: { receipt: redelivery.receipt, result: { ok: 1 } }
          })
          assert.strictEqual(acked.status, 204, acked.text)
          const processed = yield* request("GET", `/formulas/${formulaId}`)
          assert.strictEqual(processed.json.message.status, "processed")
          assert.deepStrictEqual(processed.json.message.result, { ok: 1 })
          assert.strictEqual(processed.json.message.attempts, 2)

          assertCreated(yield* postFormula(summerBreeze(uniqueTag())))
          // A client's submission takes the insert statement with webhook events: announced the same way.
          const waitingAgain = yield* Effect.forkChild(
            request("POST", "/queue/receive", { body: { waitMs: 10_000, visibilityTimeoutMs: 1 } })
          )
          yield* Effect.sleep("100 millis")
          assertCreated(
            yield* request("POST", "/formulas", {
              body: summerBreeze(uniqueTag()),
              headers: { "x-client-id": "client-a" }
            })
          )
          assert.strictEqual((yield* Fiber.join(waitingAgain)).json.messages.length, 1)
          const full = yield* postFormula(summerBreeze(uniqueTag()))
          assertProblem(full, 503)
          assert.isNotNull(full.headers.get("retry-after"))
          const stats = yield* request("GET", "/queue/stats")
          assert.strictEqual(stats.json.ready, 2)
          assert.strictEqual(stats.json.available, 0)
        }).pipe(Effect.provide(testServer(database.layer(), { runtime }))),
      { timeout: 60_000 }
    )
  })
}
