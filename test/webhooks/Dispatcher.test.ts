/**
 * The webhook dispatcher against a real node:http receiver on 127.0.0.1, on
 * every database. Signatures are checked with the npm `standardwebhooks`
 * package, never with our own signer. Time is a TestClock set to the real
 * time at the start (receivers refuse old timestamps), moved by hand for
 * retries; the tests wait for the dispatcher's attempt reports (hand-offs),
 * never for real time.
 */
import { assert, describe, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Clock, Context, Effect, Exit, Fiber, Layer, Queue, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Webhook } from "standardwebhooks"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { type AttemptReport, type DispatcherOptions, WebhookDispatcher } from "../../src/webhooks/Dispatcher.ts"
import { testDatabases } from "../support/Databases.ts"
import { freePort } from "../process/ServerProcess.ts"
import { makeReceiver, type Received } from "../support/WebhookReceiver.ts"
import {
  attemptRows,
  clearWebhooks,
  deliveryRow,
  endpointRow,
  insertDelivery,
  insertEndpoint,
  newSecret
} from "../support/WebhookRows.ts"

const testClock = TestClock.layer({ warningDelay: "1 hour" })

const defaults: DispatcherOptions = {
  schedule: [0, 5_000, 300_000],
  concurrency: 8,
  disableAfter: "120 hours",
  allowPrivateNetworks: true,
  timeout: "15 seconds",
  // Timers and wakes only: a poll firing in the middle of a test would hide a missing wake-up.
  pollInterval: "1 hour"
}

/**
 * Runs `body` with a dispatcher on the suite's database (emptied of webhook
 * rows first), the clock at the real time, and the attempt reports in a queue.
 */
const withDispatcher =
  (options: Partial<DispatcherOptions> = {}) =>
  <A, E, R>(body: (reports: Queue.Queue<AttemptReport>) => Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const reports = yield* Queue.unbounded<AttemptReport>()
      const setUp = Layer.effectDiscard(Effect.andThen(TestClock.setTime(Date.now()), clearWebhooks))
      const dispatcher = WebhookDispatcher.layerWith({
        ...defaults,
        ...options,
        onAttempt: (report) => Queue.offer(reports, report).pipe(Effect.asVoid)
      }).pipe(Layer.provideMerge(DeliverySignal.layer), Layer.provideMerge(setUp))
      return yield* body(reports).pipe(Effect.provide(dispatcher))
    }).pipe(Effect.provide(testClock))

const wake = DeliverySignal.use((signal) => Effect.sync(() => signal.wake()))

const headersOf = (request: Received): Record<string, string> => ({
  "webhook-id": String(request.headers["webhook-id"]),
  "webhook-timestamp": String(request.headers["webhook-timestamp"]),
  "webhook-signature": String(request.headers["webhook-signature"])
})

/** The package's own verification; throws when the signature or timestamp is wrong. */
const verify = (secret: string, request: Received) => new Webhook(secret).verify(request.body, headersOf(request))

/** The package's signature for the request's own timestamp (for attempts the clock has moved far from now). */
const expectedSignature = (secret: string, request: Received) =>
  new Webhook(secret).sign(
    String(request.headers["webhook-id"]),
    new Date(Number(request.headers["webhook-timestamp"]) * 1000),
    request.body
  )

const take = Queue.take

