/**
 * Every error the HTTP API answers with, as RFC 9457 problem documents
 * (`application/problem+json`). Each `type` is a stable URN clients can
 * switch on: two problems with one status (the duplicate 409 and the
 * in-flight 409, say) are told apart by it. Every problem body also carries
 * the request's `X-Request-Id` as `requestId`, added to the body as it
 * leaves (ResponseMiddleware.ts), whoever wrote it.
 */
import { Schema } from "effect"
import { HttpApiError } from "effect/http-api"
import { MAX_LISTED_ERRORS } from "../domain/Formula.ts"
import { formulaUrl } from "./FormulaView.ts"

const problemType = (name: string) => `urn:formula-intake:problem:${name}` as const

/** Members every problem of this API carries besides RFC 9457's own. */
export const problemMembers = {
  requestId: Schema.optionalKey(
    Schema.String.annotate({ description: "The request's X-Request-Id (the client's when it sent a sane one)." })
  )
}

/** One validation failure: where (a JSON Pointer: `/materials/2/concentration`, `/query/limit`) and what. */
export const ValidationIssue = Schema.Struct({
  path: Schema.String,
  message: Schema.String
})

/** The problems of a validation 400: every one found, up to `MAX_LISTED_ERRORS`, and how many more. */
const validationErrors = {
  errors: Schema.Array(ValidationIssue).annotate({
    description: `Every problem found, each with a JSON Pointer path; at most ${MAX_LISTED_ERRORS}`
  }),
  moreErrors: Schema.optionalKey(
    Schema.Int.annotate({
      description: `Present when more than ${MAX_LISTED_ERRORS} problems were found: how many are not listed`
    })
  )
}

/** `errors` capped at `MAX_LISTED_ERRORS`, with `moreErrors` and a `detail` saying so when some are left out. */
export const listedErrors = (
  errors: ReadonlyArray<typeof ValidationIssue.Type>,
  moreErrors = Math.max(0, errors.length - MAX_LISTED_ERRORS)
) => {
  const listed = errors.slice(0, MAX_LISTED_ERRORS)
  return moreErrors === 0
    ? { errors: listed }
    : { errors: listed, moreErrors, detail: `${listed.length} problems listed, and ${moreErrors} more` }
}

export class InvalidFormula extends HttpApiError.Problem<InvalidFormula>()(
  "InvalidFormula",
  { type: problemType("invalid-formula"), status: 400, title: "The formula is not valid" },
  { ...validationErrors, ...problemMembers }
) {}

export class MalformedJson extends HttpApiError.Problem<MalformedJson>()(
  "MalformedJson",
  {
    type: problemType("malformed-json"),
    status: 400,
    title: "The request body is not valid JSON"
  },
  problemMembers
) {}

export class InvalidRequest extends HttpApiError.Problem<InvalidRequest>()(
  "InvalidRequest",
  { type: problemType("invalid-request"), status: 400, title: "The request is not valid" },
  { ...validationErrors, ...problemMembers }
) {}

export class UnsupportedMediaType extends HttpApiError.Problem<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  {
    type: problemType("unsupported-media-type"),
    status: 415,
    title: "The request body must be application/json"
  },
  problemMembers
) {}

export class PayloadTooLarge extends HttpApiError.Problem<PayloadTooLarge>()(
  "PayloadTooLarge",
  {
    type: problemType("payload-too-large"),
    status: 413,
    title: "The request body is too large"
  },
  problemMembers
) {}

const duplicateFormula = {
  type: problemType("duplicate-formula"),
  status: 409,
  title: "A formula with this material make-up exists"
} as const

export class DuplicateFormula extends HttpApiError.Problem<DuplicateFormula>()("DuplicateFormula", duplicateFormula, {
  existingId: Schema.String,
  existingUrl: Schema.String,
  ...problemMembers
}) {}

/**
 * The body of the duplicate 409, built directly rather than encoded through
 * the `DuplicateFormula` schema: it is the answer to every repeat submission,
 * the hot path (the HTTP tests decode it with the schema: assertProblem).
 */
export const duplicateFormulaBody = (existingId: string) => ({
  ...duplicateFormula,
  detail: `formula ${existingId} has the same material make-up`,
  existingId,
  existingUrl: formulaUrl(existingId)
})

export class FormulaNotFound extends HttpApiError.Problem<FormulaNotFound>()(
  "FormulaNotFound",
  {
    type: problemType("formula-not-found"),
    status: 404,
    title: "No formula has this id"
  },
  problemMembers
) {}

export class ServiceUnavailable extends HttpApiError.Problem<ServiceUnavailable>()(
  "ServiceUnavailable",
  {
    type: problemType("database-unavailable"),
    status: 503,
    title: "The database is unavailable; retry later"
  },
  problemMembers
) {}

/** Back-pressure, not a conflict: nothing was stored; retry after `Retry-After` seconds. */
export class QueueFullProblem extends HttpApiError.Problem<QueueFullProblem>()(
  "QueueFullProblem",
  {
    type: problemType("queue-full"),
    status: 503,
    title: "The message queue is full; nothing was stored, retry later"
  },
  problemMembers
) {}

export class IdempotencyKeyReused extends HttpApiError.Problem<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  {
    type: problemType("idempotency-key-reused"),
    status: 422,
    title: "This Idempotency-Key was used with a different request body"
  },
  problemMembers
) {}

export class IdempotencyKeyInFlight extends HttpApiError.Problem<IdempotencyKeyInFlight>()(
  "IdempotencyKeyInFlight",
  {
    type: problemType("idempotency-key-in-flight"),
    status: 409,
    title: "A request with this Idempotency-Key is still being processed; retry later"
  },
  problemMembers
) {}

/** A path nothing is served at. */
export class NotFound extends HttpApiError.Problem<NotFound>()(
  "NotFound",
  { type: problemType("not-found"), status: 404, title: "Nothing is served at this path" },
  problemMembers
) {}

/** A path served for other methods; `Allow` lists them. */
export class MethodNotAllowed extends HttpApiError.Problem<MethodNotAllowed>()(
  "MethodNotAllowed",
  { type: problemType("method-not-allowed"), status: 405, title: "This path is not served for this method" },
  { allowed: Schema.Array(Schema.String), ...problemMembers }
) {}
