import { Effect, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiSchema } from "effect/http-api"
import type { Formula } from "../domain/Formula.ts"
import { withoutStack } from "../domain/WithoutStack.ts"
import { IdempotencyKeys, maxKeyLength, requestHash, type StoredResponse } from "../intake/IdempotencyKeys.ts"
import { FormulaIntake } from "../intake/FormulaIntake.ts"
import { type FormulaRow, FormulaStore } from "../store/FormulaStore.ts"
import { Api } from "./Api.ts"
import type { FormulaView } from "./FormulasApi.ts"
import { readJsonBody } from "./JsonBody.ts"
import {
  DuplicateFormula,
  FormulaNotFound,
  IdempotencyKeyInFlight,
  IdempotencyKeyReused,
  InvalidFormula,
  InvalidRequest,
  QueueFullProblem,
  ServiceUnavailable
} from "./Problems.ts"

export const formulaUrl = (id: string) => `/formulas/${id}`

export const toFormulaView = (row: FormulaRow): FormulaView => ({
  id: row.id,
  name: row.name,
  fingerprint: row.fingerprint,
  // Exact: a decimal of at most 9 significant digits survives a double and prints back the same.
  materials: row.materials.map((material) => ({ name: material.name, concentration: Number(material.concentration) })),
  createdAt: row.createdAt.toISOString(),
  message: {
    id: row.messageId,
    status: row.deliveredAt === null ? "pending" : "delivered",
    deliveredAt: row.deliveredAt === null ? null : row.deliveredAt.toISOString()
  }
})

// A cursor is the last row's position, encoded so clients treat it as opaque.
const encodeCursor = (seq: string): string => Buffer.from(`s${seq}`).toString("base64url")
const decodeCursor = (cursor: string): string | null => {
  const text = Buffer.from(cursor, "base64url").toString()
  return /^s[1-9][0-9]{0,17}$/.test(text) ? text.slice(1) : null
}

// The two outcomes an Idempotency-Key stores, exactly as first sent.
const created = (view: FormulaView): StoredResponse => ({
  status: 201,
  body: view,
  headers: { location: formulaUrl(view.id) }
})
const duplicate = (problem: DuplicateFormula): StoredResponse => ({
  status: 409,
  body: Schema.encodeUnknownSync(DuplicateFormula)(problem),
  headers: { "content-type": "application/problem+json" }
})

const unavailable = (error: { readonly message: string }) => new ServiceUnavailable({ detail: error.message })

export const FormulasHandlers = HttpApiBuilder.group(
  Api,
  "formulas",
  Effect.fn(function* (handlers) {
    const intake = yield* FormulaIntake
    const store = yield* FormulaStore
    const keys = yield* IdempotencyKeys

    // Validation comes first, before any Idempotency-Key is claimed: a 400 needs no database.
    const decode = (body: unknown) =>
      intake.decode(body).pipe(Effect.mapError((error) => new InvalidFormula({ errors: error.errors })))

    const submit = (formula: Formula) =>
      intake.submitDecoded(formula).pipe(
        Effect.catchTags({
          Duplicate: (error) =>
            Effect.fail(
              withoutStack(
                () =>
                  new DuplicateFormula({
                    detail: `formula ${error.existingId} has the same material make-up`,
                    existingId: error.existingId,
                    existingUrl: formulaUrl(error.existingId)
                  })
              )
            ),
          QueueFull: () => Effect.fail(new QueueFullProblem({ detail: "too many messages await consumers" })),
          DatabaseUnavailable: (error) => Effect.fail(unavailable(error))
        })
      )

    return handlers
      .handleRaw("submit", ({ request }) =>
        Effect.gen(function* () {
          const body = yield* readJsonBody(request)
          const formula = yield* decode(body)
          const key = request.headers["idempotency-key"]
          if (key === undefined) {
            const row = yield* submit(formula)
            return HttpApiSchema.withHeaders({ body: toFormulaView(row), headers: { location: formulaUrl(row.id) } })
          }
          // With a key: the first finished outcome (201 or duplicate 409) is stored and replayed.
          if (key.length === 0 || key.length > maxKeyLength) {
            return yield* new InvalidRequest({
              errors: [{ path: "Idempotency-Key", message: `must be 1–${maxKeyLength} characters` }]
            })
          }
          const result = yield* keys
            .run(
              { scope: request.headers["x-client-id"] ?? "", key, requestHash: requestHash(body) },
              submit(formula).pipe(
                Effect.map((row): StoredResponse => created(toFormulaView(row))),
                Effect.catchTag("DuplicateFormula", (problem) => Effect.succeed(duplicate(problem)))
              )
            )
            .pipe(
              Effect.catchTags({
                KeyReusedWithDifferentBody: () =>
                  Effect.fail(new IdempotencyKeyReused({ detail: `Idempotency-Key ${JSON.stringify(key)}` })),
                KeyInFlight: () =>
                  Effect.fail(new IdempotencyKeyInFlight({ detail: `Idempotency-Key ${JSON.stringify(key)}` })),
                DatabaseUnavailable: (error) => Effect.fail(unavailable(error))
              })
            )
          return HttpServerResponse.jsonUnsafe(result.response.body, {
            status: result.response.status,
            headers: result.replayed
              ? { ...result.response.headers, "idempotent-replayed": "true" }
              : result.response.headers
          })
        })
      )
      .handle("list", ({ query }) =>
        Effect.gen(function* () {
          const beforeSeq = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
          if (beforeSeq === null) {
            return yield* new InvalidRequest({
              errors: [{ path: "cursor", message: "is not a cursor this API returned" }]
            })
          }
          const page = yield* store.page({ limit: query.limit ?? 20, beforeSeq }).pipe(Effect.mapError(unavailable))
          return {
            items: page.items.map(toFormulaView),
            nextCursor: page.nextBeforeSeq === null ? null : encodeCursor(page.nextBeforeSeq)
          }
        })
      )
      .handle("get", ({ params }) =>
        store.findById(params.id).pipe(
          Effect.mapError(unavailable),
          Effect.flatMap((row) =>
            row === undefined
              ? Effect.fail(new FormulaNotFound({ detail: `no formula with id ${params.id}` }))
              : Effect.succeed(toFormulaView(row))
          )
        )
      )
  })
)

export const SystemHandlers = HttpApiBuilder.group(
  Api,
  "system",
  Effect.fn(function* (handlers) {
    const store = yield* FormulaStore
    return handlers.handle("health", () =>
      store.ping.pipe(Effect.as({ status: "ok" as const }), Effect.mapError(unavailable))
    )
  })
)
