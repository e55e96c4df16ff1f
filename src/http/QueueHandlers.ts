/**
 * Handlers for the "queue" group (QueueApi.ts), for whichever HttpApi mounts it:
 *
 *   export const QueueHandlers = makeQueueHandlers(Api)
 *
 * The layer needs `MessageQueue` and `RequestProblems` (provide
 * `layerRequestProblems` after it, as for the other groups).
 */
import { DateTime, Effect, type Layer } from "effect"
import { HttpApiBuilder, type HttpApi, type HttpApiGroup } from "effect/http-api"
import { MessageQueue } from "../queue/MessageQueue.ts"
import type { ReceiptInvalid } from "../queue/QueueErrors.ts"
import { QueueApi, QueueReceiptInvalid } from "./QueueApi.ts"
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
        .handle("receive", ({ payload }) =>
          Effect.map(
            queue.receive({
              max: payload?.max,
              visibilityTimeout: payload?.visibilityTimeoutMs,
              wait: payload?.waitMs
            }),
            (messages) => ({ messages })
          )
        )
        .handle("ack", ({ payload }) => queue.ack(payload.receipt).pipe(Effect.catchTag("ReceiptInvalid", toProblem)))
        .handle("nack", ({ payload }) =>
          queue
            .nack(payload.receipt, { delay: payload.delayMs, error: payload.error })
            .pipe(Effect.catchTag("ReceiptInvalid", toProblem))
        )
        .handle("extend", ({ payload }) =>
          queue.extend(payload.receipt, payload.visibilityTimeoutMs).pipe(Effect.catchTag("ReceiptInvalid", toProblem))
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
