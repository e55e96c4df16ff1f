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
import type { AckNotRecorded, ReceiptInvalid } from "../queue/QueueErrors.ts"
import { encodeResult, maxResultBytes } from "../domain/MessageResult.ts"
import { decodeJsonBody, decodeOptionalJsonBody } from "./JsonBody.ts"
import { type InvalidRequest, ServiceUnavailable } from "./Problems.ts"
import { invalidRequest, type RequestProblems } from "./RequestProblems.ts"
import { AckRequest, ExtendRequest, NackRequest, QueueApi, QueueReceiptInvalid, ReceiveRequest } from "./QueueApi.ts"

/** The largest body a queue request may have (a receipt, a reason of at most 4096 characters, room to grow). */
export const maxBodyBytes = 128 * 1024

/** An ack's body: a result of up to 64 KiB serialized, with room for the client's own whitespace. */
export const maxAckBodyBytes = 256 * 1024

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
          decodeJsonBody(request, AckRequest, maxAckBodyBytes).pipe(
            Effect.flatMap((payload): Effect.Effect<void, InvalidRequest | ReceiptInvalid | AckNotRecorded> => {
              const encoded = encodeResult(payload.result)
              if (encoded._tag !== "Encoded") {
                const message =
                  encoded._tag === "TooLarge"
                    ? `must be at most ${maxResultBytes} bytes serialized, is ${encoded.bytes}`
                    : `must be JSON: ${encoded.reason}`
                return Effect.fail(invalidRequest([{ path: "/body/result", message }]))
              }
              return queue.ack(payload.receipt, { result: payload.result })
            }),
            Effect.catchTag("ReceiptInvalid", toProblem),
            // Nothing changed; the receipt still holds: the consumer may ack again.
            Effect.catchTag("AckNotRecorded", (error) => Effect.fail(new ServiceUnavailable({ detail: error.message })))
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
