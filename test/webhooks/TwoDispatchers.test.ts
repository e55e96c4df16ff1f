/**
 * Two dispatchers — two processes' worth: separate connection pools, separate
 * wake-ups, found by polling — on one PostgreSQL schema, sending the same
 * deliveries to one receiver that holds each request a little and fails each
 * event's first attempt (retried at once: schedule 0, 0). The receiver counts
 * requests in progress per endpoint and webhook-id: never two at once (the
 * claim's SKIP LOCKED and the lease), every attempt recorded once, every
 * delivery succeeded after exactly two attempts.
 *
 * Real clock: the two dispatchers poll every 50 ms; the test waits (≤ 60 s)
 * until every delivery settled, and asserts nothing about speed.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import * as Database from "../../src/store/Database.ts"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { type DispatcherOptions, WebhookDispatcher } from "../../src/webhooks/Dispatcher.ts"
import { postgresSchemaLayer, postgresUrl } from "../support/Databases.ts"
import { makeReceiver } from "../support/WebhookReceiver.ts"
import { insertDelivery, insertEndpoint } from "../support/WebhookRows.ts"

const endpoints = 5
const eventsPerEndpoint = 30

describe.skipIf(postgresUrl === undefined)("two dispatchers on one PostgreSQL", () => {
  it.live(
    "never send one attempt twice at once, and record each attempt once",
    () =>
      Effect.gen(function* () {
        const attemptsBy = { a: 0, b: 0 }
        const options = (name: "a" | "b"): DispatcherOptions => ({
          schedule: [0, 0, 0],
          concurrency: 16,
          disableAfter: "120 hours",
          allowPrivateNetworks: true,
          pollInterval: "50 millis",
          onAttempt: () => Effect.sync(() => void attemptsBy[name]++)
        })
        const schema = `test_two_dispatchers_${process.pid}_${Date.now().toString(36)}`
        const shared = postgresSchemaLayer(postgresUrl!, schema)
        const second = WebhookDispatcher.layerWith(options("b")).pipe(
          Layer.provide(DeliverySignal.layer),
          Layer.provide(Database.layerPostgres(Redacted.make(postgresUrl!), { schema }))
        )
        const first = WebhookDispatcher.layerWith(options("a")).pipe(
          Layer.provide(DeliverySignal.layer),
          Layer.provideMerge(shared)
        )

        const seen = new Map<string, number>()
        const receiver = yield* makeReceiver((request) => {
          const key = `${request.path} ${request.headers["webhook-id"]}`
          const n = (seen.get(key) ?? 0) + 1
          seen.set(key, n)
          return { delayMs: 5, then: { status: n === 1 ? 500 : 204 } }
        })

        yield* Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          // Written before either dispatcher can see them: one transaction.
          yield* sql.withTransaction(
            Effect.gen(function* () {
              for (let e = 0; e < endpoints; e++) {
                const endpoint = yield* insertEndpoint({ url: receiver.url(`/endpoint-${e}`) })
                for (let i = 0; i < eventsPerEndpoint; i++) yield* insertDelivery(endpoint.id)
              }
            })
          )
          const total = endpoints * eventsPerEndpoint
          for (let i = 0; ; i++) {
            const [row] = yield* sql<{ readonly done: string }>`
              SELECT count(*) AS done FROM webhook_deliveries WHERE status = 'succeeded'`
            if (Number(row!.done) === total) break
            assert.isBelow(i, 600, `only ${row!.done} of ${total} deliveries succeeded within 60 s`)
            yield* Effect.sleep("100 millis")
          }
          const [attempts] = yield* sql<{ readonly n: string }>`SELECT count(*) AS n FROM webhook_attempts`
          assert.strictEqual(receiver.maxConcurrentPerId(), 1, "one attempt of a delivery at a time")
          assert.strictEqual(receiver.received.length, 2 * total, "each delivery: one failure, one success")
          assert.strictEqual(Number(attempts!.n), 2 * total, "every attempt recorded once")
          assert.isTrue([...seen.values()].every((n) => n === 2))
          assert.isAbove(attemptsBy.a, 0, "the first dispatcher took part")
          assert.isAbove(attemptsBy.b, 0, "the second dispatcher took part")
        }).pipe(Effect.provide(second), Effect.provide(first))
      }),
    120_000
  )
})
