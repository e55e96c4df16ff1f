/**
 * The OpenAPI document tells the truth (DESIGN.md "Operating it"): every
 * operation has a summary, a description and a described tag; every request
 * body, parameter and response body has an example, and each example decodes
 * with the schema the API declares for it; the statuses listed are exactly
 * those each operation answers (no 500: a 500 is a bug, not an answer); the
 * version is package.json's. Then, on every test database, each operation is
 * called with its documented example request and must give its documented
 * success — the examples are requests the service accepts, not just
 * well-typed JSON.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Schema } from "effect"
import { HttpApi, type HttpApiEndpoint, HttpApiSchema, OpenApi } from "effect/http-api"
import packageJson from "../../package.json" with { type: "json" }
import { Api } from "../../src/http/Api.ts"
import { FormulaView } from "../../src/http/FormulasApi.ts"
import { QueueDelivery } from "../../src/http/QueueApi.ts"
import { WebhookCreated } from "../../src/http/WebhooksApi.ts"
import { testDatabases } from "../support/Databases.ts"
import { type JsonResponse, request, testServer } from "../support/TestServer.ts"

/** Why the document could not be built (an example its schema does not encode, say), if it could not. */
let buildError: unknown = undefined
const spec: OpenApi.OpenAPISpec = (() => {
  try {
    return OpenApi.fromApi(Api)
  } catch (error) {
    buildError = error
    const info = { title: "", version: "" }
    return {
      openapi: "3.1.0",
      info,
      paths: {},
      components: { schemas: {}, securitySchemes: {} },
      security: [],
      tags: []
    }
  }
})()

interface Operation {
  /** `POST /formulas`, `GET /formulas/{id}`: as the document names it. */
  readonly name: string
  readonly method: string
  readonly path: string
  readonly operation: OpenApi.OpenAPISpecOperation
  readonly endpoint: HttpApiEndpoint.Top
  /** The schemas the API declares for each status. */
  readonly schemas: ReadonlyMap<number, ReadonlyArray<Schema.Top>>
}

/** Every endpoint of the Api, named as the document names its operation. */
const endpoints: Array<string> = []
/** Every endpoint of the Api with its operation in the document. */
const operations: Array<Operation> = []
HttpApi.reflect(Api, {
  onGroup: () => {},
  onEndpoint: ({ endpoint, successes, errors }) => {
    const path = endpoint.path.replace(/:(\w+)/g, "{$1}")
    const name = `${endpoint.method} ${path}`
    endpoints.push(name)
    const operation = spec.paths[path]?.[endpoint.method.toLowerCase() as "get"]
    if (operation === undefined) return
    operations.push({
      name,
      method: endpoint.method,
      path,
      operation,
      endpoint,
      schemas: new Map([...successes, ...errors])
    })
  }
})

/**
 * Every status each operation answers (DESIGN.md "HTTP contract"), and no
 * other: a status added to an endpoint, or one it can newly answer, is added
 * here on purpose. The 503s are the database's (and the queue's, for a
 * submission); the queue's endpoints do not touch the database. Unknown paths
 * and wrong methods are the router's, not any operation's.
 */
const contract: Record<string, ReadonlyArray<number>> = {
  "POST /formulas": [201, 400, 409, 413, 415, 422, 503],
  "GET /formulas": [200, 400, 503],
  "GET /formulas/{id}": [200, 404, 503],
  "POST /queue/receive": [200, 400, 413, 415],
  "POST /queue/ack": [204, 400, 409, 413, 415, 503],
  "POST /queue/nack": [204, 400, 409, 413, 415],
  "POST /queue/extend": [204, 400, 409, 413, 415],
  "GET /queue/stats": [200],
  "GET /queue/dead-letters": [200],
  "POST /queue/dead-letters/redrive": [200],
  "DELETE /queue/dead-letters": [200],
  "POST /webhooks": [201, 400, 413, 415, 503],
  "GET /webhooks": [200, 400, 503],
  "GET /webhooks/{id}": [200, 400, 404, 503],
  "PATCH /webhooks/{id}": [200, 400, 404, 413, 415, 503],
  "DELETE /webhooks/{id}": [204, 400, 404, 503],
  "POST /webhooks/{id}/rotate-secret": [200, 400, 404, 503],
  "POST /webhooks/{id}/test": [202, 400, 404, 503],
  "GET /webhooks/{id}/deliveries": [200, 400, 404, 503],
  "POST /webhooks/{id}/deliveries/{deliveryId}/retry": [202, 400, 404, 409, 503],
  "GET /stats/submissions": [200, 400, 503],
  "GET /stats/materials": [200, 400, 503],
  "GET /health": [200, 503],
  "GET /metrics": [200],
  "GET /dashboard": [200]
}

