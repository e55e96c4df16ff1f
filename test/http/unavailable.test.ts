/**
 * "Database unreachable → 503 problem+json within a bounded time, never a
 * hang; recovers by itself when the database returns" (DESIGN.md, HTTP
 * contract). The app talks to PostgreSQL through a TCP proxy the test stops
 * and starts; the app itself is never restarted.
 *
 * PostgreSQL only: the embedded PGlite lives in the process and cannot become
 * unreachable.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { postgresSchemaLayer, postgresUrl } from "../support/Databases.ts"
import { assertCreated, assertProblem, postFormula, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { TcpProxy, throughProxy } from "../support/TcpProxy.ts"
import { type JsonResponse, request, testServer } from "../support/TestServer.ts"

/** Longest we wait for any one answer: the contract says "bounded", this says "did not hang". */
const hangLimit = Duration.seconds(20)

const bounded = (method: string, path: string, options: Parameters<typeof request>[2] = {}) =>
  request(method, path, options).pipe(
    Effect.timeoutOrElse({
      duration: hangLimit,
      orElse: () =>
        Effect.die(new Error(`${method} ${path} did not answer within ${Duration.format(hangLimit)}: it hangs`))
    })
  )

const assertUnavailable = (label: string, response: JsonResponse) => {
  assert.strictEqual(response.status, 503, `${label}: ${response.status} ${response.text.slice(0, 300)}`)
  assertProblem(response, 503, "database-unavailable")
  assert.match(response.headers.get("retry-after") ?? "", /^\d+$/, `${label}: Retry-After`)
}

/** Polls /health (each poll bounded) until 200; fails if the app has not recovered within 30 s. */
const awaitHealthy = Effect.gen(function* () {
  const deadline = Date.now() + 30_000
  let last = ""
  while (Date.now() < deadline) {
    const health = yield* request("GET", "/health").pipe(
      Effect.timeoutOrElse({
        duration: Duration.seconds(2),
        orElse: () => Effect.succeed({ status: 0, text: "(no answer in 2 s)" })
      })
    )
    if (health.status === 200) return
    last = `${health.status} ${health.text.slice(0, 200)}`
    yield* Effect.sleep(Duration.millis(100))
  }
  return assert.fail(`the app did not recover by itself within 30 s; last /health: ${last}`)
})

const appThroughProxy = (url: string) => {
  const target = new URL(url)
  const schema = `test_unavailable_${process.pid}_${Date.now().toString(36)}`
  const app = Layer.unwrap(
    Effect.gen(function* () {
      const proxy = yield* TcpProxy
      return testServer(postgresSchemaLayer(throughProxy(url, proxy.port), schema))
    })
  )
  return app.pipe(Layer.provideMerge(TcpProxy.layer({ host: target.hostname, port: Number(target.port || 5432) })))
}

const url = postgresUrl
if (url === undefined) {
  describe("database unavailable", () => {
    it.skip("skipped: TEST_DATABASE_URL is not set (needs a PostgreSQL to take away; PGlite cannot become unreachable)", () => {})
  })
} else {
  describe("database unavailable (PostgreSQL behind a TCP proxy)", () => {
    layer(appThroughProxy(url), { excludeTestServices: true })((it) => {
      it.effect(
        "database gone: every database route answers 503 + Retry-After, never hangs; then recovers by itself",
        () =>
          Effect.gen(function* () {
            const proxy = yield* TcpProxy
            yield* awaitHealthy
            const existing = assertCreated(yield* postFormula(summerBreeze(uniqueTag())))
            const lost = summerBreeze(uniqueTag())

            yield* proxy.stop
            // Sequentially and then all at once: neither a cold failure nor a burst may hang.
            assertUnavailable("POST /formulas", yield* bounded("POST", "/formulas", { body: lost }))
            assertUnavailable("GET /formulas", yield* bounded("GET", "/formulas"))
            assertUnavailable("GET /formulas/{id}", yield* bounded("GET", `/formulas/${existing.id}`))
            assertUnavailable("GET /health", yield* bounded("GET", "/health"))
            const burst = yield* Effect.all(
              [
                bounded("POST", "/formulas", { body: lost }),
                bounded("GET", "/formulas"),
                bounded("GET", `/formulas/${existing.id}`),
                bounded("GET", "/health")
              ],
              { concurrency: "unbounded" }
            )
            burst.forEach((response, index) => assertUnavailable(`burst #${index}`, response))

            yield* proxy.start
            yield* awaitHealthy
            // The failed POSTs left nothing behind: the same make-up is new now.
            const created = assertCreated(yield* bounded("POST", "/formulas", { body: lost }))
            assert.strictEqual(created.name, lost.name)
            const fetched = yield* bounded("GET", `/formulas/${existing.id}`)
            assert.deepStrictEqual(fetched.json, existing)
            assert.strictEqual((yield* bounded("GET", "/formulas")).status, 200)
          }).pipe(Effect.ensuring(TcpProxy.use((proxy) => proxy.start)))
      )

      it.effect(
        "database silent (a partition: nothing refused, nothing answered): 503 in bounded time, then recovers",
        () =>
          Effect.gen(function* () {
            const proxy = yield* TcpProxy
            yield* awaitHealthy
            const existing = assertCreated(yield* postFormula(summerBreeze(uniqueTag())))
            const lost = summerBreeze(uniqueTag())

            yield* proxy.pause
            const answers = yield* Effect.all(
              [
                bounded("POST", "/formulas", { body: lost }),
                bounded("GET", "/formulas"),
                bounded("GET", `/formulas/${existing.id}`),
                bounded("GET", "/health")
              ],
              { concurrency: "unbounded" }
            )
            const labels = ["POST /formulas", "GET /formulas", "GET /formulas/{id}", "GET /health"]
            answers.forEach((response, index) => assertUnavailable(labels[index]!, response))

            yield* proxy.resume
            yield* awaitHealthy
            // Whatever became of the POST that timed out, it is settled now: stored once or not at all.
            const retried = yield* bounded("POST", "/formulas", { body: lost })
            assert.oneOf(retried.status, [201, 409], retried.text)
            const second = yield* bounded("POST", "/formulas", { body: lost })
            assert.strictEqual(second.status, 409, second.text)
            assert.deepStrictEqual((yield* bounded("GET", `/formulas/${existing.id}`)).json, existing)
          }).pipe(Effect.ensuring(TcpProxy.use((proxy) => proxy.resume)))
      )
    })
  })
}
