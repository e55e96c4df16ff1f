/**
 * What every answer carries, on every test database: a path nothing serves
 * is a problem+json 404, a served path asked with another method a 405 whose
 * `Allow` lists the methods it serves (ResponseMiddleware.ts, RouteTable.ts);
 * every response has an `X-Request-Id` — the client's when sane, else a new
 * one — and every problem body repeats it as `requestId` (RequestId.ts).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { connect } from "node:net"
import { testDatabases } from "../support/Databases.ts"
import {
  assertCreated,
  assertDuplicateOf,
  assertInvalid,
  assertProblem,
  assertRequestId,
  singleMaterial,
  uniqueTag
} from "../support/Formulas.ts"
import { BaseUrl, request, testServer } from "../support/TestServer.ts"

/**
 * GET `path` with an `X-Request-Id` of these exact bytes, on a raw socket
 * (fetch refuses control characters and non-ASCII in headers); the answer's
 * status and X-Request-Id, or the status alone if Node refused the request.
 */
const getWithRawId = (path: string, id: Buffer) =>
  Effect.gen(function* () {
    const url = new URL(yield* BaseUrl)
    const answer = yield* Effect.callback<string>((resume) => {
      const socket = connect(Number(url.port), url.hostname)
      let received = ""
      socket.on("data", (chunk) => (received += chunk.toString("latin1")))
      socket.on("error", () => {})
      socket.on("close", () => resume(Effect.succeed(received)))
      socket.once("connect", () =>
        socket.write(
          Buffer.concat([
            Buffer.from(`GET ${path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Request-Id: `),
            id,
            Buffer.from("\r\n\r\n")
          ])
        )
      )
      return Effect.sync(() => socket.destroy())
    })
    return {
      status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]),
      requestId: /\r\nx-request-id: ([^\r]*)\r\n/i.exec(answer)?.[1]
    }
  })

/** Visible ASCII from `!` to `~`, JSON's special characters included. */
const visibleAscii = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join("")

