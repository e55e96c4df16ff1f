/**
 * Request decoding failures (query, path, headers, body) rendered like every
 * other 400 of this API: an `invalid-request` problem whose `errors` carry
 * JSON Pointer paths (`/query/limit`), the same shape as a formula's
 * validation errors — so clients parse one 400 format.
 *
 * A middleware of our own rather than `HttpApiMiddleware.ProblemDetails`:
 * that one declares a 400 `about:blank` problem and a 500 on every endpoint
 * of the OpenAPI document, answers this API never gives (a request error is
 * an `invalid-request`; a 500 is a bug, not a documented answer). This one
 * declares nothing: each endpoint whose request can fail to decode lists
 * `InvalidRequest` itself, so the document shows a 400 exactly there.
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

export class RequestProblems extends HttpApiMiddleware.Service<RequestProblems>()(
  "formula-intake/http/RequestProblems"
) {}

export const layerRequestProblems = HttpApiMiddleware.layerSchemaErrorTransform(RequestProblems, (error) => {
  // Our own response failed to encode: a bug, reported, and a bare 500 (undocumented, like any defect's).
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
})
