/**
 * Handlers for the "queue" group (QueueApi.ts), for whichever HttpApi mounts it:
 *
 *   export const QueueHandlers = makeQueueHandlers(Api)
 *
 * The layer needs `MessageQueue` and `RequestProblems` (provide
 * `layerRequestProblems` after it, as for the other groups).
 *
 * The endpoints with a body read it themselves (`handleRaw`, `decodeJsonBody`)
 * rather than leave it to HttpApi, so that it is judged like a formula's: a
 * content type other than JSON is a 415 problem, malformed JSON a
 * malformed-json 400, and every invalid field is listed at `/body/…`. Their
 * bodies are small (a receipt, a reason), so they are parsed on the event
 * loop, and `maxBodyBytes` keeps that quick whatever a client sends.
 */
import { DateTime, Effect, type Layer } from "effect"
import { HttpApiBuilder, type HttpApi, type HttpApiGroup } from "effect/http-api"
import { MessageQueue } from "../queue/MessageQueue.ts"
import type { ReceiptInvalid } from "../queue/QueueErrors.ts"
import { decodeJsonBody, decodeOptionalJsonBody } from "./JsonBody.ts"
import { AckRequest, ExtendRequest, NackRequest, QueueApi, QueueReceiptInvalid, ReceiveRequest } from "./QueueApi.ts"

/** The largest body a queue request may have (a receipt, a reason of at most 4096 characters, room to grow). */
export const maxBodyBytes = 128 * 1024
import type { RequestProblems } from "./RequestProblems.ts"

const toProblem = (error: ReceiptInvalid) =>
  Effect.fail(new QueueReceiptInvalid({ receipt: error.receipt, detail: error.message }))

/**
 * The handlers layer for `api`, which must include `QueueApi`. Parameterised by
 * the API so it can be built against the application's Api (whose API-level
 * annotations and middleware apply) without this module importing it.
 */
export const makeQueueHandlers = <ApiId extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<ApiId, Groups | typeof QueueApi>
): Layer.Layer<HttpApiGroup.Service<ApiId, "queue">, never, MessageQueue | RequestProblems> =>
  HttpApiBuilder.group(
    // The group is looked up by name at runtime; typing against QueueApi alone
    // keeps the handlers checked whatever else the API holds.
    api as unknown as HttpApi.HttpApi<ApiId, typeof QueueApi>,
    "queue",
    Effect.fn(function* (handlers) {
      const queue = yield* MessageQueue
      return handlers
        .handleRaw("receive", ({ request }) =>
          decodeOptionalJsonBody(request, ReceiveRequest, maxBodyBytes).pipe(
            Effect.flatMap((payload) =>
              queue.receive({
                max: payload?.max,
                visibilityTimeout: payload?.visibilityTimeoutMs,
                wait: payload?.waitMs
              })
            ),
            Effect.map((messages) => ({ messages }))
          )
        )
        .handleRaw("ack", ({ request }) =>
          decodeJsonBody(request, AckRequest, maxBodyBytes).pipe(
            Effect.flatMap((payload) => queue.ack(payload.receipt)),
            Effect.catchTag("ReceiptInvalid", toProblem)
          )
        )
        .handleRaw("nack", ({ request }) =>
          decodeJsonBody(request, NackRequest, maxBodyBytes).pipe(
            Effect.flatMap((payload) => queue.nack(payload.receipt, { delay: payload.delayMs, error: payload.error })),
            Effect.catchTag("ReceiptInvalid", toProblem)
          )
        )
        .handleRaw("extend", ({ request }) =>
          decodeJsonBody(request, ExtendRequest, maxBodyBytes).pipe(
            Effect.flatMap((payload) => queue.extend(payload.receipt, payload.visibilityTimeoutMs)),
            Effect.catchTag("ReceiptInvalid", toProblem)
          )
        )
        .handle("stats", () => queue.stats)
        .handle("deadLetters", () =>
          Effect.map(queue.deadLetters, (letters) => ({
            messages: letters.map((letter) => ({
              messageId: letter.messageId,
              attempts: letter.attempts,
              lastError: letter.lastError,
              body: letter.body,
              deadLetteredAt: DateTime.formatIso(DateTime.makeUnsafe(letter.deadLetteredAt))
            }))
          }))
        )
        .handle("redrive", () => Effect.map(queue.redrive(), (redriven) => ({ redriven })))
        .handle("purge", () => Effect.map(queue.purge(), (purged) => ({ purged })))
    })
  )
