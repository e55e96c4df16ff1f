/**
 * `POST /formulas`: the submit path over HTTP.
 *
 *   read the body (415 / 413)
 *     → SubmissionJudge: malformed-JSON 400 | invalid-formula 400 (every problem listed, up to 100)
 *       (small, plainly valid bodies on the spot, the rest on a worker thread)
 *     → no Idempotency-Key: FormulaIntake.submitOutcome
 *       with a key:         IdempotencyKeys.run(FormulaIntake.submitOutcome) — replay, 422, in-flight 409
 *     → 201 + Location | duplicate 409 | queue-full / database 503 (Retry-After: Server.ts)
 *
 * Documented in the API description (FormulasApi.ts, `submit`) like every
 * endpoint, but served by this plain router route instead of HttpApi: it is
 * the service's hot path, and HttpApi's per-request machinery (header
 * decoding, error-schema encoding, middleware) cost more than everything a
 * duplicate answer needs. Its answers are the documented ones:
 * the HTTP tests decode each with the documented schemas
 * (assertCreated, assertProblem in test/support/Formulas.ts).
 */
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerRespondable, HttpServerResponse } from "effect/http"
import type { Formula } from "../domain/Formula.ts"
import {
  type Duplicate,
  FormulaIntake,
  type SubmitError,
  type SubmitOptions,
  type SubmitOutcome
} from "../intake/FormulaIntake.ts"
import { IdempotencyKeys, maxKeyLength, type StoredResponse } from "../intake/IdempotencyKeys.ts"
import { formulaUrl, toFormulaView } from "./FormulaView.ts"
import { readJsonBytes } from "./JsonBody.ts"
import {
  duplicateFormulaBody,
  IdempotencyKeyInFlight,
  IdempotencyKeyReused,
  InvalidFormula,
  InvalidRequest,
  listedErrors,
  MalformedJson,
  type PayloadTooLarge,
  QueueFullProblem,
  ServiceUnavailable,
  type UnsupportedMediaType
} from "./Problems.ts"
import { SubmissionJudge } from "./SubmissionJudge.ts"
import { SubmissionCounters } from "../stats/SubmissionCounters.ts"

/** Every answer but a finished outcome. */
type Problem =
  | UnsupportedMediaType
  | PayloadTooLarge
  | MalformedJson
  | InvalidFormula
  | InvalidRequest
  | IdempotencyKeyReused
  | IdempotencyKeyInFlight
  | QueueFullProblem
  | ServiceUnavailable

/** The longest X-Client-Id (the formula keeps it; its webhook endpoints are found by it). */
export const maxClientIdLength = 255

const problemJson = { "content-type": "application/problem+json" }

// The two outcomes a submission can finish with — and an Idempotency-Key stores and replays as sent.
const finished = (outcome: SubmitOutcome): StoredResponse =>
  outcome._tag === "Created"
    ? { status: 201, body: toFormulaView(outcome.formula), headers: { location: formulaUrl(outcome.formula.id) } }
    : { status: 409, body: duplicateFormulaBody(outcome.existingId), headers: problemJson }

const respond = (stored: StoredResponse, replayed = false): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(stored.body, {
    status: stored.status,
    headers: replayed ? { ...stored.headers, "idempotent-replayed": "true" } : stored.headers
  })

/** What can stop a submission: a problem already, or a failure of the submit path. */
type Failure = Problem | Exclude<SubmitError, Duplicate>

/** A failure as the problem the client gets. */
const problemOf = (error: Failure): Problem => {
  switch (error._tag) {
    case "FormulaInvalid":
      return new InvalidFormula(listedErrors(error.errors, error.moreErrors))
    case "QueueFull":
      return new QueueFullProblem({ detail: "too many messages await consumers" })
    case "DatabaseUnavailable":
      return new ServiceUnavailable({ detail: error.message })
    default:
      return error
  }
}

/** The route, on the runtime's services. */
export const SubmitRoute = HttpRouter.use((router) =>
  Effect.gen(function* () {
    const intake = yield* FormulaIntake
    const keys = yield* IdempotencyKeys
    const judge = yield* SubmissionJudge
    // Every 400 of this route counts as an invalid submission in the statistics (an invalid formula through the intake).
    const counters = yield* SubmissionCounters

    const withKey = (
      request: HttpServerRequest.HttpServerRequest,
      key: string,
      requestHash: string,
      formula: Formula,
      options: SubmitOptions
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Failure> => {
      if (key.length === 0 || key.length > maxKeyLength) {
        counters.invalid()
        return Effect.fail(
          new InvalidRequest({
            errors: [{ path: "/headers/idempotency-key", message: `must be 1–${maxKeyLength} characters` }]
          })
        )
      }
      const claim = { scope: request.headers["x-client-id"] ?? "", key, requestHash }
      return keys.run(claim, Effect.map(intake.submitOutcome(formula, options), finished)).pipe(
        Effect.map((result) => respond(result.response, result.replayed)),
        Effect.catchTags({
          KeyReusedWithDifferentBody: () =>
            Effect.fail(new IdempotencyKeyReused({ detail: `Idempotency-Key ${JSON.stringify(key)}` })),
          KeyInFlight: () =>
            Effect.fail(new IdempotencyKeyInFlight({ detail: `Idempotency-Key ${JSON.stringify(key)}` }))
        })
      )
    }

    const submit = (
      request: HttpServerRequest.HttpServerRequest
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Failure> => {
      const clientHeader = request.headers["x-client-id"]
      if (clientHeader !== undefined && clientHeader.length > maxClientIdLength) {
        return Effect.fail(
          new InvalidRequest({
            errors: [{ path: "/headers/x-client-id", message: `must be at most ${maxClientIdLength} characters` }]
          })
        )
      }
      // An empty X-Client-Id names no client (as it scopes Idempotency-Keys like none).
      const options = { clientId: clientHeader === "" ? undefined : clientHeader }
      return Effect.flatMap(readJsonBytes(request), (bytes) => {
        const key = request.headers["idempotency-key"]
        // Validation comes first, before any Idempotency-Key is claimed: a 400 needs no database.
        return Effect.flatMap(judge.judge(bytes, key !== undefined), (judged) => {
          switch (judged._tag) {
            case "Malformed":
              counters.invalid()
              return Effect.fail(new MalformedJson({ detail: judged.detail }))
            case "Invalid":
              intake.countInvalid()
              return Effect.fail(new InvalidFormula(listedErrors(judged.errors, judged.moreErrors)))
            case "Valid":
              return key === undefined
                ? Effect.map(intake.submitOutcome(judged.formula, options), (outcome) => respond(finished(outcome)))
                : withKey(request, key, judged.requestHash!, judged.formula, options)
          }
        })
      })
    }

    yield* router.add("POST", "/formulas", (request) =>
      Effect.catch(submit(request), (error) => HttpServerRespondable.toResponse(problemOf(error)))
    )
  })
).pipe(Layer.provide(SubmissionJudge.layer))