for (const database of testDatabases) {
  describe(`requests on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect("a path nothing serves is a problem+json 404, whatever the method", () =>
        Effect.gen(function* () {
          for (const [method, path] of [
            ["GET", "/nothing-here"],
            ["POST", "/formulas/abc/deeper"],
            ["DELETE", "/queue"],
            ["GET", "/"]
          ] as const) {
            const response = yield* request(method, path)
            assertProblem(response, 404, "not-found")
            assert.isNull(response.headers.get("allow"))
            assert.include(response.json.detail, path)
          }
        })
      )

      it.effect("a served path with another method is a problem+json 405 with Allow listing its methods", () =>
        Effect.gen(function* () {
          for (const [method, path, allow] of [
            ["PUT", "/formulas", "GET, HEAD, POST"],
            ["DELETE", "/formulas?limit=3", "GET, HEAD, POST"],
            ["PATCH", "/formulas/some-id", "GET, HEAD"],
            ["POST", "/health", "GET, HEAD"],
            ["GET", "/queue/ack", "POST"],
            ["POST", "/queue/dead-letters", "DELETE, GET, HEAD"],
            ["OPTIONS", "/metrics", "GET, HEAD"]
          ] as const) {
            const response = yield* request(method, path)
            assertProblem(response, 405, "method-not-allowed")
            assert.strictEqual(response.headers.get("allow"), allow, `${method} ${path}`)
            assert.deepStrictEqual(response.json.allowed, allow.split(", "))
          }
        })
      )

      it.effect("HEAD is served wherever GET is (not a 405)", () =>
        Effect.gen(function* () {
          assert.strictEqual((yield* request("HEAD", "/health")).status, 200)
        })
      )

      it.effect("a sane X-Request-Id is echoed on the response and in a problem body", () =>
        Effect.gen(function* () {
          for (const id of ["a", "req-42", visibleAscii, "x".repeat(200), '"quoted"\\back']) {
            const response = yield* request("GET", "/nothing-here", { headers: { "x-request-id": id } })
            assertProblem(response, 404, "not-found")
            assert.strictEqual(response.headers.get("x-request-id"), id)
            assert.strictEqual(response.json.requestId, id)
          }
          const health = yield* request("GET", "/health", { headers: { "x-request-id": "health-1" } })
          assert.strictEqual(health.status, 200)
          assert.strictEqual(health.headers.get("x-request-id"), "health-1")
        })
      )

      it.effect("an absent or insane X-Request-Id is replaced by a new one, different each time", () =>
        Effect.gen(function* () {
          const insane = ["x".repeat(201), "two words", "tab\there", "a, b", " padded"]
          const seen = new Set<string>()
          for (const id of [undefined, undefined, ...insane]) {
            const response = yield* request("GET", "/nothing-here", {
              headers: id === undefined ? {} : { "x-request-id": id }
            })
            assertProblem(response, 404, "not-found")
            const sent = assertRequestId(response)
            assert.notStrictEqual(sent, id)
            assert.isFalse(seen.has(sent), `a new id each time: ${sent}`)
            seen.add(sent)
          }
          // Bytes fetch will not send: non-ASCII, DEL, other control characters.
          for (const id of [Buffer.from("caf\u00e9", "utf8"), Buffer.from("del\x7f"), Buffer.from("bell\x07")]) {
            const answer = yield* getWithRawId("/nothing-here", id)
            if (answer.status === 400) continue // Node's parser refused the header itself: no id to echo.
            assert.strictEqual(answer.status, 404)
            assert.isString(answer.requestId)
            assert.match(answer.requestId!, /^[\x21-\x7e]{1,200}$/)
            assert.isFalse(seen.has(answer.requestId!))
            seen.add(answer.requestId!)
          }
        })
      )

      it.effect("201, 409 and 400 answers of POST /formulas carry X-Request-Id; problems repeat it", () =>
        Effect.gen(function* () {
          const formula = singleMaterial(uniqueTag())
          const headers = (id: string) => ({ "x-request-id": id })
          const created = yield* request("POST", "/formulas", { body: formula, headers: headers("c-1") })
          const body = assertCreated(created)
          assert.strictEqual(created.headers.get("x-request-id"), "c-1")
          const duplicate = yield* request("POST", "/formulas", { body: formula, headers: headers("c-2") })
          assertDuplicateOf(duplicate, body.id)
          assert.strictEqual(duplicate.json.requestId, "c-2")
          const invalid = yield* request("POST", "/formulas", { body: { name: "" }, headers: headers("c-3") })
          assertInvalid(invalid)
          assert.strictEqual(invalid.json.requestId, "c-3")
          const malformed = yield* request("POST", "/formulas", { body: "{", headers: headers("c-4") })
          assertProblem(malformed, 400, "malformed-json")
          assert.strictEqual(malformed.json.requestId, "c-4")
          // An HttpApi endpoint's problems too.
          const missing = yield* request("GET", "/formulas/no-such-id", { headers: headers("c-5") })
          assertProblem(missing, 404, "formula-not-found")
          assert.strictEqual(missing.json.requestId, "c-5")
          const badQuery = yield* request("GET", "/formulas?limit=0", { headers: headers("c-6") })
          assertProblem(badQuery, 400, "invalid-request")
          assert.strictEqual(badQuery.json.requestId, "c-6")
        })
      )
    })

    layer(testServer(database.layer(), { runtime: { queue: { capacity: 1 } } }), { excludeTestServices: true })(
      (it) => {
        it.effect("a 503 (queue full) carries X-Request-Id and Retry-After; its body repeats the id", () =>
          Effect.gen(function* () {
            assertCreated(yield* request("POST", "/formulas", { body: singleMaterial(uniqueTag()) }))
            const full = yield* request("POST", "/formulas", {
              body: singleMaterial(uniqueTag()),
              headers: { "x-request-id": "full-1" }
            })
            assertProblem(full, 503, "queue-full")
            assert.strictEqual(full.json.requestId, "full-1")
            assert.match(full.headers.get("retry-after") ?? "", /^\d+$/)
          })
        )
      }
    )
  })
}
