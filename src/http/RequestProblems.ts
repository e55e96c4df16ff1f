/**
 * Request decoding failures (query, path, headers) rendered like every other
 * 400 of this API: an `invalid-request` problem whose `errors` carry JSON
 * Pointer paths (`/query/limit`), the same shape as a formula's validation
 * errors — so clients parse one 400 format.
 */
import { Cause, Effect, ErrorReporter, SchemaIssue } from "effect"
import { HttpServerRespondable } from "effect/http"
import { HttpApiError, HttpApiMiddleware } from "effect/http-api"
import { InvalidRequest } from "./Problems.ts"

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const pointer = (segments: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string =>
  segments
    .map((segment) => {
      const key = typeof segment === "object" ? segment.key : segment
      return "/" + String(key).replaceAll("~", "~0").replaceAll("/", "~1")
    })
    .join("")

export const layerRequestProblems = HttpApiMiddleware.layerSchemaErrorTransform(
  HttpApiMiddleware.ProblemDetails,
  (error) => {
    // Our own response failed to encode: a bug, reported, and a bare 500.
    if (error.kind === "Body" || error.kind === "ResponseHeaders") {
      return Effect.andThen(
        ErrorReporter.report(Cause.fail(error)),
        HttpServerRespondable.toResponse(new HttpApiError.InternalServerErrorProblem())
      )
    }
    const slot = error.kind.toLowerCase()
    const errors = formatIssues(error.cause.issue).issues.map((issue) => ({
      path: pointer([slot, ...(issue.path ?? [])]),
      message: issue.message
    }))
    return HttpServerRespondable.toResponse(new InvalidRequest({ errors }))
  }
)