/** Why `value` does not decode with any of `schemas`, or undefined if it does. */
const rejection = (schemas: ReadonlyArray<Schema.Top>, value: unknown): string | undefined => {
  const schema = (schemas.length === 1 ? schemas[0]! : Schema.Union(schemas)) as unknown as Schema.Decoder<unknown>
  try {
    Schema.decodeUnknownSync(schema)(value, { onExcessProperty: "error" })
    return undefined
  } catch (error) {
    return String(error)
  }
}

/** The body schema of a response schema (`WithHeaders` wraps it with its headers). */
const bodyOf = (schema: Schema.Top): Schema.Top => (HttpApiSchema.isWithHeaders(schema) ? schema.schema : schema)

/** A parameter's example, as `documented` writes it: on its schema. */
const parameterExample = (parameter: OpenApi.OpenAPISpecParameter): unknown =>
  (parameter.schema as { examples?: ReadonlyArray<unknown> }).examples?.[0]

type MediaType = { readonly examples?: Record<string, { readonly value: unknown }> }

const examplesOf = (mediaType: MediaType): Array<unknown> =>
  Object.values(mediaType.examples ?? {}).map((example) => example.value)

const successStatus = (operation: Operation): number =>
  Math.min(...Object.keys(operation.operation.responses).map(Number))

describe("the OpenAPI document", () => {
  it("is built: every example encodes with its schema, and names a status and parameter its endpoint has", () => {
    if (buildError !== undefined) assert.fail(String(buildError))
  })

  it("describes every operation of the Api, and nothing else", () => {
    const documented = Object.entries(spec.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)
    )
    assert.sameMembers(documented, endpoints)
    assert.sameMembers(Object.keys(contract), documented, "the status table below covers every operation")
  })

  it("carries the package version", () => {
    assert.strictEqual(spec.info.version, packageJson.version)
  })

  it("gives every operation a summary, a description and a described tag", () => {
    const tags = new Map(spec.tags.map((tag) => [tag.name, tag]))
    for (const { name, operation } of operations) {
      assert.isNotEmpty(operation.summary ?? "", `${name} has a summary`)
      assert.isNotEmpty(operation.description ?? "", `${name} has a description`)
      assert.lengthOf(operation.tags ?? [], 1, `${name} has one tag`)
      const tag = tags.get(operation.tags![0]!)
      assert.isDefined(tag, `${name}'s tag ${operation.tags![0]} is listed`)
      assert.match(tag!.name, /^[A-Z]/, `tag ${tag!.name} is a name for people`)
      assert.isNotEmpty(tag!.description ?? "", `tag ${tag!.name} has a description`)
    }
  })

  it("lists no 500 and no default response: a 500 is a bug, not an answer", () => {
    for (const { name, operation } of operations) {
      const listed = Object.keys(operation.responses)
      assert.notInclude(listed, "500", `${name} lists a 500`)
      assert.notInclude(listed, "default", `${name} lists a default response`)
    }
  })

  it("lists exactly the statuses each operation answers", () => {
    for (const { name, operation } of operations) {
      assert.deepStrictEqual(
        Object.keys(operation.responses).map(Number).sort(),
        [...(contract[name] ?? [])].sort(),
        `statuses of ${name}`
      )
    }
  })

  it("has an example of every request body, each decoding with the endpoint's payload schema", () => {
    for (const { name, operation, endpoint } of operations) {
      if (operation.requestBody === undefined) continue
      for (const [contentType, mediaType] of Object.entries(operation.requestBody.content)) {
        const examples = examplesOf(mediaType as MediaType)
        assert.isNotEmpty(examples, `${name} has an example ${contentType} request body`)
        const schemas = endpoint.payload.get(contentType)?.schemas ?? []
        assert.isNotEmpty(schemas, `${name} declares a ${contentType} payload`)
        for (const example of examples) {
          assert.isUndefined(rejection(schemas, example), `${name}'s example request ${JSON.stringify(example)}`)
        }
      }
    }
  })

  it("has an example of every parameter, decoding with the endpoint's schema for it", () => {
    for (const { name, operation, endpoint } of operations) {
      const schemas = { path: endpoint.params, query: endpoint.query, header: endpoint.headers }
      for (const location of ["path", "query", "header"] as const) {
        const parameters = operation.parameters.filter((parameter) => parameter.in === location)
        if (parameters.length === 0) continue
        const values: Record<string, unknown> = {}
        for (const parameter of parameters) {
          const example = parameterExample(parameter)
          assert.isString(example, `${name} has an example of its ${location} parameter ${parameter.name}`)
          values[parameter.name] = example
        }
        assert.isUndefined(
          rejection([schemas[location]!], values),
          `${name}'s example ${location} parameters ${JSON.stringify(values)}`
        )
      }
    }
  })

  it("has an example of every response body, each decoding with the schemas declared for its status", () => {
    for (const { name, operation, schemas } of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (response.content === undefined) continue
        const declared = (schemas.get(Number(status)) ?? []).map(bodyOf)
        assert.isNotEmpty(declared, `${name} declares a ${status}`)
        for (const [contentType, mediaType] of Object.entries(response.content)) {
          const examples = examplesOf(mediaType as MediaType)
          assert.isNotEmpty(examples, `${name} has an example ${status} ${contentType} body`)
          for (const example of examples) {
            assert.isUndefined(rejection(declared, example), `${name}'s example ${status} ${JSON.stringify(example)}`)
          }
        }
      }
    }
  })

  it("lets request bodies carry unknown fields, as the service does (it ignores them)", () => {
    for (const { name, operation } of operations) {
      const body = JSON.stringify(operation.requestBody ?? {})
      assert.notInclude(body, '"additionalProperties":false', `${name}'s request body`)
    }
  })

  it("says that every 503 carries Retry-After", () => {
    for (const { name, operation } of operations) {
      const unavailable = operation.responses["503"]
      if (unavailable !== undefined) assert.isDefined(unavailable.headers?.["retry-after"], `${name}'s 503`)
    }
  })
})

