/**
 * The dispatcher's metrics on /metrics of the whole service: deliveries by
 * outcome, the attempt duration histogram, and the database-wide gauges of
 * pending deliveries and disabled endpoints.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { testDatabases } from "../support/Databases.ts"
import { request, testServer } from "../support/TestServer.ts"
import { makeReceiver } from "../support/WebhookReceiver.ts"
import { clearWebhooks, insertDelivery, insertEndpoint } from "../support/WebhookRows.ts"

const scrape = Effect.gen(function* () {
  const response = yield* request("GET", "/metrics")
  assert.strictEqual(response.status, 200)
  const samples = new Map<string, number>()
  for (const line of response.text.split("\n")) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line)
    if (match !== null) samples.set(match[1]!, Number(match[2]))
  }
  return samples
})

const runtime = {
  webhooks: {
    schedule: [0, 3_600_000],
    concurrency: 4,
    disableAfter: Duration.hours(120),
    allowPrivateNetworks: true,
    pollInterval: Duration.millis(50)
  }
}

for (const database of testDatabases) {
  describe(`webhook metrics on ${database.name}`, () => {
    // One database, shared by reference (layers are memoized in one build): the server's and the test's rows.
    const db = database.layer()
    layer(Layer.merge(testServer(db, { runtime }), db), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("deliveries by outcome, attempt durations, pending deliveries, disabled endpoints", () =>
        Effect.gen(function* () {
          yield* clearWebhooks
          // The histogram lives as long as the process (other suites' attempts count too): compare.
          const durationsBefore = (yield* scrape).get("webhook_attempt_duration_seconds_count") ?? 0
          const receiver = yield* makeReceiver((r) =>
            r.path === "/ok" ? { status: 204 } : r.path === "/gone" ? { status: 410 } : { status: 500 }
          )
          for (const path of ["/ok", "/gone", "/fails"]) {
            const endpoint = yield* insertEndpoint({ url: receiver.url(path) })
            yield* insertDelivery(endpoint.id)
          }
          const signal = yield* DeliverySignal
          signal.wake()
          yield* receiver.awaitCount(3)
          // The counters move after the settlement and the gauges at the next refresh (50 ms): poll, in real time.
          let samples = new Map<string, number>()
          for (let i = 0; i < 200; i++) {
            samples = yield* scrape
            if (
              samples.get('webhook_deliveries_total{outcome="retried"}') === 1 &&
              samples.get("webhook_deliveries_pending") === 1 &&
              samples.get("webhook_endpoints_disabled") === 1
            )
              break
            yield* Effect.sleep("50 millis")
          }
          assert.strictEqual(samples.get('webhook_deliveries_total{outcome="succeeded"}'), 1)
          assert.strictEqual(samples.get('webhook_deliveries_total{outcome="gone"}'), 1)
          assert.strictEqual(samples.get('webhook_deliveries_total{outcome="retried"}'), 1)
          assert.strictEqual(samples.get("webhook_attempt_duration_seconds_count")! - durationsBefore, 3)
          assert.strictEqual(samples.get("webhook_deliveries_pending"), 1, "the one waiting for its retry")
          assert.strictEqual(samples.get("webhook_endpoints_disabled"), 1, "the one that answered 410")
        })
      )
    })
  })
}
