import { HttpApi, OpenApi } from "effect/http-api"
import packageJson from "../../package.json" with { type: "json" }
import { FormulasApi, FormulasServedApi } from "./FormulasApi.ts"
import { QueueApi } from "./QueueApi.ts"
import { RequestProblems } from "./RequestProblems.ts"
import { SystemApi, SystemServedApi } from "./SystemApi.ts"

const annotations = OpenApi.annotations({
  title: "Formula intake",
  version: packageJson.version,
  description:
    "Accepts fragrance formulas; each distinct material make-up is stored once and announced once, through a bounded queue that consumers read over HTTP.\n\n" +
    "Errors are `application/problem+json` (RFC 9457); each problem's `type` is a stable URN to switch on. " +
    "Every 503 carries `Retry-After`."
})

/** The whole HTTP API as documented: `/openapi.json`, `/docs`, clients. */
export class Api extends HttpApi.make("formula-intake")
  .add(FormulasApi)
  .add(QueueApi)
  .add(SystemApi)
  .middleware(RequestProblems)
  .annotateMerge(annotations) {}

/**
 * What HttpApi serves: the same endpoints but `POST /formulas`, which has a
 * route of its own (SubmitRoute.ts) because it is the hot path, and
 * `/metrics`, PrometheusMetrics' own route.
 */
export class ServedApi extends HttpApi.make("formula-intake")
  .add(FormulasServedApi)
  .add(QueueApi)
  .add(SystemServedApi)
  .middleware(RequestProblems)
  .annotateMerge(annotations) {}
