import { HttpApi, HttpApiMiddleware, OpenApi } from "effect/http-api"
import { FormulasApi } from "./FormulasApi.ts"
import { QueueApi } from "./QueueApi.ts"
import { SystemApi } from "./SystemApi.ts"

export class Api extends HttpApi.make("formula-intake")
  .add(FormulasApi)
  .add(QueueApi)
  .add(SystemApi)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotateMerge(
    OpenApi.annotations({
      title: "Formula intake",
      description: "Accepts fragrance formulas; each distinct material make-up is stored once and announced once."
    })
  ) {}
