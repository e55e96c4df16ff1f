/**
 * Request decoding failures (query, path, headers, body) rendered like every
 * other 400 of this API: an `invalid-request` problem whose `errors` carry
 * JSON Pointer paths into the request, each starting with the part it is in —
 * `/query/limit`, `/path/id`, `/headers/idempotency-key`, `/body/max` — the
 * same shape as a formula's validation errors, so clients parse one 400
 * format. Every problem is listed (the API decodes with `errors: "all"`:
 * Api.ts), up to the same cap as a formula's.
 *
 * A middleware of our own rather than `HttpApiMiddleware.ProblemDetails`:
 * that one declares a 400 `about:blank` problem and a 500 on every endpoint
 * of the OpenAPI document, answers this API never gives (a request error is
 * an `invalid-request`; a 500 is a bug, not a documented answer). This one
 * declares nothing: each endpoint whose request can fail to decode lists
 * `InvalidRequest` itself, so the document shows a 400 exactly there.
 */
import { Cause, Effect, ErrorReporter, JsonPointer, SchemaIssue } from "effect"
import { HttpServerRespondable } from "effect/http"
import { HttpApiError, HttpApiMiddleware } from "effect/http-api"
import { InvalidRequest, listedErrors, type ValidationIssue } from "./Problems.ts"

/** The part of a request a problem is in: the first segment of its path. */
export type RequestPart = "query" | "path" | "headers" | "body"

const partOf = { Query: "query", Params: "path", Headers: "headers", Payload: "body" } as const

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) => (issue._tag === "MissingKey" ? "is required" : SchemaIssue.defaultLeafHook(issue))
})

const pointer = (segments: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string =>
  segments
    .map((segment) => "/" + JsonPointer.escapeToken(String(typeof segment === "object" ? segment.key : segment)))
    .join("")

/** A schema failure of one part of the request as problems, each at its JSON Pointer path. */
export const requestErrors = (part: RequestPart, issue: SchemaIssue.Issue): Array<typeof ValidationIssue.Type> =>
  formatIssues(issue).issues.map((problem) => ({
    path: pointer([part, ...(problem.path ?? [])]),
    message: problem.message
  }))

/** The `invalid-request` 400 for these problems, capped. */
export const invalidRequest = (errors: ReadonlyArray<typeof ValidationIssue.Type>) =>
  new InvalidRequest(listedErrors(errors))

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
  return HttpServerRespondable.toResponse(invalidRequest(requestErrors(partOf[error.kind], error.cause.issue)))
})
