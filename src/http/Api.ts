import { HttpApi, HttpApiMiddleware, OpenApi } from "effect/http-api"
import { FormulasApi, FormulasServedApi } from "./FormulasApi.ts"
import { QueueApi } from "./QueueApi.ts"
import { SystemApi } from "./SystemApi.ts"

const annotations = OpenApi.annotations({
  title: "Formula intake",
  description: "Accepts fragrance formulas; each distinct material make-up is stored once and announced once."
})

// A 400 lists every problem of the request (RequestProblems.ts), not only the first.
const everyProblem = { errors: "all" } as const

/** The whole HTTP API as documented: `/openapi.json`, `/docs`, clients. */
export class Api extends HttpApi.make("formula-intake")
  .add(FormulasApi)
  .add(QueueApi)
  .add(SystemApi)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotate(HttpApi.ParseOptions, everyProblem)
  .annotateMerge(annotations) {}

/**
 * What HttpApi serves: the same endpoints but `POST /formulas`, which has a
 * route of its own (SubmitRoute.ts) because it is the hot path.
 */
export class ServedApi extends HttpApi.make("formula-intake")
  .add(FormulasServedApi)
  .add(QueueApi)
  .add(SystemApi)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotate(HttpApi.ParseOptions, everyProblem)
  .annotateMerge(annotations) {}
