/**
 * Idempotency-Key over HTTP, on every database. Protects: a retried request
 * gets the first outcome back (not a second formula, not a 409 it never
 * saw); a key cannot be reused for another body; outcomes that are not
 * final (400) are not remembered; keys are per client.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { request, testServer } from "../support/TestServer.ts"

let counter = 0
const uniqueFormula = () => {
  const n = `${Date.now()}-${counter++}`
  return { name: "Keyed", materials: [{ name: `Iris ${n}`, concentration: 12.5 }] }
}
const post = (body: unknown, headers: Record<string, string>) => request("POST", "/formulas", { body, headers })

for (const database of testDatabases) {
  describe(`Idempotency-Key on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect("a repeated key with the same body replays the first 201, status and body", () =>
        Effect.gen(function* () {
          const formula = uniqueFormula()
          const key = { "idempotency-key": `k-${counter++}` }
          const first = yield* post(formula, key)
          assert.strictEqual(first.status, 201)
          assert.isNull(first.headers.get("idempotent-replayed"))
          const again = yield* post(formula, key)
          assert.strictEqual(again.status, 201)
          assert.strictEqual(again.headers.get("idempotent-replayed"), "true")
          assert.deepStrictEqual(again.json, first.json)
          assert.strictEqual(again.headers.get("location"), first.headers.get("location"))
        })
      )

      it.effect("the same JSON with other whitespace and key order counts as the same body", () =>
        Effect.gen(function* () {
          const formula = uniqueFormula()
          const key = { "idempotency-key": `k-${counter++}` }
          const first = yield* post(formula, key)
          const respaced = `{ "materials" : ${JSON.stringify(formula.materials)} ,\n "name": ${JSON.stringify(formula.name)} }`
          const again = yield* post(respaced, key)
          assert.strictEqual(again.status, 201)
          assert.deepStrictEqual(again.json, first.json)
        })
      )

      it.effect("a replayed duplicate answers the stored 409 as it was first sent", () =>
        Effect.gen(function* () {
          const formula = uniqueFormula()
          yield* post(formula, {})
          const key = { "idempotency-key": `k-${counter++}` }
          const first = yield* post(formula, key)
          assert.strictEqual(first.status, 409)
          assert.strictEqual(first.json.type, "urn:formula-intake:problem:duplicate-formula")
          const again = yield* post(formula, key)
          assert.strictEqual(again.status, 409)
          assert.strictEqual(again.headers.get("idempotent-replayed"), "true")
          assert.include(again.headers.get("content-type") ?? "", "application/problem+json")
          // The same body but for requestId, which names the request each answer went to.
          const { requestId: firstId, ...firstBody } = first.json
          const { requestId: againId, ...againBody } = again.json
          assert.deepStrictEqual(againBody, firstBody)
          assert.strictEqual(firstId, first.headers.get("x-request-id"))
          assert.strictEqual(againId, again.headers.get("x-request-id"))
          assert.notStrictEqual(againId, firstId)
        })
      )

      it.effect("the same key with a different body is 422 and stores nothing new", () =>
        Effect.gen(function* () {
          const key = { "idempotency-key": `k-${counter++}` }
          const first = yield* post(uniqueFormula(), key)
          assert.strictEqual(first.status, 201)
          const other = uniqueFormula()
          const reused = yield* post(other, key)
          assert.strictEqual(reused.status, 422)
          assert.strictEqual(reused.json.type, "urn:formula-intake:problem:idempotency-key-reused")
          // The other body was not stored under that key's cover: without a key it is new.
          assert.strictEqual((yield* post(other, {})).status, 201)
        })
      )

      it.effect("a 400 is not stored: the same key with a corrected body succeeds", () =>
        Effect.gen(function* () {
          const key = { "idempotency-key": `k-${counter++}` }
          const invalid = yield* post({ name: "", materials: [] }, key)
          assert.strictEqual(invalid.status, 400)
          const fixed = yield* post(uniqueFormula(), key)
          assert.strictEqual(fixed.status, 201)
          assert.isNull(fixed.headers.get("idempotent-replayed"))
        })
      )

      it.effect("keys are scoped by X-Client-Id", () =>
        Effect.gen(function* () {
          const key = `k-${counter++}`
          const a = yield* post(uniqueFormula(), { "idempotency-key": key, "x-client-id": "client-a" })
          const b = yield* post(uniqueFormula(), { "idempotency-key": key, "x-client-id": "client-b" })
          assert.strictEqual(a.status, 201)
          assert.strictEqual(b.status, 201)
          assert.notStrictEqual(a.json.id, b.json.id)
        })
      )

      it.effect("a key longer than 255 characters is a 400", () =>
        Effect.gen(function* () {
          const response = yield* post(uniqueFormula(), { "idempotency-key": "x".repeat(256) })
          assert.strictEqual(response.status, 400)
          const ok = yield* post(uniqueFormula(), { "idempotency-key": `${"y".repeat(250)}${counter++}`.slice(0, 255) })
          assert.strictEqual(ok.status, 201)
        })
      )
    })
  })
}
