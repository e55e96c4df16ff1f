import { HttpApi, OpenApi } from "effect/http-api"
import packageJson from "../../package.json" with { type: "json" }
import { FormulasApi, FormulasServedApi } from "./FormulasApi.ts"
import { QueueApi } from "./QueueApi.ts"
import { RequestProblems } from "./RequestProblems.ts"
import { DashboardApi, StatsApi } from "./StatsApi.ts"
import { SystemApi, SystemServedApi } from "./SystemApi.ts"
import { WebhooksApi } from "./WebhooksApi.ts"

/** Removes `additionalProperties: false` from `schema` and the schemas written inside it (not behind a `$ref`). */
const allowUnknownFields = (schema: unknown): void => {
  if (Array.isArray(schema)) return schema.forEach(allowUnknownFields)
  if (typeof schema !== "object" || schema === null) return
  const record = schema as Record<string, unknown>
  if (record["additionalProperties"] === false) delete record["additionalProperties"]
  Object.values(record).forEach(allowUnknownFields)
}

/**
 * Request bodies as the service reads them: unknown fields are ignored
 * (Effect's default; clients may send more than we read), while the
 * generator writes `additionalProperties: false` into every object schema.
 * Responses keep it: they carry exactly their fields.
 */
const openRequestBodies = (spec: Record<string, any>) => {
  for (const item of Object.values(spec["paths"] as Record<string, Record<string, any>>)) {
    for (const operation of Object.values(item)) {
      for (const mediaType of Object.values(operation.requestBody?.content ?? {})) {
        allowUnknownFields((mediaType as { schema?: unknown }).schema)
      }
    }
  }
  return spec
}

const annotations = OpenApi.annotations({
  transform: openRequestBodies,
  title: "Formula intake",
  version: packageJson.version,
  description:
    "Accepts fragrance formulas; each distinct material make-up is stored once and announced once, through a bounded queue that consumers read over HTTP.\n\n" +
    "Errors are `application/problem+json` (RFC 9457); each problem's `type` is a stable URN to switch on. " +
    "Every 503 carries `Retry-After`."
})

// A 400 lists every problem of the request (RequestProblems.ts), not only the first.
const everyProblem = { errors: "all" } as const

/** The whole HTTP API as documented: `/openapi.json`, `/docs`, clients. */
export class Api extends HttpApi.make("formula-intake")
  .add(FormulasApi)
  .add(QueueApi)
  .add(WebhooksApi)
  .add(StatsApi)
  .add(SystemApi)
  .add(DashboardApi)
  .middleware(RequestProblems)
  .annotate(HttpApi.ParseOptions, everyProblem)
  .annotateMerge(annotations) {}

/**
 * What HttpApi serves: the same endpoints but `POST /formulas`, which has a
 * route of its own (SubmitRoute.ts) because it is the hot path,
 * `/metrics`, PrometheusMetrics' own route, and `/dashboard`, a page
 * (DashboardRoute.ts).
 */
export class ServedApi extends HttpApi.make("formula-intake")
  .add(FormulasServedApi)
  .add(QueueApi)
  .add(WebhooksApi)
  .add(StatsApi)
  .add(SystemServedApi)
  .middleware(RequestProblems)
  .annotate(HttpApi.ParseOptions, everyProblem)
  .annotateMerge(annotations) {}
