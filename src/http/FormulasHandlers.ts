import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { MessageQueue } from "../queue/MessageQueue.ts"
import { type FormulaRow, FormulaStore } from "../store/FormulaStore.ts"
import { ServedApi } from "./Api.ts"
import { decodeCursor, encodeCursor } from "./Cursor.ts"
import { toFormulaView } from "./FormulaView.ts"
import { FormulaNotFound, InvalidRequest, ServiceUnavailable } from "./Problems.ts"

const unavailable = (error: { readonly message: string }) => new ServiceUnavailable({ detail: error.message })

/** `GET /formulas` and `GET /formulas/:id`; `POST /formulas` is SubmitRoute.ts. */
export const FormulasHandlers = HttpApiBuilder.group(
  ServedApi,
  "formulas",
  Effect.fn(function* (handlers) {
    const store = yield* FormulaStore
    const queue = yield* MessageQueue
    const view = (row: FormulaRow) => toFormulaView(row, queue.attemptsOf)

    return handlers
      .handle("list", ({ query }) =>
        Effect.gen(function* () {
          // The query's schema (Cursor) has already rejected any cursor this API did not return.
          const beforeSeq = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
          if (beforeSeq === null) {
            return yield* new InvalidRequest({
              errors: [{ path: "/query/cursor", message: "is not a cursor this API returned" }]
            })
          }
          const page = yield* store.page({ limit: query.limit ?? 20, beforeSeq }).pipe(Effect.mapError(unavailable))
          return {
            items: page.items.map(view),
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
              : Effect.succeed(view(row))
          )
        )
      )
  })
)

export const SystemHandlers = HttpApiBuilder.group(
  ServedApi,
  "system",
  Effect.fn(function* (handlers) {
    const store = yield* FormulaStore
    return handlers.handle("health", () =>
      store.ping.pipe(Effect.as({ status: "ok" as const }), Effect.mapError(unavailable))
    )
  })
)
