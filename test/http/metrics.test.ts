/**
 * `/metrics` counts what happened, once — on every test database. The hot
 * path's counters are plain numbers read when the metrics are scraped
 * (src/observability/Counters.ts); these tests protect that each outcome is
 * counted exactly once, and that an Idempotency-Key replay, a reused key or
 * a key in flight is not counted as a submission (it submitted nothing);
 * and that answers no route gave (404, 405) are counted like any other.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { request, testServer } from "../support/TestServer.ts"

/** Every sample of the Prometheus text, by name and labels as written (`name{a="b"}`). */
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

const delta = (before: Map<string, number>, after: Map<string, number>, sample: string) =>
  (after.get(sample) ?? 0) - (before.get(sample) ?? 0)

for (const database of testDatabases) {
  describe(`metrics on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect(
        "submissions are counted once by outcome; replays and reused keys are not submissions — protects the hot path's counters",
        () =>
          Effect.gen(function* () {
            const first = summerBreeze(uniqueTag())
            const keyed = summerBreeze(uniqueTag())
            const key = { "idempotency-key": `metrics-${uniqueTag()}` }
            const before = yield* scrape
            assert.strictEqual((yield* request("POST", "/formulas", { body: first })).status, 201)
            assert.strictEqual((yield* request("POST", "/formulas", { body: first })).status, 409)
            assert.strictEqual((yield* request("POST", "/formulas", { body: { name: "" } })).status, 400)
            assert.strictEqual((yield* request("POST", "/formulas", { body: keyed, headers: key })).status, 201)
            const replay = yield* request("POST", "/formulas", { body: keyed, headers: key })
            assert.strictEqual(replay.headers.get("idempotent-replayed"), "true")
            assert.strictEqual((yield* request("POST", "/formulas", { body: first, headers: key })).status, 422)
            const after = yield* scrape

            const submissions = (outcome: string) =>
              delta(before, after, `formula_submissions_total{outcome="${outcome}"}`)
            assert.strictEqual(submissions("created"), 2, "the new make-up and the keyed one")
            assert.strictEqual(submissions("duplicate"), 1, "the repeat, not the replay nor the reused key")
            assert.strictEqual(submissions("invalid"), 1)
            assert.strictEqual(delta(before, after, "fingerprint_cache_hits_total"), 1)
            const responses = (status: number) =>
              delta(before, after, `http_requests_total{method="POST",status="${status}"}`)
            assert.strictEqual(responses(201), 3, "two created, one replayed")
            assert.strictEqual(responses(409), 1)
            assert.strictEqual(responses(400), 1)
            assert.strictEqual(responses(422), 1)
          })
      )

      it.effect("404s for unknown paths and 405s for wrong methods are counted by method and status", () =>
        Effect.gen(function* () {
          const before = yield* scrape
          assert.strictEqual((yield* request("GET", `/nothing-${uniqueTag()}`)).status, 404)
          assert.strictEqual((yield* request("GET", `/nothing-${uniqueTag()}`)).status, 404)
          assert.strictEqual((yield* request("PUT", "/formulas")).status, 405)
          assert.strictEqual((yield* request("DELETE", "/health")).status, 405)
          const after = yield* scrape
          const responses = (method: string, status: number) =>
            delta(before, after, `http_requests_total{method="${method}",status="${status}"}`)
          assert.strictEqual(responses("GET", 404), 2)
          assert.strictEqual(responses("PUT", 405), 1)
          assert.strictEqual(responses("DELETE", 405), 1)
        })
      )
    })
  })
}