for (const database of testDatabases) {
  describe(`WebhookDispatcher on ${database.name}`, () => {
    layer(database.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("signs each attempt so the standardwebhooks package verifies it, with either live secret", () =>
        withDispatcher()((reports) =>
          Effect.gen(function* () {
            const receiver = yield* makeReceiver()
            const now = yield* Clock.currentTimeMillis
            const previous = newSecret()
            const rotated = yield* insertEndpoint({
              url: receiver.url("/rotated"),
              previousSecret: previous,
              previousSecretExpiresAt: new Date(now + 3_600_000)
            })
            const oldSecret = newSecret()
            const expired = yield* insertEndpoint({
              url: receiver.url("/expired"),
              previousSecret: oldSecret,
              previousSecretExpiresAt: new Date(now)
            })
            const toRotated = yield* insertDelivery(rotated.id)
            yield* insertDelivery(expired.id)
            yield* wake
            yield* take(reports)
            yield* take(reports)

            const [atRotated] = receiver.on("/rotated")
            assert.strictEqual(atRotated!.body, toRotated.body, "the event body byte for byte")
            assert.deepStrictEqual(verify(rotated.secret, atRotated!), JSON.parse(toRotated.body))
            assert.deepStrictEqual(verify(previous, atRotated!), JSON.parse(toRotated.body))
            assert.strictEqual(atRotated!.headers["webhook-signature"]!.toString().split(" ").length, 2)
            assert.strictEqual(atRotated!.headers["webhook-id"], toRotated.eventId)
            assert.strictEqual(atRotated!.headers["content-type"], "application/json")
            assert.match(String(atRotated!.headers["user-agent"]), /formula-intake/)

            const [atExpired] = receiver.on("/expired")
            verify(expired.secret, atExpired!)
            assert.throws(() => verify(oldSecret, atExpired!), /signature/i, "an expired secret no longer signs")
            assert.strictEqual(atExpired!.headers["webhook-signature"]!.toString().split(" ").length, 1)

            const row = yield* deliveryRow(toRotated.id)
            assert.strictEqual(row.status, "succeeded")
            assert.strictEqual(row.attempt_count, 1)
            assert.isNull(row.lease_token)
            const attempts = yield* attemptRows(toRotated.id)
            assert.deepStrictEqual(
              attempts.map((a) => [a.number, a.status, a.error]),
              [[1, 204, null]]
            )
            const endpoint = yield* endpointRow(rotated.id)
            assert.strictEqual(endpoint.last_success_at?.getTime(), attempts[0]!.at.getTime())
            assert.isNull(endpoint.failing_since)
          })
        )
      )

      it.effect("retries on the schedule (±20 %) with the same webhook-id, then fails after the last step", () =>
        withDispatcher()((reports) =>
          Effect.gen(function* () {
            const receiver = yield* makeReceiver(() => ({ status: 500, body: "try later" }))
            const endpoint = yield* insertEndpoint({ url: receiver.url("/flaky") })
            const delivery = yield* insertDelivery(endpoint.id)
            yield* wake

            const first = yield* take(reports)
            assert.strictEqual(first.verdict._tag, "Retry")
            const afterFirst = yield* deliveryRow(delivery.id)
            const [attempt1] = yield* attemptRows(delivery.id)
            const wait1 = afterFirst.next_attempt_at!.getTime() - attempt1!.at.getTime()
            assert.isTrue(wait1 >= 4_000 && wait1 <= 6_000, `second attempt 5 s ± 20 % later, got ${wait1} ms`)
            assert.strictEqual(afterFirst.status, "pending")

            // Exactly to the due time: a clock moved further would also fire the next attempt's own timeout.
            yield* TestClock.setTime(afterFirst.next_attempt_at!.getTime())
            const second = yield* take(reports)
            assert.strictEqual(second.attempt, 2)
            const afterSecond = yield* deliveryRow(delivery.id)
            const attempt2 = (yield* attemptRows(delivery.id))[1]!
            assert.isTrue(attempt2.at.getTime() >= afterFirst.next_attempt_at!.getTime(), "not before it was due")
            const wait2 = afterSecond.next_attempt_at!.getTime() - attempt2.at.getTime()
            assert.isTrue(wait2 >= 240_000 && wait2 <= 360_000, `third attempt 5 min ± 20 % later, got ${wait2} ms`)

            yield* TestClock.setTime(afterSecond.next_attempt_at!.getTime())
            const third = yield* take(reports)
            assert.strictEqual(third.verdict._tag, "Exhausted")
            const final = yield* deliveryRow(delivery.id)
            assert.strictEqual(final.status, "failed")
            assert.isNull(final.next_attempt_at)
            assert.strictEqual(final.attempt_count, 3)

            const sent = receiver.on("/flaky")
            assert.strictEqual(sent.length, 3)
            for (const request of sent) {
              assert.strictEqual(request.headers["webhook-id"], delivery.eventId, "one webhook-id on every retry")
              assert.strictEqual(request.body, delivery.body)
              assert.strictEqual(request.headers["webhook-signature"], expectedSignature(endpoint.secret, request))
            }
            const timestamps = sent.map((r) => Number(r.headers["webhook-timestamp"]))
            assert.isTrue(
              timestamps[0]! < timestamps[1]! && timestamps[1]! < timestamps[2]!,
              "each attempt its own time"
            )
            const attempts = yield* attemptRows(delivery.id)
            assert.deepStrictEqual(
              attempts.map((a) => [a.number, a.status, a.response]),
              [
                [1, 500, "try later"],
                [2, 500, "try later"],
                [3, 500, "try later"]
              ]
            )
            assert.isNotNull((yield* endpointRow(endpoint.id)).failing_since)
          })
        )
      )

      it.effect("410 Gone disables the endpoint at once: the delivery fails, its others wait", () =>
        withDispatcher()((reports) =>
          Effect.gen(function* () {
            const receiver = yield* makeReceiver(() => ({ status: 410 }))
            const endpoint = yield* insertEndpoint({ url: receiver.url("/gone") })
            const first = yield* insertDelivery(endpoint.id)
            yield* wake
            const report = yield* take(reports)
            assert.strictEqual(report.verdict._tag, "Gone")
            assert.strictEqual((yield* deliveryRow(first.id)).status, "failed")
            const row = yield* endpointRow(endpoint.id)
            assert.isFalse(row.enabled)
            assert.match(row.disabled_reason!, /410/)

            const second = yield* insertDelivery(endpoint.id)
            yield* wake
            yield* TestClock.adjust("1 hour")
            assert.strictEqual((yield* deliveryRow(second.id)).status, "pending")
            assert.strictEqual(receiver.received.length, 1, "nothing more sent to a disabled endpoint")
          })
        )
      )

      it.effect("429 and 503 with Retry-After: honoured (seconds or HTTP date), capped at the next step × 2", () =>
        withDispatcher({ schedule: [0, 60_000, 60_000] })((reports) =>
          Effect.gen(function* () {
            const start = yield* Clock.currentTimeMillis
            const httpDate = new Date(Math.floor(start / 1000) * 1000 + 90_000).toUTCString()
            const answers: Record<string, { status: number; headers: Record<string, string> }> = {
              "/seconds": { status: 429, headers: { "retry-after": "30" } },
              "/date": { status: 503, headers: { "retry-after": httpDate } },
              "/capped": { status: 429, headers: { "retry-after": "86400" } }
            }
            const receiver = yield* makeReceiver((request) => answers[request.path]!)
            const ids: Record<string, string> = {}
            for (const path of Object.keys(answers)) {
              const endpoint = yield* insertEndpoint({ url: receiver.url(path) })
              ids[path] = (yield* insertDelivery(endpoint.id)).id
            }
            yield* wake
            for (let i = 0; i < 3; i++) yield* take(reports)
            const delay = (path: string) =>
              Effect.gen(function* () {
                const row = yield* deliveryRow(ids[path]!)
                const [attempt] = yield* attemptRows(ids[path]!)
                return row.next_attempt_at!.getTime() - attempt!.at.getTime()
              })
            assert.strictEqual(yield* delay("/seconds"), 30_000, "Retry-After: 30 → 30 s, no jitter")
            const dateDelay = yield* delay("/date")
            assert.isTrue(dateDelay > 88_000 && dateDelay <= 90_000, `the HTTP date, got ${dateDelay} ms`)
            assert.strictEqual(yield* delay("/capped"), 120_000, "a day asked, 2 × the 60 s step given")
          })
        )
      )

      it.effect("an attempt that gets no answer times out and is retried", () =>
        withDispatcher({ timeout: "15 seconds" })((reports) =>
          Effect.gen(function* () {
            const receiver = yield* makeReceiver(() => "hold")
            const endpoint = yield* insertEndpoint({ url: receiver.url("/silent") })
            const delivery = yield* insertDelivery(endpoint.id)
            yield* wake
            yield* receiver.awaitCount(1)
            yield* TestClock.adjust("15 seconds")
            const report = yield* take(reports)
            assert.strictEqual(report.result._tag, "Failed")
            assert.strictEqual(report.verdict._tag, "Retry")
            const [attempt] = yield* attemptRows(delivery.id)
            assert.match(attempt!.error!, /timed out/)
            assert.isNull(attempt!.status)
            assert.strictEqual(attempt!.duration_ms, 15_000)
            assert.strictEqual((yield* deliveryRow(delivery.id)).status, "pending")
            receiver.release()
          })
        )
      )

      it.effect("a refused connection is a failed attempt, retried", () =>
        withDispatcher()((reports) =>
          Effect.gen(function* () {
            const port = yield* freePort
            const endpoint = yield* insertEndpoint({ url: `http://127.0.0.1:${port}/nobody` })
            const delivery = yield* insertDelivery(endpoint.id)
            yield* wake
            const report = yield* take(reports)
            assert.strictEqual(report.verdict._tag, "Retry")
            const [attempt] = yield* attemptRows(delivery.id)
            assert.match(attempt!.error!, /ECONNREFUSED/)
            assert.strictEqual((yield* deliveryRow(delivery.id)).status, "pending")
          })
        )
      )

      it.effect("a redirect is a failure and is not followed", () =>
        withDispatcher()((reports) =>
          Effect.gen(function* () {
            const receiver = yield* makeReceiver((request) =>
              request.path === "/moved" ? { status: 307, headers: { location: "/elsewhere" } } : { status: 204 }
            )
            const endpoint = yield* insertEndpoint({ url: receiver.url("/moved") })
            const delivery = yield* insertDelivery(endpoint.id)
            yield* wake
            const report = yield* take(reports)
            assert.strictEqual(report.verdict._tag, "Retry")
            assert.deepStrictEqual(
              receiver.received.map((r) => r.path),
              ["/moved"],
              "the Location was not visited"
            )
            const [attempt] = yield* attemptRows(delivery.id)
            assert.strictEqual(attempt!.status, 307)
          })
        )
      )

      it.effect("an endpoint failing without a success for the disable period is disabled; a success clears it", () =>
        withDispatcher({ disableAfter: "120 hours" })((reports) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const receiver = yield* makeReceiver((request) =>
              request.path === "/recovers" ? { status: 204 } : { status: 500 }
            )
            const longFailing = yield* insertEndpoint({
              url: receiver.url("/long"),
              failingSince: new Date(now - 120 * 3_600_000)
            })
            const recentlyFailing = yield* insertEndpoint({
              url: receiver.url("/recent"),
              failingSince: new Date(now - 119 * 3_600_000)
            })
            const healthy = yield* insertEndpoint({ url: receiver.url("/healthy") })
            const recovers = yield* insertEndpoint({
              url: receiver.url("/recovers"),
              failingSince: new Date(now - 100 * 3_600_000)
            })
            for (const endpoint of [longFailing, recentlyFailing, healthy, recovers]) yield* insertDelivery(endpoint.id)
            yield* wake
            for (let i = 0; i < 4; i++) yield* take(reports)

            const long = yield* endpointRow(longFailing.id)
            assert.isFalse(long.enabled)
            assert.match(long.disabled_reason!, /without a success/)
            const recent = yield* endpointRow(recentlyFailing.id)
            assert.isTrue(recent.enabled)
            assert.strictEqual(recent.failing_since!.getTime(), now - 119 * 3_600_000, "kept from the first failure")
            const first = yield* endpointRow(healthy.id)
            assert.isTrue(first.enabled)
            assert.isNotNull(first.failing_since, "set at the first failure after a success")
            const recovered = yield* endpointRow(recovers.id)
            assert.isNull(recovered.failing_since)
            assert.isNotNull(recovered.last_success_at)
          })
        )
      )

      it.effect("a hanging endpoint holds at most 4 attempts: another endpoint's deliveries go through", () =>
        withDispatcher({ concurrency: 5 })((reports) =>
          Effect.gen(function* () {
            let hanging = true
            const receiver = yield* makeReceiver((request) =>
              request.path === "/hangs" && hanging ? "hold" : { status: 204 }
            )
            const hangs = yield* insertEndpoint({ url: receiver.url("/hangs") })
            const answers = yield* insertEndpoint({ url: receiver.url("/answers") })
            // The hanging endpoint's deliveries are due first.
            for (let i = 0; i < 10; i++) yield* insertDelivery(hangs.id)
            yield* TestClock.adjust("1 millis")
            const others = []
            for (let i = 0; i < 6; i++) others.push(yield* insertDelivery(answers.id))
            yield* wake
            const starved = Effect.sync(() =>
              assert.fail(`the other endpoint starved: ${receiver.inProgress("/hangs")} requests held on /hangs`)
            )
            yield* Effect.gen(function* () {
              for (let i = 0; i < 6; i++) {
                const report = yield* take(reports)
                assert.strictEqual(report.endpointId, answers.id)
              }
            }).pipe(
              // Real time: nothing else will ever answer if the bound is missing.
              Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => starved }),
              TestClock.withLive,
              Effect.onError(() =>
                Effect.sync(() => {
                  hanging = false
                  receiver.release()
                })
              )
            )
            for (const delivery of others) assert.strictEqual((yield* deliveryRow(delivery.id)).status, "succeeded")
            assert.strictEqual(receiver.inProgress("/hangs"), 4, "4 held, never more")
            assert.strictEqual(receiver.on("/hangs").length, 4)
            assert.strictEqual(yield* WebhookDispatcher.use((d) => d.inFlight), 4)
            hanging = false
            receiver.release()
            for (let i = 0; i < 10; i++) assert.strictEqual((yield* take(reports)).endpointId, hangs.id)
          })
        )
      )

      it.effect("shutdown: no new claims, and the attempt in flight finishes and settles", () =>
        Effect.gen(function* () {
          yield* TestClock.setTime(Date.now())
          yield* clearWebhooks
          const receiver = yield* makeReceiver(() => "hold")
          const scope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(
            WebhookDispatcher.layerWith(defaults).pipe(Layer.provideMerge(DeliverySignal.layer)),
            scope
          )
          const inFlight = yield* insertEndpoint({ url: receiver.url("/in-flight") })
          const later = yield* insertEndpoint({ url: receiver.url("/later") })
          const sending = yield* insertDelivery(inFlight.id)
          const due = yield* insertDelivery(later.id)
          yield* PgClient.PgClient.use(
            (sql) =>
              sql`UPDATE webhook_deliveries SET next_attempt_at = next_attempt_at + interval '10 seconds'
                  WHERE id = ${due.id}`
          )
          Context.get(context, DeliverySignal).wake()
          yield* receiver.awaitCount(1)

          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          // Were the claim loop still running, its timer would claim the second delivery now.
          yield* TestClock.adjust("11 seconds")
          receiver.release(204)
          yield* Fiber.join(closing)
          assert.strictEqual((yield* deliveryRow(sending.id)).status, "succeeded", "the attempt in flight settled")
          const untouched = yield* deliveryRow(due.id)
          assert.deepStrictEqual(
            [untouched.status, untouched.attempt_count, untouched.lease_token],
            ["pending", 0, null]
          )
          assert.lengthOf(receiver.on("/later"), 0)
        }).pipe(Effect.provide(testClock))
      )

      it.effect("a settlement after the lease passed to another claim changes nothing (fenced by lease_token)", () =>
        withDispatcher()((reports) =>
          Effect.gen(function* () {
            const receiver = yield* makeReceiver(() => "hold")
            const endpoint = yield* insertEndpoint({ url: receiver.url("/slow") })
            const delivery = yield* insertDelivery(endpoint.id)
            yield* wake
            yield* receiver.awaitCount(1)
            // Another process took the delivery over (as after a lapsed lease) while this attempt hangs.
            const otherLease = "00000000-0000-4000-8000-000000000001"
            yield* PgClient.PgClient.use(
              (sql) => sql`UPDATE webhook_deliveries SET lease_token = ${otherLease} WHERE id = ${delivery.id}`
            )
            receiver.release(204)
            const report = yield* take(reports)
            assert.isFalse(report.settled)
            const row = yield* deliveryRow(delivery.id)
            assert.deepStrictEqual(
              [row.status, row.attempt_count, row.lease_token],
              ["pending", 0, otherLease],
              "the other claim's delivery untouched"
            )
            assert.lengthOf(yield* attemptRows(delivery.id), 0)
            assert.isNull((yield* endpointRow(endpoint.id)).last_success_at)
          })
        )
      )
    })
  })
}
