/**
 * The access log (ResponseMiddleware.ts, AccessLog.ts), on every test
 * database: one info line per request, through Effect's logger, with the
 * method, the path (no query string), the status, the duration and the
 * request id — POST /formulas (the hot path, a plain router route) and
 * answers no route gave included. Lines are captured by a test Logger.
 * ACCESS_LOG=false, or a log level above info, writes none.
 */
import { assert, describe, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, References } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { singleMaterial, uniqueTag } from "../support/Formulas.ts"
import { request, testServer, type TestServerOptions } from "../support/TestServer.ts"

interface Line {
  readonly level: string
  readonly message: unknown
  readonly annotations: Readonly<Record<string, unknown>>
}

/** A logger that keeps every line, and the lines it kept. */
const capture = () => {
  const lines: Array<Line> = []
  const logger = Logger.make<unknown, void>(({ fiber, logLevel, message }) => {
    lines.push({ level: logLevel, message, annotations: fiber.getRef(References.CurrentLogAnnotations) })
  })
  return { lines, layer: Logger.layer([logger]) }
}

const server = (
  database: (typeof testDatabases)[number],
  options: TestServerOptions,
  captured: ReturnType<typeof capture>,
  settings: Layer.Layer<never> = Layer.empty
) => testServer(database.layer(), options).pipe(Layer.provide(captured.layer), Layer.provide(settings))

/** The access log lines of the request that sent X-Request-Id `id`. */
const linesOf = (lines: ReadonlyArray<Line>, id: string) => lines.filter((line) => line.annotations.requestId === id)

for (const database of testDatabases) {
  describe(`access log on ${database.name}`, () => {
    const on = capture()
    layer(server(database, { accessLog: true }, on), { excludeTestServices: true })((it) => {
      it.effect("one info line per request: method, path without query, status, duration, request id", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const formula = singleMaterial(tag)
          const requests = [
            { id: `${tag}-created`, method: "POST", path: "/formulas", body: formula, status: 201 },
            { id: `${tag}-duplicate`, method: "POST", path: "/formulas", body: formula, status: 409 },
            { id: `${tag}-invalid`, method: "POST", path: "/formulas", body: { name: "" }, status: 400 },
            { id: `${tag}-list`, method: "GET", path: "/formulas?limit=1", status: 200 },
            { id: `${tag}-missing`, method: "GET", path: "/nothing-here?x=1", status: 404 },
            { id: `${tag}-method`, method: "PUT", path: "/formulas", status: 405 }
          ]
          for (const sent of requests) {
            const response = yield* request(sent.method, sent.path, {
              body: sent.body,
              headers: { "x-request-id": sent.id }
            })
            assert.strictEqual(response.status, sent.status)
            // Written before the response: it is there as soon as the answer is.
            const lines = linesOf(on.lines, sent.id)
            assert.strictEqual(lines.length, 1, `one line for ${sent.method} ${sent.path}`)
            const line = lines[0]!
            assert.strictEqual(line.level, "Info")
            const { durationMs, ...fields } = line.annotations
            assert.deepStrictEqual(fields, {
              method: sent.method,
              path: sent.path.split("?")[0],
              status: sent.status,
              requestId: sent.id
            })
            assert.isNumber(durationMs)
            assert.isAtLeast(durationMs as number, 0)
          }
        })
      )

      it.effect("a request without an id is logged under the id its response carries", () =>
        Effect.gen(function* () {
          const response = yield* request("GET", "/health")
          const id = response.headers.get("x-request-id")!
          assert.lengthOf(linesOf(on.lines, id), 1)
        })
      )
    })

    const off = capture()
    const offSettings = ConfigProvider.layer(ConfigProvider.fromUnknown({ ACCESS_LOG: "false" }))
    layer(server(database, { accessLog: "ACCESS_LOG" }, off, offSettings), { excludeTestServices: true })((it) => {
      it.effect("ACCESS_LOG=false writes no line", () =>
        Effect.gen(function* () {
          assert.strictEqual((yield* request("GET", "/health")).status, 200)
          assert.strictEqual((yield* request("GET", "/nothing-here")).status, 404)
          assert.deepStrictEqual(
            off.lines.filter((line) => line.annotations.requestId !== undefined),
            []
          )
        })
      )
    })

    const quiet = capture()
    const warnOnly = Layer.succeed(References.MinimumLogLevel, "Warn")
    layer(server(database, { accessLog: true }, quiet, warnOnly), { excludeTestServices: true })((it) => {
      it.effect("a log level above info writes no line", () =>
        Effect.gen(function* () {
          assert.strictEqual((yield* request("GET", "/health")).status, 200)
          assert.deepStrictEqual(
            quiet.lines.filter((line) => line.annotations.requestId !== undefined),
            []
          )
        })
      )
    })
  })
}
