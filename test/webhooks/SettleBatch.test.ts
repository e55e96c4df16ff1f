/**
 * DeliverySql.settleBatch on every database: a batch of settlements is one
 * statement, fenced per delivery by its lease token, and each endpoint's
 * health is merged as if the batch's settlements had been applied one by one
 * in order. The endpoint row is not written for a success on a healthy
 * endpoint whose last success is fresher than `successFreshMs`.
 */
import { assert, describe, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { makeDeliverySql, type Settlement } from "../../src/webhooks/DeliverySql.ts"
import { testDatabases } from "../support/Databases.ts"
import {
  attemptRows,
  clearWebhooks,
  deliveryRow,
  endpointRow,
  insertDelivery,
  insertEndpoint
} from "../support/WebhookRows.ts"

const hour = 3_600_000
const disableAfter = 120 * hour
const freshMs = 1_000

/** A pending delivery to `endpointId`, leased with a token of its own. */
const leased = (endpointId: string) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const { id } = yield* insertDelivery(endpointId)
    const leaseToken = randomUUID()
    yield* sql`UPDATE webhook_deliveries SET lease_token = ${leaseToken},
                 lease_expires_at = ${new Date(Date.now() + 60_000)} WHERE id = ${id}`
    return { deliveryId: id, endpointId, leaseToken }
  })

const settlement = (
  lease: { readonly deliveryId: string; readonly endpointId: string; readonly leaseToken: string },
  outcome: "succeeded" | "failed" | "gone",
  atMs: number
): Settlement => ({
  ...lease,
  status: outcome === "succeeded" ? "succeeded" : outcome === "gone" ? "failed" : "pending",
  nextAttemptAt: outcome === "failed" ? new Date(atMs + 5_000) : null,
  attempt: {
    at: new Date(atMs),
    durationMs: 3,
    status: outcome === "succeeded" ? 204 : outcome === "gone" ? 410 : 500,
    error: null,
    response: ""
  },
  succeeded: outcome === "succeeded",
  gone: outcome === "gone",
  disableIfFailingSince: new Date(atMs - disableAfter),
  disabledReason: outcome === "gone" ? "the endpoint answered 410 Gone" : "failing without a success for 5d"
})

const settleBatch = (settlements: ReadonlyArray<Settlement>) =>
  PgClient.PgClient.use((sql) => sql.withTransaction(makeDeliverySql(sql).settleBatch(settlements, freshMs)))