// ---- the examples against a live service ---------------------------------------------------------

const byName = (name: string): Operation => {
  const found = operations.find((operation) => operation.name === name)
  assert.isDefined(found, `${name} is documented`)
  return found!
}

const firstExample = (content: Record<string, unknown> | undefined): unknown => {
  const mediaType = Object.values(content ?? {})[0] as MediaType | undefined
  return examplesOf(mediaType ?? {})[0]
}

/** The documented example response of `name` for `status`. */
const documentedResponse = (name: string, status: number): any =>
  firstExample(byName(name).operation.responses[status]?.content)

/**
 * Calls operation `name` with its documented example: parameters and body as
 * documented, but for the `params` and `body` fields given (a live receipt or
 * id where the documented one names nothing on this server).
 */
const callDocumented = (
  exercised: Set<string>,
  name: string,
  live: { readonly params?: Record<string, string>; readonly body?: Record<string, unknown> } = {}
) =>
  Effect.gen(function* () {
    const operation = byName(name)
    const example = (location: string) =>
      Object.fromEntries(
        operation.operation.parameters
          .filter((parameter) => parameter.in === location)
          .map((parameter) => [parameter.name, String(parameterExample(parameter))])
      )
    const params = { ...example("path"), ...live.params }
    const path = operation.path.replace(/\{(\w+)\}/g, (_, key: string) => encodeURIComponent(params[key]!))
    const query = new URLSearchParams(example("query")).toString()
    const documentedBody = firstExample(operation.operation.requestBody?.content)
    const body =
      documentedBody === undefined ? undefined : { ...(documentedBody as Record<string, unknown>), ...live.body }
    const response: JsonResponse = yield* request(operation.method, query === "" ? path : `${path}?${query}`, {
      headers: example("header"),
      ...(body === undefined ? {} : { body })
    })
    exercised.add(name)
    assert.strictEqual(
      response.status,
      successStatus(operation),
      `${name} with its documented example: ${response.text}`
    )
    return response
  })

