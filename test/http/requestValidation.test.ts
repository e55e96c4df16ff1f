/**
 * Request validation everywhere (DESIGN.md "Operating it", issue 9): a 400
 * lists every problem of the request, each at a JSON Pointer path that starts
 * with the part it is in (`/query/limit`, `/headers/idempotency-key`,
 * `/body/max`); query numbers are plain decimal integers; the queue's bodies
 * are read like a formula's (415, malformed-json 400, 413, a body required
 * where the contract says so). Over HTTP, on every test database.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { maxAckBodyBytes, maxBodyBytes } from "../../src/http/QueueHandlers.ts"
import { testDatabases } from "../support/Databases.ts"
import { assertProblem, singleMaterial, uniqueTag } from "../support/Formulas.ts"
import { type JsonResponse, request, send, testServer } from "../support/TestServer.ts"

/** An invalid-request 400 whose problems are at exactly `paths`, in order. */
const assertInvalidAt = (response: JsonResponse, paths: ReadonlyArray<string>) => {
  assertProblem(response, 400, "invalid-request")
  assert.deepStrictEqual(
    response.json.errors.map((error: { path: string }) => error.path),
    paths,
    JSON.stringify(response.json.errors)
  )
  for (const error of response.json.errors) assert.isAbove(error.message.length, 0)
}

const postJson = (path: string, body: string, contentType = "application/json") =>
  send(path, { method: "POST", headers: { "content-type": contentType }, body })

const queueBodies = ["/queue/receive", "/queue/ack", "/queue/nack", "/queue/extend"] as const

for (const database of testDatabases) {
  describe(`request validation on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect.each(["0x10", "1e1", "%2B5", "%205", "5%20", "5.0", "05", "-5", "0", "101", "abc", "", "1e400"])(
        "GET /formulas?limit=%s is a 400 at /query/limit — protects query numbers as plain decimal integers",
        (limit) =>
          Effect.gen(function* () {
            assertInvalidAt(yield* request("GET", `/formulas?limit=${limit}`), ["/query/limit"])
          })
      )

      it.effect("GET /formulas?limit=1 and limit=100 are answered — protects the valid spellings", () =>
        Effect.gen(function* () {
          for (const limit of ["1", "100", "20"]) {
            assert.strictEqual((yield* request("GET", `/formulas?limit=${limit}`)).status, 200)
          }
        })
      )

      it.effect(
        "every problem of a query is listed, each at /query/… — protects the listing of all problems (the cursor among them)",
        () =>
          Effect.gen(function* () {
            assertInvalidAt(yield* request("GET", "/formulas?cursor=garbage"), ["/query/cursor"])
            assertInvalidAt(yield* request("GET", "/formulas?limit=0x10&cursor=garbage"), [
              "/query/limit",
              "/query/cursor"
            ])
          })
      )

      it.effect("a bad Idempotency-Key is a 400 at /headers/idempotency-key", () =>
        Effect.gen(function* () {
          const response = yield* request("POST", "/formulas", {
            body: singleMaterial(uniqueTag()),
            headers: { "idempotency-key": "k".repeat(256) }
          })
          assertInvalidAt(response, ["/headers/idempotency-key"])
        })
      )

      it.effect("every invalid field of a queue body is listed at /body/… — protects listing them all", () =>
        Effect.gen(function* () {
          assertInvalidAt(yield* postJson("/queue/receive", '{"max":0,"visibilityTimeoutMs":"soon","waitMs":-1}'), [
            "/body/max",
            "/body/visibilityTimeoutMs",
            "/body/waitMs"
          ])
          assertInvalidAt(yield* postJson("/queue/ack", '{"receipt":42}'), ["/body/receipt"])
          assertInvalidAt(yield* postJson("/queue/nack", '{"receipt":"","delayMs":-1,"error":7}'), [
            "/body/receipt",
            "/body/delayMs",
            "/body/error"
          ])
          assertInvalidAt(yield* postJson("/queue/extend", "{}"), ["/body/receipt", "/body/visibilityTimeoutMs"])
          assertInvalidAt(yield* postJson("/queue/extend", "[]"), ["/body"])
        })
      )

      it.effect("ack, nack and extend require a body; receive's is optional — protects the documented bodies", () =>
        Effect.gen(function* () {
          for (const path of ["/queue/ack", "/queue/nack", "/queue/extend"]) {
            assertInvalidAt(yield* send(path, { method: "POST" }), ["/body"])
            assertInvalidAt(yield* postJson(path, ""), ["/body"])
            assertInvalidAt(yield* postJson(path, "null"), ["/body"])
          }
          for (const response of [
            yield* send("/queue/receive", { method: "POST" }),
            yield* postJson("/queue/receive", ""),
            yield* postJson("/queue/receive", "null"),
            yield* postJson("/queue/receive", "{}")
          ]) {
            assert.strictEqual(response.status, 200, response.text)
            assert.isArray(response.json.messages)
          }
        })
      )

      it.effect.each(queueBodies)(
        "POST %s with a content type other than JSON is a 415 problem, as for POST /formulas",
        (path) =>
          Effect.gen(function* () {
            for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]) {
              assertProblem(yield* postJson(path, '{"receipt":"r"}', contentType), 415, "unsupported-media-type")
            }
          })
      )

      it.effect.each(queueBodies)("POST %s with malformed JSON is a 400 malformed-json problem", (path) =>
        Effect.gen(function* () {
          for (const text of ["{", '{"receipt":"r",}', "'r'", new Uint8Array([0x7b, 0xff, 0x7d])]) {
            const response = yield* send(path, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: text
            })
            assertProblem(response, 400, "malformed-json")
          }
        })
      )

      it.effect.each(queueBodies)(
        "POST %s with a body over its limit (128 KiB; an ack's 256 KiB) is a 413 problem",
        (path) =>
          Effect.gen(function* () {
            const limit = path === "/queue/ack" ? maxAckBodyBytes : maxBodyBytes
            const padded = `{"receipt":"r"${" ".repeat(limit)}}`
            assertProblem(yield* postJson(path, padded), 413, "payload-too-large")
          })
      )
    })
  })
}
