/**
 * `POST /formulas`: the submit path over HTTP.
 *
 *   read the body (415 / 413 / malformed-JSON 400)
 *     → FormulaIntake.decode (invalid-formula 400, every problem listed)
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
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerRespondable, HttpServerResponse } from "effect/http"
import type { Formula } from "../domain/Formula.ts"
import { type Duplicate, FormulaIntake, type SubmitError } from "../intake/FormulaIntake.ts"
import { IdempotencyKeys, maxKeyLength, requestHash, type StoredResponse } from "../intake/IdempotencyKeys.ts"
import type { FormulaRow } from "../store/FormulaStore.ts"
import { formulaUrl, toFormulaView } from "./FormulaView.ts"
import { readJsonBody } from "./JsonBody.ts"
import {
  duplicateFormulaBody,
  IdempotencyKeyInFlight,
  IdempotencyKeyReused,
  InvalidFormula,
  InvalidRequest,
  type MalformedJson,
  type PayloadTooLarge,
  QueueFullProblem,
  ServiceUnavailable,
  type UnsupportedMediaType
} from "./Problems.ts"

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

// The two outcomes a submission can finish with — and an Idempotency-Key stores and replays as sent.
const created = (row: FormulaRow): StoredResponse => ({
  status: 201,
  body: toFormulaView(row),
  headers: { location: formulaUrl(row.id) }
})
const duplicate = (existingId: string): StoredResponse => ({
  status: 409,
  body: duplicateFormulaBody(existingId),
  headers: { "content-type": "application/problem+json" }
})

const respond = (stored: StoredResponse, replayed = false): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(stored.body, {
    status: stored.status,
    headers: replayed ? { ...stored.headers, "idempotent-replayed": "true" } : stored.headers
  })

/** Every failure but the duplicate, as the problem the client gets. */
const problemOf = (error: Exclude<SubmitError, Duplicate>): Problem => {
  switch (error._tag) {
    case "FormulaInvalid":
      return new InvalidFormula({ errors: error.errors })
    case "QueueFull":
      return new QueueFullProblem({ detail: "too many messages await consumers" })
    case "DatabaseUnavailable":
      return new ServiceUnavailable({ detail: error.message })
  }
}

/** The route, on the runtime's services. */
export const SubmitRoute = HttpRouter.use((router) =>
  Effect.gen(function* () {
    const intake = yield* FormulaIntake
    const keys = yield* IdempotencyKeys

    // A submission's finished outcome (201 or duplicate 409), or the problem that stopped it.
    const outcome = (formula: Formula) =>
      intake.submitOutcome(formula).pipe(
        Effect.map((outcome) =>
          outcome._tag === "Created" ? created(outcome.formula) : duplicate(outcome.existingId)
        ),
        Effect.mapError(problemOf)
      )

    const withKey = (
      request: HttpServerRequest.HttpServerRequest,
      key: string,
      body: unknown,
      formula: Formula
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Problem> => {
      if (key.length === 0 || key.length > maxKeyLength) {
        return Effect.fail(
          new InvalidRequest({ errors: [{ path: "Idempotency-Key", message: `must be 1–${maxKeyLength} characters` }] })
        )
      }
      const request_ = { scope: request.headers["x-client-id"] ?? "", key, requestHash: requestHash(body) }
      return keys.run(request_, outcome(formula)).pipe(
        Effect.map((result) => respond(result.response, result.replayed)),
        Effect.catchTags({
          KeyReusedWithDifferentBody: () =>
            Effect.fail(new IdempotencyKeyReused({ detail: `Idempotency-Key ${JSON.stringify(key)}` })),
          KeyInFlight: () =>
            Effect.fail(new IdempotencyKeyInFlight({ detail: `Idempotency-Key ${JSON.stringify(key)}` })),
          DatabaseUnavailable: (error) => Effect.fail(new ServiceUnavailable({ detail: error.message }))
        })
      )
    }

    const submit = (
      request: HttpServerRequest.HttpServerRequest
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Problem> =>
      Effect.flatMap(readJsonBody(request), (body) =>
        // Validation comes first, before any Idempotency-Key is claimed: a 400 needs no database.
        intake.decode(body).pipe(
          Effect.mapError(problemOf),
          Effect.flatMap((formula) => {
            const key = request.headers["idempotency-key"]
            return key === undefined
              ? Effect.map(outcome(formula), (stored) => respond(stored))
              : withKey(request, key, body, formula)
          })
        )
      )

    yield* router.add("POST", "/formulas", (request) =>
      submit(request).pipe(Effect.catch((problem) => HttpServerRespondable.toResponse(problem)))
    )
  })
)