for (const database of testDatabases) {
  describe(`the documented examples on ${database.name}`, () => {
    const db = database.layer()
    // The documented webhook URL's host does not exist: the live calls register a loopback one instead.
    const server = testServer(db, { runtime: { webhookAllowPrivateNetworks: true, webhooks: false } }).pipe(
      Layer.provideMerge(db)
    )
    layer(server, { excludeTestServices: true })((it) => {
      it.effect("GET /openapi.json serves this document", () =>
        Effect.gen(function* () {
          const response = yield* request("GET", "/openapi.json")
          assert.strictEqual(response.status, 200)
          assert.deepStrictEqual(response.json, JSON.parse(JSON.stringify(spec)))
        })
      )

      it.effect(
        "every operation, called with its documented example, gives its documented success: Summer Breeze submitted, read, received, extended, nacked, received again and acked",
        () =>
          Effect.gen(function* () {
            const exercised = new Set<string>()
            const call = (name: string, live?: Parameters<typeof callDocumented>[2]) =>
              callDocumented(exercised, name, live)

            const created = Schema.decodeUnknownSync(FormulaView)((yield* call("POST /formulas")).json)
            const documented = documentedResponse("POST /formulas", 201)
            assert.strictEqual(
              created.fingerprint,
              documented.fingerprint,
              "the documented fingerprint is the real one"
            )
            assert.deepStrictEqual(
              { name: created.name, materials: created.materials },
              { name: documented.name, materials: documented.materials }
            )

            yield* call("GET /formulas")
            yield* call("GET /formulas/{id}", { params: { id: created.id } })

            const receive = Effect.map(call("POST /queue/receive"), (response) => {
              const messages = Schema.decodeUnknownSync(Schema.Array(QueueDelivery))(response.json.messages)
              assert.lengthOf(messages, 1)
              assert.strictEqual(messages[0]!.messageId, created.message.id)
              return messages[0]!
            })
            const first = yield* receive
            assert.strictEqual(first.attempt, 1)
            yield* call("POST /queue/extend", { body: { receipt: first.receipt } })
            // The documented nack asks for redelivery in 5 s: the documented receive (a 20 s long poll) waits for it.
            yield* call("POST /queue/nack", { body: { receipt: first.receipt } })
            const second = yield* receive
            assert.strictEqual(second.attempt, 2)
            // With a field the API does not know: ignored, as the document says (it does not forbid it).
            yield* call("POST /queue/ack", { body: { receipt: second.receipt, consumer: "classifier-1" } })
            const processed = (yield* request("GET", `/formulas/${created.id}`)).json
            assert.strictEqual(processed.message.status, "processed")
            assert.deepStrictEqual(
              processed.message.result,
              (firstExample(byName("POST /queue/ack").operation.requestBody?.content) as any).result,
              "the documented ack's result is stored and shown on the formula"
            )

            yield* call("GET /queue/stats")
            yield* call("GET /queue/dead-letters")
            yield* call("POST /queue/dead-letters/redrive")
            yield* call("DELETE /queue/dead-letters")
            yield* call("GET /health")
            const stats = yield* call("GET /stats/submissions")
            assert.deepStrictEqual(
              stats.json.buckets.map((bucket: { start: string }) => bucket.start),
              documentedResponse("GET /stats/submissions", 200).buckets.map(
                (bucket: { start: string }) => bucket.start
              ),
              "the documented buckets are the real ones"
            )
            const top = yield* call("GET /stats/materials")
            assert.deepStrictEqual(
              top.json.materials.map((material: { name: string }) => material.name),
              ["Bergamot Oil", "Lavender Absolute", "Sandalwood"]
            )
            const dashboard = yield* call("GET /dashboard")
            assert.include(dashboard.headers.get("content-type") ?? "", "text/html")

            const hook = Schema.decodeUnknownSync(WebhookCreated)(
              (yield* call("POST /webhooks", { body: { url: "http://127.0.0.1:9/formula-intake" } })).json
            )
            const live = { params: { id: hook.id } }
            yield* call("GET /webhooks")
            yield* call("GET /webhooks/{id}", live)
            yield* call("PATCH /webhooks/{id}", live)
            yield* call("POST /webhooks/{id}/rotate-secret", live)
            const sent = yield* call("POST /webhooks/{id}/test", live)
            // The documented query pages from a cursor and filters pending: a first page unfiltered finds the test.
            const sql = yield* PgClient.PgClient
            const [delivery] = yield* sql<{ id: string }>`
              SELECT id::text AS id FROM webhook_deliveries WHERE event_id = ${sent.json.eventId}`
            yield* call("GET /webhooks/{id}/deliveries", live)
            // As the dispatcher leaves a delivery whose attempts are used up.
            yield* sql`UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL WHERE id = ${delivery!.id}`
            yield* call("POST /webhooks/{id}/deliveries/{deliveryId}/retry", {
              params: { id: hook.id, deliveryId: delivery!.id }
            })
            yield* call("DELETE /webhooks/{id}", live)

            const metrics = yield* call("GET /metrics")
            const families = (text: string) => [...text.matchAll(/^# TYPE (\w+)/gm)].map((match) => match[1])
            const exported = families(metrics.text)
            assert.deepStrictEqual(
              families(documentedResponse("GET /metrics", 200)).filter((family) => !exported.includes(family)),
              [],
              "documented metrics the service does not export"
            )

            assert.sameMembers([...exercised], endpoints, "every operation was called")
          })
      )
    })
  })
}
