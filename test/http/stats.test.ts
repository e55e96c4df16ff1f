/**
 * The statistics over HTTP on both databases: real submissions counted
 * (created from the formulas, duplicates and invalid 400s from the in-memory
 * counters once flushed), every problem of a query listed with its JSON
 * Pointer path, ranges bounded, and the materials' top-N validated.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { assertProblem, postFormula, postText, singleMaterial, uniqueTag } from "../support/Formulas.ts"
import { request, testServer } from "../support/TestServer.ts"

const totals = (json: any) =>
  json.buckets.reduce(
    (sum: any, bucket: any) => ({
      created: sum.created + bucket.created,
      duplicate: sum.duplicate + bucket.duplicate,
      invalid: sum.invalid + bucket.invalid
    }),
    { created: 0, duplicate: 0, invalid: 0 }
  )

const paths = (json: any) => json.errors.map((error: { path: string }) => error.path)

for (const database of testDatabases) {
  describe(`GET /stats on ${database.name}`, () => {
    layer(testServer(database.layer(), { runtime: { statsFlushInterval: "20 millis" } }), {
      excludeTestServices: true
    })((it) => {
      it.effect("counts real submissions: created, duplicate 409s and invalid 400s (after a flush)", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          assert.strictEqual((yield* postFormula(singleMaterial(tag))).status, 201)
          assert.strictEqual((yield* postFormula(singleMaterial(tag + "b"))).status, 201)
          assert.strictEqual((yield* postFormula(singleMaterial(tag))).status, 409)
          assert.strictEqual((yield* postFormula({ name: "", materials: [] })).status, 400)
          assert.strictEqual((yield* postText("{ not json")).status, 400)
          let seen = { created: 0, duplicate: 0, invalid: 0 }
          for (let i = 0; i < 300; i++) {
            const response = yield* request("GET", "/stats/submissions?granularity=day")
            assert.strictEqual(response.status, 200, response.text)
            seen = totals(response.json)
            if (seen.duplicate === 1 && seen.invalid === 2) break
            yield* Effect.sleep("20 millis")
          }
          assert.deepStrictEqual(seen, { created: 2, duplicate: 1, invalid: 2 })
        })
      )

      it.effect("defaults: hour buckets over the last 48 hours, in UTC, the current one included", () =>
        Effect.gen(function* () {
          const response = yield* request("GET", "/stats/submissions")
          assert.strictEqual(response.status, 200)
          assert.strictEqual(response.json.granularity, "hour")
          assert.strictEqual(response.json.timeZone, "UTC")
          assert.oneOf(response.json.buckets.length, [48, 49])
          assert.match(response.json.buckets[0].start, /^\d{4}-\d\d-\d\dT\d\d:00:00\+00:00$/)
        })
      )

      it.effect("lists every problem of the query with its path", () =>
        Effect.gen(function* () {
          const response = yield* request(
            "GET",
            "/stats/submissions?granularity=decade&timeZone=Mars%2FOlympus&from=2026-02-30&to=yesterday"
          )
          assertProblem(response, 400, "invalid-request")
          assert.sameMembers(paths(response.json), [
            "/query/granularity",
            "/query/timeZone",
            "/query/from",
            "/query/to"
          ])
          for (const zone of ["+01:00", "EST5EDT,M3.2.0,M11.1.0", "Europe/Nowhere", ""]) {
            const bad = yield* request("GET", `/stats/submissions?timeZone=${encodeURIComponent(zone)}`)
            assert.strictEqual(bad.status, 400, zone)
            assert.deepStrictEqual(paths(bad.json), ["/query/timeZone"], zone)
          }
          for (const time of [
            "2026-1-1",
            "2026-01-01T24:00",
            "2026-01-01Z",
            "0999-01-01",
            "2026-01-01T00:00:00+15:00"
          ]) {
            const bad = yield* request("GET", `/stats/submissions?from=${encodeURIComponent(time)}`)
            assert.strictEqual(bad.status, 400, time)
            assert.deepStrictEqual(paths(bad.json), ["/query/from"], time)
          }
        })
      )

      it.effect("bounds ranges: to after from, at most 10 000 buckets; an unencoded + in an offset is read as +", () =>
        Effect.gen(function* () {
          const backwards = yield* request("GET", "/stats/submissions?granularity=day&from=2026-02-01&to=2026-01-01")
          assertProblem(backwards, 400, "invalid-request")
          assert.deepStrictEqual(paths(backwards.json), ["/query/to"])
          const long = yield* request("GET", "/stats/submissions?granularity=minute&from=2026-01-01&to=2026-02-01")
          assertProblem(long, 400, "invalid-request")
          assert.deepStrictEqual(paths(long.json), ["/query/from"])
          const plus = yield* request(
            "GET",
            "/stats/submissions?granularity=hour&timeZone=Europe/Berlin&from=2026-03-29T00:00:00+01:00&to=2026-03-29T02:00:00Z"
          )
          assert.strictEqual(plus.status, 200, plus.text)
          assert.deepStrictEqual(
            plus.json.buckets.map((bucket: { start: string }) => bucket.start),
            ["2026-03-29T00:00:00+01:00", "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]
          )
        })
      )

      it.effect("GET /stats/materials: top 1–100, in plain digits", () =>
        Effect.gen(function* () {
          const ok = yield* request("GET", "/stats/materials?top=1")
          assert.strictEqual(ok.status, 200)
          assert.isAtMost(ok.json.materials.length, 1)
          for (const top of ["0", "101", "1e1", "x"]) {
            const bad = yield* request("GET", `/stats/materials?top=${top}`)
            assertProblem(bad, 400, "invalid-request")
            assert.deepStrictEqual(paths(bad.json), ["/query/top"], top)
          }
        })
      )
    })
  })
}
