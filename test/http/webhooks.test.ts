/**
 * The webhook endpoint API and the formula.created event, over a real socket,
 * on every test database. It protects: the CRUD lifecycle; the secret shown
 * only on create and rotation, in the Standard Webhooks form; one client never
 * sees another's endpoints or deliveries (404, not 403); X-Client-Id required;
 * URLs checked (scheme, credentials, length, SSRF guard unless allowed); a
 * submission with X-Client-Id writes exactly one formula.created event and one
 * delivery per subscribed enabled endpoint of THAT client, in its transaction,
 * and nothing for duplicates, rejected requests or clients without endpoints;
 * the test event; the deliveries list (status filter, cursor, attempts,
 * retryInSeconds); the manual retry of a failed delivery.
 */
import { assert, describe, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { assertCreated, assertDuplicateOf, assertProblem, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { testDatabases } from "../support/Databases.ts"
import { type JsonResponse, request, testServer } from "../support/TestServer.ts"

const as = (clientId: string | undefined) => (clientId === undefined ? {} : { "x-client-id": clientId })

const newClient = () => `client-${uniqueTag()}`

const register = (clientId: string, body: Record<string, unknown>) =>
  request("POST", "/webhooks", { headers: as(clientId), body })

/** Registers an endpoint (a loopback URL: these servers allow private networks) and returns it. */
const registered = (clientId: string, body: Record<string, unknown> = {}) =>
  Effect.map(register(clientId, { url: "http://127.0.0.1:9/hook", ...body }), (response) => {
    assert.strictEqual(response.status, 201, response.text)
    return response.json as { id: string; secret: string; events: Array<string> }
  })

const secretForm = /^whsec_[A-Za-z0-9+/]{43}=$/

const assertSecret = (secret: unknown) => {
  assert.match(String(secret), secretForm)
  assert.strictEqual(Buffer.from(String(secret).slice("whsec_".length), "base64").length, 32)
}

/** The 400 naming `path`; returns its message there. */
const assertInvalidAt = (response: JsonResponse, path: string): string => {
  assertProblem(response, 400, "invalid-request")
  const error = (response.json.errors as Array<{ path: string; message: string }>).find((e) => e.path === path)
  assert.isDefined(error, `a problem at ${path}: ${response.text}`)
  return error!.message
}

const submit = (clientId: string | undefined, body: unknown) =>
  request("POST", "/formulas", { headers: as(clientId), body })

const sql = Effect.service(PgClient.PgClient)

interface EventRow {
  readonly id: string
  readonly client_id: string
  readonly type: string
  readonly body: string
}

/** The events (with their deliveries' endpoints) that name a formula. */
const eventsOf = (formulaId: string) =>
  Effect.gen(function* () {
    const db = yield* sql
    const events = yield* db<EventRow>`
      SELECT id, client_id, type, body FROM webhook_events WHERE body::json -> 'data' ->> 'id' = ${formulaId}`
    return yield* Effect.forEach(events, (event) =>
      Effect.map(
        db<{ endpoint_id: string; status: string; attempt_count: number; next_attempt_at: Date }>`
          SELECT endpoint_id::text AS endpoint_id, status, attempt_count, next_attempt_at
            FROM webhook_deliveries WHERE event_id = ${event.id}`,
        (deliveries) => ({ ...event, deliveries })
      )
    )
  })

const eventCount = (clientId: string) =>
  Effect.flatMap(sql, (db) =>
    Effect.map(db<{ n: number }>`SELECT count(*)::int AS n FROM webhook_events WHERE client_id = ${clientId}`, (rows) =>
      Number(rows[0]!.n)
    )
  )

for (const database of testDatabases) {
  describe(`webhooks on ${database.name}`, () => {
    const db = database.layer()
    // No fingerprint cache: a duplicate reaches the database, whose statement must write no event for it.
    // No dispatcher: the tests read deliveries as they were written (test/webhooks covers sending them).
    const server = testServer(db, {
      runtime: { webhookAllowPrivateNetworks: true, cacheCapacity: 0, webhooks: false }
    }).pipe(Layer.provideMerge(db))

    layer(server, { excludeTestServices: true })((it) => {
      it.effect("an endpoint's lifecycle: register, list, get, change, disable, re-enable, rotate, delete", () =>
        Effect.gen(function* () {
          const client = newClient()
          const created = yield* register(client, { url: "http://127.0.0.1:9/a", description: "results" })
          assert.strictEqual(created.status, 201, created.text)
          assertSecret(created.json.secret)
          assert.deepInclude(created.json, {
            url: "http://127.0.0.1:9/a",
            events: ["formula.created", "formula.processed", "formula.dead_lettered"],
            description: "results",
            enabled: true,
            disabledReason: null,
            failingSince: null
          })
          const id: string = created.json.id

          const listed = yield* request("GET", "/webhooks", { headers: as(client) })
          assert.strictEqual(listed.status, 200)
          assert.lengthOf(listed.json.items, 1)
          assert.strictEqual(listed.json.items[0].id, id)
          assert.notInclude(listed.text, "whsec_", "the list never shows a secret")

          const got = yield* request("GET", `/webhooks/${id}`, { headers: as(client) })
          assert.strictEqual(got.status, 200)
          assert.notProperty(got.json, "secret")
          assert.notInclude(got.text, "whsec_")

          const changed = yield* request("PATCH", `/webhooks/${id}`, {
            headers: as(client),
            body: { events: ["formula.processed"], description: null, url: "http://127.0.0.1:9/b" }
          })
          assert.strictEqual(changed.status, 200, changed.text)
          assert.deepInclude(changed.json, {
            events: ["formula.processed"],
            description: null,
            url: "http://127.0.0.1:9/b"
          })
          assert.notInclude(changed.text, "whsec_")

          const disabled = yield* request("PATCH", `/webhooks/${id}`, { headers: as(client), body: { enabled: false } })
          assert.deepInclude(disabled.json, { enabled: false, disabledReason: "disabled by the client" })

          // As the dispatcher leaves a failing endpoint: re-enabling clears both.
          const db = yield* sql
          yield* db`UPDATE webhook_endpoints SET failing_since = now(), disabled_reason = 'failing for 120 hours'
                     WHERE id = ${id}`
          const failing = yield* request("GET", `/webhooks/${id}`, { headers: as(client) })
          assert.isString(failing.json.failingSince)
          const enabled = yield* request("PATCH", `/webhooks/${id}`, { headers: as(client), body: { enabled: true } })
          assert.deepInclude(enabled.json, { enabled: true, disabledReason: null, failingSince: null })

          const [before] = yield* db<{ secret: string }>`SELECT secret FROM webhook_endpoints WHERE id = ${id}`
          assert.strictEqual(before!.secret, created.json.secret)
          const rotated = yield* request("POST", `/webhooks/${id}/rotate-secret`, { headers: as(client) })
          assert.strictEqual(rotated.status, 200)
          assertSecret(rotated.json.secret)
          assert.notStrictEqual(rotated.json.secret, created.json.secret)
          assert.deepStrictEqual(Object.keys(rotated.json), ["secret"])
          const [after] = yield* db<{ secret: string; previous_secret: string; hours: number }>`
            SELECT secret, previous_secret,
                   extract(epoch FROM previous_secret_expires_at - updated_at)::float8 / 3600 AS hours
              FROM webhook_endpoints WHERE id = ${id}`
          assert.strictEqual(after!.secret, rotated.json.secret)
          assert.strictEqual(after!.previous_secret, created.json.secret, "the old secret signs on")
          assert.strictEqual(Number(after!.hours), 24, "for 24 hours")

          const deleted = yield* request("DELETE", `/webhooks/${id}`, { headers: as(client) })
          assert.strictEqual(deleted.status, 204)
          assertProblem(yield* request("GET", `/webhooks/${id}`, { headers: as(client) }), 404, "webhook-not-found")
          assertProblem(yield* request("DELETE", `/webhooks/${id}`, { headers: as(client) }), 404, "webhook-not-found")
          const empty = yield* request("GET", "/webhooks", { headers: as(client) })
          assert.deepStrictEqual(empty.json, { items: [] })
        })
      )

      it.effect("deleting an endpoint deletes its deliveries", () =>
        Effect.gen(function* () {
          const client = newClient()
          const endpoint = yield* registered(client)
          assert.strictEqual(
            (yield* request("POST", `/webhooks/${endpoint.id}/test`, { headers: as(client) })).status,
            202
          )
          yield* request("DELETE", `/webhooks/${endpoint.id}`, { headers: as(client) })
          const db = yield* sql
          const [left] = yield* db<{ n: number }>`
            SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = ${endpoint.id}`
          assert.strictEqual(Number(left!.n), 0)
        })
      )

      it.effect("another client's endpoint or delivery is not found (404, never 403), and not listed", () =>
        Effect.gen(function* () {
          const owner = newClient()
          const other = newClient()
          const endpoint = yield* registered(owner)
          const test = yield* request("POST", `/webhooks/${endpoint.id}/test`, { headers: as(owner) })
          const page = yield* request("GET", `/webhooks/${endpoint.id}/deliveries`, { headers: as(owner) })
          const deliveryId: string = page.json.items[0].id
          assert.strictEqual(test.status, 202)
          const attempts: Array<readonly [string, string, Record<string, unknown> | undefined]> = [
            ["GET", `/webhooks/${endpoint.id}`, undefined],
            ["PATCH", `/webhooks/${endpoint.id}`, { enabled: false }],
            ["DELETE", `/webhooks/${endpoint.id}`, undefined],
            ["POST", `/webhooks/${endpoint.id}/rotate-secret`, undefined],
            ["POST", `/webhooks/${endpoint.id}/test`, undefined],
            ["GET", `/webhooks/${endpoint.id}/deliveries`, undefined],
            ["POST", `/webhooks/${endpoint.id}/deliveries/${deliveryId}/retry`, undefined]
          ]
          for (const [method, path, body] of attempts) {
            const response = yield* request(method, path, {
              headers: as(other),
              ...(body === undefined ? {} : { body })
            })
            assertProblem(response, 404, "webhook-not-found")
          }
          assert.deepStrictEqual((yield* request("GET", "/webhooks", { headers: as(other) })).json, { items: [] })
          // Nothing changed for the owner.
          const still = yield* request("GET", `/webhooks/${endpoint.id}`, { headers: as(owner) })
          assert.strictEqual(still.json.enabled, true)
          const deliveries = yield* request("GET", `/webhooks/${endpoint.id}/deliveries`, { headers: as(owner) })
          assert.lengthOf(deliveries.json.items, 1, "the other client's test event was not written")
          // Malformed ids are not found either (not a 500 from a uuid cast).
          assertProblem(yield* request("GET", "/webhooks/not-a-uuid", { headers: as(owner) }), 404, "webhook-not-found")
          assertProblem(
            yield* request("POST", `/webhooks/${endpoint.id}/deliveries/nope/retry`, { headers: as(owner) }),
            404,
            "webhook-delivery-not-found"
          )
        })
      )

      it.effect("every webhook route needs X-Client-Id (1–255 characters): 400 at /headers/x-client-id", () =>
        Effect.gen(function* () {
          const client = newClient()
          const endpoint = yield* registered(client)
          const id = endpoint.id
          const routes: Array<readonly [string, string, Record<string, unknown> | undefined]> = [
            ["POST", "/webhooks", { url: "http://127.0.0.1:9/" }],
            ["GET", "/webhooks", undefined],
            ["GET", `/webhooks/${id}`, undefined],
            ["PATCH", `/webhooks/${id}`, { enabled: true }],
            ["DELETE", `/webhooks/${id}`, undefined],
            ["POST", `/webhooks/${id}/rotate-secret`, undefined],
            ["POST", `/webhooks/${id}/test`, undefined],
            ["GET", `/webhooks/${id}/deliveries`, undefined],
            ["POST", `/webhooks/${id}/deliveries/${id}/retry`, undefined]
          ]
          for (const headers of [{}, { "x-client-id": "" }, { "x-client-id": "c".repeat(256) }]) {
            for (const [method, path, body] of routes) {
              const response = yield* request(method, path, { headers, ...(body === undefined ? {} : { body }) })
              assertInvalidAt(response, "/headers/x-client-id")
            }
          }
          assert.strictEqual((yield* request("GET", `/webhooks/${id}`, { headers: as(client) })).status, 200)
        })
      )

      it.effect("URLs and events are checked: 400 naming the field", () =>
        Effect.gen(function* () {
          const client = newClient()
          const bad: Array<readonly [Record<string, unknown>, string, RegExp]> = [
            [{ url: "ftp://127.0.0.1/x" }, "/body/url", /http or https/],
            [{ url: "not a url" }, "/body/url", /not an absolute URL/],
            [{ url: "http://user:pass@127.0.0.1/" }, "/body/url", /user name or password/],
            [{ url: `http://127.0.0.1/${"a".repeat(2048)}` }, "/body/url", /2048/],
            [{ url: "http://no-such-host.invalid/" }, "/body/url", /does not resolve/],
            [{ url: "http://127.0.0.1/", events: ["formula.eaten"] }, "/body/events/0", /./],
            [{ url: "http://127.0.0.1/", events: [] }, "/body/events", /./],
            [{ url: "http://127.0.0.1/", description: "a\u0000b" }, "/body/description", /NUL/],
            [{}, "/body/url", /required/]
          ]
          for (const [body, path, message] of bad) {
            assert.match(assertInvalidAt(yield* register(client, body), path), message, JSON.stringify(body))
          }
          assert.deepStrictEqual((yield* request("GET", "/webhooks", { headers: as(client) })).json, { items: [] })
          const notJson = yield* request("POST", "/webhooks", {
            headers: { ...as(client), "content-type": "text/plain" },
            body: "url=http://127.0.0.1/"
          })
          assertProblem(notJson, 415, "unsupported-media-type")
          const endpoint = yield* registered(client)
          const patched = yield* request("PATCH", `/webhooks/${endpoint.id}`, {
            headers: as(client),
            body: { url: "gopher://127.0.0.1/" }
          })
          assertInvalidAt(patched, "/body/url")
          // Stored as normalized (what the guard checked), a NUL in the path percent-encoded.
          const normalized = yield* registered(client, { url: "HTTP://127.0.0.1:80/a b/\u0000x" })
          assert.strictEqual((normalized as unknown as { url: string }).url, "http://127.0.0.1/a%20b/%00x")
          // Duplicate event names are stored once.
          const twice = yield* registered(client, { events: ["formula.created", "formula.created"] })
          assert.deepStrictEqual(twice.events, ["formula.created"])
        })
      )

      it.effect(
        "a submission with X-Client-Id writes one formula.created event and one delivery per subscribed enabled endpoint of that client, and nothing for duplicates, 400s or clients without endpoints",
        () =>
          Effect.gen(function* () {
            const client = newClient()
            const other = newClient()
            const all = yield* registered(client)
            const createdOnly = yield* registered(client, { events: ["formula.created"] })
            yield* registered(client, { events: ["formula.processed", "formula.dead_lettered"] })
            const disabled = yield* registered(client, { events: ["formula.created"] })
            yield* request("PATCH", `/webhooks/${disabled.id}`, { headers: as(client), body: { enabled: false } })
            yield* registered(other)

            const tag = uniqueTag()
            const formula = assertCreated(yield* submit(client, summerBreeze(tag)))
            const events = yield* eventsOf(formula.id)
            assert.lengthOf(events, 1, "exactly one event")
            const event = events[0]!
            assert.strictEqual(event.type, "formula.created")
            assert.strictEqual(event.client_id, client)
            assert.match(event.id, /^evt_[0-9a-f]{32}$/)
            const body = JSON.parse(event.body)
            assert.deepStrictEqual(Object.keys(body), ["type", "timestamp", "data"])
            assert.strictEqual(body.type, "formula.created")
            assert.strictEqual(body.timestamp, formula.createdAt)
            const view = yield* request("GET", `/formulas/${formula.id}`)
            assert.deepStrictEqual(body.data, view.json, "data is the formula as GET /formulas/{id} shows it")
            assert.sameMembers(
              event.deliveries.map((d) => d.endpoint_id),
              [all.id, createdOnly.id],
              "one delivery per enabled endpoint of this client subscribed to formula.created"
            )
            for (const delivery of event.deliveries) {
              assert.strictEqual(delivery.status, "pending")
              assert.strictEqual(delivery.attempt_count, 0)
              assert.strictEqual(new Date(delivery.next_attempt_at).toISOString(), formula.createdAt, "due at once")
            }
            const db = yield* sql
            const [stored] = yield* db<{ client_id: string }>`SELECT client_id FROM formulas WHERE id = ${formula.id}`
            assert.strictEqual(stored!.client_id, client)

            // A duplicate (even respelled, from the same client) and invalid submissions write no event.
            assertDuplicateOf(yield* submit(client, summerBreeze(tag)), formula.id)
            assertProblem(yield* submit(client, { name: "", materials: [] }), 400, "invalid-formula")
            assertInvalidAt(yield* submit("x".repeat(256), summerBreeze(uniqueTag())), "/headers/x-client-id")
            assert.strictEqual(yield* eventCount(client), 1)
            assert.strictEqual(yield* eventCount(other), 0, "another client's endpoints hear nothing")

            // A client without endpoints: the formula keeps its client, no event.
            const lonely = newClient()
            const quiet = assertCreated(yield* submit(lonely, summerBreeze(uniqueTag())))
            assert.lengthOf(yield* eventsOf(quiet.id), 0)
            const [kept] = yield* db<{ client_id: string }>`SELECT client_id FROM formulas WHERE id = ${quiet.id}`
            assert.strictEqual(kept!.client_id, lonely)
            // No client at all: none stored.
            const anonymous = assertCreated(yield* submit(undefined, summerBreeze(uniqueTag())))
            const [none] = yield* db<{ client_id: string | null }>`
              SELECT client_id FROM formulas WHERE id = ${anonymous.id}`
            assert.isNull(none!.client_id)
            assert.lengthOf(yield* eventsOf(anonymous.id), 0)
          })
      )

      it.effect("concurrent submissions of several clients (one group-committed batch) each get their own event", () =>
        Effect.gen(function* () {
          const clients = Array.from({ length: 6 }, newClient)
          const endpoints = yield* Effect.forEach(clients, (client) => registered(client))
          const formulas = yield* Effect.forEach(
            clients.flatMap((client) => [client, undefined, client]),
            (client) =>
              Effect.map(submit(client, summerBreeze(uniqueTag())), (r) => ({ client, body: assertCreated(r) })),
            { concurrency: "unbounded" }
          )
          for (const { client, body } of formulas) {
            const events = yield* eventsOf(body.id)
            if (client === undefined) {
              assert.lengthOf(events, 0)
              continue
            }
            assert.lengthOf(events, 1)
            assert.deepStrictEqual(
              events[0]!.deliveries.map((d) => d.endpoint_id),
              [endpoints[clients.indexOf(client)]!.id]
            )
          }
        })
      )

      if (database.name === "postgres") {
        it.effect(
          "an endpoint deleted while a submission writes its delivery: the submission still succeeds, without that delivery",
          () =>
            Effect.gen(function* () {
              const client = newClient()
              const endpoint = yield* registered(client, { events: ["formula.created"] })
              const db = yield* sql
              const deleting = yield* Deferred.make<void>()
              // Outside the deleting transaction (forked before it): waits until the submission waits on its lock
              // (pg_stat_activity shows the statement's first 1024 bytes: its opening is what can be matched).
              const submissionWaits = yield* Effect.forkChild(
                Effect.gen(function* () {
                  yield* Deferred.await(deleting)
                  while (true) {
                    const waiting = yield* db`
                      SELECT 1 FROM pg_stat_activity
                       WHERE datname = current_database() AND wait_event_type = 'Lock'
                         AND query LIKE '%WITH input AS%'`
                    if (waiting.length > 0) return
                    yield* Effect.sleep("10 millis")
                  }
                })
              )
              const submitting = yield* db.withTransaction(
                Effect.gen(function* () {
                  yield* db`DELETE FROM webhook_endpoints WHERE id = ${endpoint.id}`
                  const fiber = yield* Effect.forkChild(submit(client, summerBreeze(uniqueTag())))
                  yield* Deferred.succeed(deleting, undefined)
                  yield* Fiber.join(submissionWaits)
                  return fiber
                })
              )
              const formula = assertCreated(yield* Fiber.join(submitting))
              assert.lengthOf(yield* eventsOf(formula.id), 0, "no endpoint left, so no event")
            })
        )
      }

      it.effect("the test event: one webhook.test delivery to that endpoint, whatever it subscribed to", () =>
        Effect.gen(function* () {
          const client = newClient()
          const endpoint = yield* registered(client, { events: ["formula.dead_lettered"] })
          const sibling = yield* registered(client)
          const sent = yield* request("POST", `/webhooks/${endpoint.id}/test`, { headers: as(client) })
          assert.strictEqual(sent.status, 202, sent.text)
          assert.match(sent.json.eventId, /^evt_[0-9a-f]{32}$/)
          const db = yield* sql
          const [event] =
            yield* db<EventRow>`SELECT id, client_id, type, body FROM webhook_events WHERE id = ${sent.json.eventId}`
          assert.strictEqual(event!.type, "webhook.test")
          const body = JSON.parse(event!.body)
          assert.deepStrictEqual(Object.keys(body), ["type", "timestamp", "data"])
          assert.deepStrictEqual(body.data, { endpointId: endpoint.id })
          const page = yield* request("GET", `/webhooks/${endpoint.id}/deliveries`, { headers: as(client) })
          assert.lengthOf(page.json.items, 1)
          assert.deepInclude(page.json.items[0], {
            eventId: sent.json.eventId,
            type: "webhook.test",
            status: "pending",
            attempts: [],
            retryInSeconds: 0
          })
          const siblings = yield* request("GET", `/webhooks/${sibling.id}/deliveries`, { headers: as(client) })
          assert.lengthOf(siblings.json.items, 0, "only the endpoint tested")
        })
      )

      it.effect(
        "deliveries: newest first, filtered by status, paged by cursor, with attempts and retryInSeconds; a failed one retried by hand",
        () =>
          Effect.gen(function* () {
            const client = newClient()
            const endpoint = yield* registered(client)
            const path = `/webhooks/${endpoint.id}/deliveries`
            const eventIds: Array<string> = []
            for (let i = 0; i < 3; i++) {
              eventIds.push(
                (yield* request("POST", `/webhooks/${endpoint.id}/test`, { headers: as(client) })).json.eventId
              )
            }
            const db = yield* sql
            const idOf = (eventId: string) =>
              Effect.map(
                db<{ id: string }>`SELECT id::text AS id FROM webhook_deliveries WHERE event_id = ${eventId}`,
                (rows) => rows[0]!.id
              )
            const [failed, succeeded, waiting] = [
              yield* idOf(eventIds[0]!),
              yield* idOf(eventIds[1]!),
              yield* idOf(eventIds[2]!)
            ]
            // As the dispatcher leaves them: one failed after two attempts, one succeeded, one waiting 5 minutes.
            yield* db`UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, attempt_count = 2
                       WHERE id = ${failed}`
            yield* db`INSERT INTO webhook_attempts (delivery_id, number, at, duration_ms, status, error, response)
                      VALUES (${failed}, 1, '2026-12-01T02:19:49.402Z', 87, 503, NULL, 'busy'),
                             (${failed}, 2, '2026-12-01T02:19:54.611Z', 15000, NULL, 'timed out after 15 s', NULL)`
            yield* db`UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL, attempt_count = 1
                       WHERE id = ${succeeded}`
            yield* db`INSERT INTO webhook_attempts (delivery_id, number, at, duration_ms, status)
                      VALUES (${succeeded}, 1, '2026-12-01T02:20:00.000Z', 12, 204)`
            yield* db`UPDATE webhook_deliveries SET next_attempt_at = now() + interval '300 seconds', attempt_count = 1
                       WHERE id = ${waiting}`

            const all = yield* request("GET", path, { headers: as(client) })
            assert.strictEqual(all.status, 200, all.text)
            assert.deepStrictEqual(
              all.json.items.map((item: { id: string }) => item.id),
              [waiting, succeeded, failed],
              "newest first"
            )
            assert.isNull(all.json.nextCursor)
            const pending = all.json.items[0]
            assert.strictEqual(pending.status, "pending")
            assert.isString(pending.nextAttemptAt)
            assert.isAtLeast(pending.retryInSeconds, 200)
            assert.isAtMost(pending.retryInSeconds, 300)

            const failedOnly = yield* request("GET", `${path}?status=failed`, { headers: as(client) })
            assert.lengthOf(failedOnly.json.items, 1)
            assert.deepStrictEqual(failedOnly.json.items[0], {
              id: failed,
              eventId: eventIds[0],
              type: "webhook.test",
              status: "failed",
              createdAt: all.json.items[2].createdAt,
              attempts: [
                { at: "2026-12-01T02:19:49.402Z", durationMs: 87, status: 503 },
                { at: "2026-12-01T02:19:54.611Z", durationMs: 15000, error: "timed out after 15 s" }
              ],
              nextAttemptAt: null,
              retryInSeconds: null
            })
            const succeededOnly = yield* request("GET", `${path}?status=succeeded`, { headers: as(client) })
            assert.deepStrictEqual(
              succeededOnly.json.items.map((item: { id: string }) => item.id),
              [succeeded]
            )

            const first = yield* request("GET", `${path}?limit=2`, { headers: as(client) })
            assert.lengthOf(first.json.items, 2)
            assert.isString(first.json.nextCursor)
            const second = yield* request("GET", `${path}?limit=2&cursor=${first.json.nextCursor}`, {
              headers: as(client)
            })
            assert.deepStrictEqual(
              second.json.items.map((item: { id: string }) => item.id),
              [failed]
            )
            assert.isNull(second.json.nextCursor)
            assertInvalidAt(yield* request("GET", `${path}?status=lost`, { headers: as(client) }), "/query/status")
            assertInvalidAt(yield* request("GET", `${path}?cursor=abc`, { headers: as(client) }), "/query/cursor")
            assertInvalidAt(yield* request("GET", `${path}?limit=0`, { headers: as(client) }), "/query/limit")

            // Retry by hand: only a failed delivery; it is pending again, due now, its attempts kept.
            const retryPath = (id: string) => `/webhooks/${endpoint.id}/deliveries/${id}/retry`
            const retried = yield* request("POST", retryPath(failed), { headers: as(client) })
            assert.strictEqual(retried.status, 202, retried.text)
            const after = yield* request("GET", `${path}?status=pending`, { headers: as(client) })
            const again = after.json.items.find((item: { id: string }) => item.id === failed)
            assert.isDefined(again, "pending again")
            assert.lengthOf(again.attempts, 2, "attempt history kept")
            assert.strictEqual(again.retryInSeconds, 0, "due now")
            const [row] = yield* db<{ attempt_count: number }>`
              SELECT attempt_count FROM webhook_deliveries WHERE id = ${failed}`
            assert.strictEqual(row!.attempt_count, 2)

            const conflict = yield* request("POST", retryPath(failed), { headers: as(client) })
            assertProblem(conflict, 409, "webhook-delivery-not-failed")
            assert.strictEqual(conflict.json.deliveryStatus, "pending")
            assertProblem(yield* request("POST", retryPath(succeeded), { headers: as(client) }), 409)
            assertProblem(
              yield* request("POST", retryPath("01a22f66-b2cb-7d20-a6f3-0c1d2e3f4a5b"), { headers: as(client) }),
              404,
              "webhook-delivery-not-found"
            )
          })
      )
    })

    // A server of its own: nothing has woken its dispatcher signal before the test does.
    const quietDb = database.layer()
    const quietServer = testServer(quietDb, { runtime: { webhookAllowPrivateNetworks: true, webhooks: false } }).pipe(
      Layer.provideMerge(quietDb)
    )
    layer(quietServer, { excludeTestServices: true })((it) => {
      it.effect(
        "the dispatcher is woken after a commit that wrote deliveries: a submission, a test event, a retry",
        () =>
          Effect.gen(function* () {
            const signal = yield* DeliverySignal
            /** Waits for the next wake-up; fails (rather than hanging the suite) if none comes. */
            const woken = (what: string) =>
              Effect.gen(function* () {
                const fiber = yield* Effect.forkChild(signal.waitForWake)
                return Fiber.join(fiber).pipe(
                  Effect.timeoutOrElse({
                    duration: "10 seconds",
                    orElse: () => Effect.die(new Error(`no wake-up after ${what}`))
                  })
                )
              })
            const client = newClient()
            const endpoint = yield* registered(client)
            // Registering writes no delivery: whoever waits is still waiting after a few hand-offs.
            const waiting = yield* Effect.forkChild(signal.waitForWake)
            yield* Effect.yieldNow
            yield* Effect.yieldNow
            assert.isUndefined(waiting.pollUnsafe(), "no wake-up without deliveries")

            assertCreated(yield* submit(client, summerBreeze(uniqueTag())))
            yield* Fiber.join(waiting).pipe(
              Effect.timeoutOrElse({
                duration: "10 seconds",
                orElse: () => Effect.die(new Error("no wake-up after a submission with a delivery"))
              })
            )

            const afterTest = yield* woken("a test event")
            assert.strictEqual(
              (yield* request("POST", `/webhooks/${endpoint.id}/test`, { headers: as(client) })).status,
              202
            )
            yield* afterTest

            const db = yield* sql
            const [delivery] = yield* db<{ id: string }>`
              UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL
               WHERE id = (SELECT id FROM webhook_deliveries WHERE endpoint_id = ${endpoint.id} LIMIT 1)
              RETURNING id::text AS id`
            const afterRetry = yield* woken("a retry")
            const retried = yield* request("POST", `/webhooks/${endpoint.id}/deliveries/${delivery!.id}/retry`, {
              headers: as(client)
            })
            assert.strictEqual(retried.status, 202)
            yield* afterRetry
          })
      )
    })

    // The SSRF guard at registration, as a deployment runs it (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false).
    layer(testServer(database.layer(), { runtime: { webhookAllowPrivateNetworks: false } }), {
      excludeTestServices: true
    })((it) => {
      it.effect("a URL whose host is or resolves to an internal address is refused, naming host, address and why", () =>
        Effect.gen(function* () {
          const client = newClient()
          const refused: Array<readonly [string, string, string]> = [
            ["http://127.0.0.1:8080/hook", "127.0.0.1", "loopback"],
            ["http://localhost/hook", "localhost", "loopback"],
            ["http://[::1]/hook", "::1", "loopback"],
            ["http://10.1.2.3/", "10.1.2.3", "private (RFC 1918)"],
            ["http://192.168.0.10/", "192.168.0.10", "private (RFC 1918)"],
            ["http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"],
            ["http://100.64.0.1/", "100.64.0.1", "carrier-grade NAT"],
            ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1", "loopback (IPv4-mapped form of 127.0.0.1)"],
            ["http://2130706433/", "127.0.0.1", "loopback"],
            ["http://0.0.0.0/", "0.0.0.0", "unspecified"]
          ]
          for (const [url, address, reason] of refused) {
            const message = assertInvalidAt(yield* register(client, { url }), "/body/url")
            assert.include(message, address, url)
            assert.include(message, reason, url)
          }
          // A public address literal needs no lookup: accepted; changing it to a private one is refused.
          const accepted = yield* register(client, { url: "https://8.8.8.8/hook" })
          assert.strictEqual(accepted.status, 201, accepted.text)
          const patched = yield* request("PATCH", `/webhooks/${accepted.json.id}`, {
            headers: as(client),
            body: { url: "http://10.0.0.1/" }
          })
          assert.include(assertInvalidAt(patched, "/body/url"), "10.0.0.1")
          const kept = yield* request("GET", `/webhooks/${accepted.json.id}`, { headers: as(client) })
          assert.strictEqual(kept.json.url, "https://8.8.8.8/hook")
        })
      )
    })
  })
}