for (const database of testDatabases) {
  describe(`DeliverySql.settleBatch on ${database.name}`, () => {
    layer(database.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("fenced per delivery: a settlement whose lease token is not the delivery's writes nothing", () =>
        Effect.gen(function* () {
          yield* clearWebhooks
          const now = Date.now()
          const endpoint = yield* insertEndpoint({ url: "http://127.0.0.1:1/ok" })
          const ours = yield* leased(endpoint.id)
          const lapsed = yield* leased(endpoint.id)
          const written = yield* settleBatch([
            settlement(ours, "succeeded", now),
            settlement({ ...lapsed, leaseToken: randomUUID() }, "failed", now + 1)
          ])
          assert.deepStrictEqual(written, [true, false])
          assert.strictEqual((yield* deliveryRow(ours.deliveryId)).status, "succeeded")
          const untouched = yield* deliveryRow(lapsed.deliveryId)
          assert.strictEqual(untouched.attempt_count, 0)
          assert.strictEqual(untouched.lease_token, lapsed.leaseToken)
          assert.lengthOf(yield* attemptRows(lapsed.deliveryId), 0)
          const row = yield* endpointRow(endpoint.id)
          assert.isNull(row.failing_since, "the fenced-off failure did not count against the endpoint")
          assert.strictEqual(row.last_success_at?.getTime(), now)
        })
      )

      it.effect(
        "one endpoint's settlements merge in order: fail, succeed, fail leaves it failing since the last failure",
        () =>
          Effect.gen(function* () {
            yield* clearWebhooks
            const now = Date.now()
            const endpoint = yield* insertEndpoint({ url: "http://127.0.0.1:1/ok" })
            const [a, b, c] = [yield* leased(endpoint.id), yield* leased(endpoint.id), yield* leased(endpoint.id)]
            const written = yield* settleBatch([
              settlement(a!, "failed", now),
              settlement(b!, "succeeded", now + 10),
              settlement(c!, "failed", now + 20)
            ])
            assert.deepStrictEqual(written, [true, true, true])
            const row = yield* endpointRow(endpoint.id)
            assert.strictEqual(row.failing_since?.getTime(), now + 20)
            assert.strictEqual(row.last_success_at?.getTime(), now + 10)
            assert.isTrue(row.enabled)
            assert.strictEqual((yield* attemptRows(c!.deliveryId))[0]?.status, 500)
          })
      )

      it.effect(
        "disable after hours counts from the stored failing_since, unless a success in the batch came first",
        () =>
          Effect.gen(function* () {
            yield* clearWebhooks
            const now = Date.now()
            const long = yield* insertEndpoint({
              url: "http://127.0.0.1:1/a",
              failingSince: new Date(now - disableAfter)
            })
            const saved = yield* insertEndpoint({
              url: "http://127.0.0.1:1/b",
              failingSince: new Date(now - disableAfter)
            })
            const gone = yield* insertEndpoint({ url: "http://127.0.0.1:1/c" })
            const longLease = yield* leased(long.id)
            const [savedOk, savedFail] = [yield* leased(saved.id), yield* leased(saved.id)]
            const goneLease = yield* leased(gone.id)
            yield* settleBatch([
              settlement(savedOk!, "succeeded", now),
              settlement(longLease, "failed", now),
              settlement(savedFail!, "failed", now + 10),
              settlement(goneLease, "gone", now)
            ])
            const longRow = yield* endpointRow(long.id)
            assert.isFalse(longRow.enabled)
            assert.match(longRow.disabled_reason!, /without a success/)
            assert.strictEqual(longRow.failing_since?.getTime(), now - disableAfter, "kept from the first failure")
            const savedRow = yield* endpointRow(saved.id)
            assert.isTrue(savedRow.enabled, "the success reset its streak before the failure")
            assert.strictEqual(savedRow.failing_since?.getTime(), now + 10)
            const goneRow = yield* endpointRow(gone.id)
            assert.isFalse(goneRow.enabled)
            assert.match(goneRow.disabled_reason!, /410/)
          })
      )

      it.effect(
        "a success on a healthy endpoint writes last_success_at only once it is older than successFreshMs",
        () =>
          Effect.gen(function* () {
            yield* clearWebhooks
            const now = Date.now()
            const endpoint = yield* insertEndpoint({ url: "http://127.0.0.1:1/ok" })
            yield* settleBatch([settlement(yield* leased(endpoint.id), "succeeded", now)])
            assert.strictEqual((yield* endpointRow(endpoint.id)).last_success_at?.getTime(), now)
            yield* settleBatch([settlement(yield* leased(endpoint.id), "succeeded", now + freshMs - 1)])
            assert.strictEqual((yield* endpointRow(endpoint.id)).last_success_at?.getTime(), now, "fresh: not written")
            yield* settleBatch([settlement(yield* leased(endpoint.id), "succeeded", now + freshMs + 1)])
            assert.strictEqual((yield* endpointRow(endpoint.id)).last_success_at?.getTime(), now + freshMs + 1)
            // A failure is always written, however fresh the last success.
            yield* settleBatch([settlement(yield* leased(endpoint.id), "failed", now + freshMs + 2)])
            assert.strictEqual((yield* endpointRow(endpoint.id)).failing_since?.getTime(), now + freshMs + 2)
          })
      )
    })
  })
}
