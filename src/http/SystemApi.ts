import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { ServiceUnavailable } from "./Problems.ts"

export class SystemApi extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("health", "/health", {
    success: Schema.Struct({ status: Schema.Literal("ok") }),
    error: ServiceUnavailable
  }).annotateMerge(
    OpenApi.annotations({
      summary: "200 once start-up has finished and the database answers; 503 otherwise"
    })
  )
) {}
