/**
 * The message queue over HTTP, for consumers outside the process: the same
 * receive / ack / nack / extend operations as the in-process API, plus the
 * dead-letter list. Described apart from its handlers (QueueHandlers.ts).
 */
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiError, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import { InvalidRequest, MalformedJson, PayloadTooLarge, UnsupportedMediaType, problemMembers } from "./Problems.ts"

/** A receipt or the stale / unknown / settled receipt problem: 409, RFC 9457. */
export class QueueReceiptInvalid extends HttpApiError.Problem<QueueReceiptInvalid>()(
  "QueueReceiptInvalid",
  {
    type: "urn:formula-intake:problem:queue-receipt-invalid",
    status: 409,
    title: "The receipt does not name a current delivery"
  },
  { receipt: Schema.String, ...problemMembers }
) {}

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** Upper bounds in the spirit of SQS: 12 h visibility and delays, 20 s long polls. */
export const limits = {
  maxMessages: 100,
  visibilityTimeoutMs: 43_200_000,
  waitMs: 20_000,
  delayMs: 43_200_000
} as const

const Receipt = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(256)).annotate({
  description: "The receipt of one delivery, as returned by /queue/receive"
})

export const ReceiveRequest = Schema.Struct({
  max: Schema.optionalKey(int(1, limits.maxMessages)).annotate({ description: "1–100, default 1" }),
  visibilityTimeoutMs: Schema.optionalKey(int(0, limits.visibilityTimeoutMs)).annotate({
    description: "How long the messages stay invisible to other consumers; default QUEUE_VISIBILITY_TIMEOUT_MS"
  }),
  waitMs: Schema.optionalKey(int(0, limits.waitMs)).annotate({
    description: "Long poll: wait up to this long for a message; default 0"
  })
})

export const AckRequest = Schema.Struct({ receipt: Receipt })

export const NackRequest = Schema.Struct({
  receipt: Receipt,
  delayMs: Schema.optionalKey(int(0, limits.delayMs)).annotate({
    description: "Stay invisible this long before redelivery; default 0"
  }),
  error: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(4096))).annotate({
    description: "Why processing failed; kept as the message's last error"
  })
})

export const ExtendRequest = Schema.Struct({
  receipt: Receipt,
  visibilityTimeoutMs: int(0, limits.visibilityTimeoutMs)
})

/** What a queue request's JSON body can be answered with (QueueHandlers.ts reads and decodes it). */
const bodyProblems = [InvalidRequest, MalformedJson, UnsupportedMediaType, PayloadTooLarge] as const

export const QueueDelivery = Schema.Struct({
  messageId: Schema.String,
  receipt: Schema.String,
  attempt: Schema.Int.annotate({ description: "1 on the first delivery" }),
  body: Schema.Unknown
})

export const QueueDeadLetter = Schema.Struct({
  messageId: Schema.String,
  attempts: Schema.Int,
  lastError: Schema.String,
  body: Schema.Unknown,
  deadLetteredAt: Schema.String.annotate({ description: "ISO 8601" })
})

export const QueueStatsView = Schema.Struct({
  ready: Schema.Int,
  pending: Schema.Int,
  delayed: Schema.Int,
  inFlight: Schema.Int,
  deadLettered: Schema.Int,
  capacity: Schema.Int,
  size: Schema.Int.annotate({ description: "pending + ready + delayed + inFlight (what counts against capacity)" }),
  available: Schema.Int,
  waiting: Schema.Int.annotate({ description: "Receivers currently long-polling" }),
  maxDeliveries: Schema.Int,
  visibilityTimeoutMs: Schema.Int,
  totals: Schema.Struct({
    published: Schema.Int,
    duplicates: Schema.Int,
    aborted: Schema.Int,
    delivered: Schema.Int,
    redelivered: Schema.Int,
    acked: Schema.Int,
    nacked: Schema.Int,
    expired: Schema.Int,
    released: Schema.Int,
    deadLettered: Schema.Int,
    redriven: Schema.Int,
    purged: Schema.Int
  })
})

export class QueueApi extends HttpApiGroup.make("queue")
  .add(
    HttpApiEndpoint.post("receive", "/queue/receive", {
      // An empty body means all defaults.
      payload: [ReceiveRequest, Schema.Null],
      success: Schema.Struct({ messages: Schema.Array(QueueDelivery) }),
      error: bodyProblems
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Receive messages",
        description:
          "Up to `max` ready messages, each with a fresh receipt, invisible to others for the visibility timeout. Waits up to `waitMs` for at least one; possibly empty."
      })
    ),
    HttpApiEndpoint.post("ack", "/queue/ack", {
      payload: AckRequest,
      success: HttpApiSchema.NoContent,
      error: [QueueReceiptInvalid, ...bodyProblems]
    }).annotateMerge(OpenApi.annotations({ summary: "Acknowledge a delivery: the message is done" })),
    HttpApiEndpoint.post("nack", "/queue/nack", {
      payload: NackRequest,
      success: HttpApiSchema.NoContent,
      error: [QueueReceiptInvalid, ...bodyProblems]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Give a delivery back for redelivery",
        description: "After maxDeliveries deliveries the message moves to the dead letters instead."
      })
    ),
    HttpApiEndpoint.post("extend", "/queue/extend", {
      payload: ExtendRequest,
      success: HttpApiSchema.NoContent,
      error: [QueueReceiptInvalid, ...bodyProblems]
    }).annotateMerge(OpenApi.annotations({ summary: "Keep a delivery invisible: new deadline = now + timeout" })),
    HttpApiEndpoint.get("stats", "/queue/stats", {
      success: QueueStatsView
    }).annotateMerge(OpenApi.annotations({ summary: "Queue sizes and totals" })),
    HttpApiEndpoint.get("deadLetters", "/queue/dead-letters", {
      success: Schema.Struct({ messages: Schema.Array(QueueDeadLetter) })
    }).annotateMerge(OpenApi.annotations({ summary: "List dead letters, oldest first" })),
    HttpApiEndpoint.post("redrive", "/queue/dead-letters/redrive", {
      success: Schema.Struct({ redriven: Schema.Int })
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Make dead letters ready again",
        description: "Attempts count from 1 again. Only as many as the free capacity allows; the rest stay."
      })
    ),
    HttpApiEndpoint.delete("purge", "/queue/dead-letters", {
      success: Schema.Struct({ purged: Schema.Int })
    }).annotateMerge(OpenApi.annotations({ summary: "Drop all dead letters" }))
  )
  // Also set on the whole Api; declared here so the group answers 400s as
  // problems wherever it is mounted (the middleware set is de-duplicated).
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotateMerge(
    OpenApi.annotations({
      title: "Queue",
      description: "The message queue for external consumers: at-least-once delivery, dedupe by messageId."
    })
  ) {}
