/**
 * The message queue over HTTP, for consumers outside the process: the same
 * receive / ack / nack / extend operations as the in-process API, plus the
 * dead-letter list. Described apart from its handlers (QueueHandlers.ts).
 */
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiError, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { documented, example } from "./Documented.ts"
import { receipt, summerBreezeMessageId, summerBreezeSubmitted } from "./Examples.ts"
import { maxResultBytes } from "../domain/MessageResult.ts"
import {
  InvalidRequest,
  MalformedJson,
  PayloadTooLarge,
  ServiceUnavailable,
  UnsupportedMediaType,
  problemMembers
} from "./Problems.ts"
import { RequestProblems } from "./RequestProblems.ts"

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

export const AckRequest = Schema.Struct({
  receipt: Receipt,
  result: Schema.optionalKey(Schema.Unknown).annotate({
    description: `What came of the message: any JSON value of at most ${maxResultBytes} bytes serialized (64 KiB). Stored once: a redelivered message acked again keeps the first result. Shown on GET /formulas/{id} and sent in the formula.processed webhook event.`
  })
})

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

const Count = Schema.Natural

export const QueueDelivery = Schema.Struct({
  messageId: Schema.String,
  receipt: Schema.String,
  attempt: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)).annotate({ description: "1 on the first delivery" }),
  body: Schema.Unknown
})

export const QueueDeadLetter = Schema.Struct({
  messageId: Schema.String,
  attempts: Count,
  lastError: Schema.String,
  body: Schema.Unknown,
  deadLetteredAt: Schema.String.annotate({ description: "ISO 8601" })
})

export const QueueStatsView = Schema.Struct({
  ready: Count,
  pending: Count,
  delayed: Count,
  inFlight: Count,
  deadLettered: Count,
  capacity: Count,
  size: Count.annotate({ description: "pending + ready + delayed + inFlight (what counts against capacity)" }),
  available: Count,
  waiting: Count.annotate({ description: "Receivers currently long-polling" }),
  maxDeliveries: Count,
  visibilityTimeoutMs: Count,
  totals: Schema.Struct({
    published: Count,
    duplicates: Count,
    aborted: Count,
    delivered: Count,
    redelivered: Count,
    acked: Count,
    nacked: Count,
    expired: Count,
    released: Count,
    deadLettered: Count,
    redriven: Count,
    purged: Count
  })
})

const Received = Schema.Struct({ messages: Schema.Array(QueueDelivery) })
const DeadLetters = Schema.Struct({ messages: Schema.Array(QueueDeadLetter) })
const Redriven = Schema.Struct({ redriven: Count })
const Purged = Schema.Struct({ purged: Count })

// ---- examples: Summer Breeze's FormulaSubmitted message, delivered, worked on and acked

const delivery = { messageId: summerBreezeMessageId, receipt, attempt: 1, body: summerBreezeSubmitted }

const receiptProblem = example(
  QueueReceiptInvalid,
  "Stale receipt",
  new QueueReceiptInvalid({
    receipt,
    detail: `Receipt ${receipt} is unknown, stale (the message was redelivered since) or already settled`
  })
)

const notJson = example(
  UnsupportedMediaType,
  "Not JSON content type",
  new UnsupportedMediaType({ detail: "content-type text/plain is not JSON" })
)

const invalid = (path: string, message: string) => [
  example(InvalidRequest, "Invalid request", new InvalidRequest({ errors: [{ path, message }] })),
  example(MalformedJson, "Not JSON", new MalformedJson({ detail: "Unexpected end of JSON input" }))
]

const tooLarge = example(
  PayloadTooLarge,
  "Body too large",
  new PayloadTooLarge({ detail: "this request takes a body of at most 128 KiB" })
)

const receive = HttpApiEndpoint.post("receive", "/queue/receive", {
  // An empty body means all defaults.
  payload: [ReceiveRequest, Schema.Null],
  success: Received,
  error: bodyProblems
}).annotateMerge(
  documented({
    summary: "Receive messages",
    description:
      "Up to `max` ready messages, each with a fresh receipt, invisible to other consumers for the visibility timeout. " +
      "Waits up to `waitMs` for at least one (a long poll); the list may be empty. " +
      "Ack each message when done, nack it to have it redelivered, extend it while the work takes longer.",
    request: example(ReceiveRequest, "Long poll for up to 10, 30 s to work on them", {
      max: 10,
      visibilityTimeoutMs: 30_000,
      waitMs: 20_000
    }),
    responses: {
      200: example(Received, "One message", { messages: [delivery] }),
      400: invalid("/body/max", "Expected a value between 1 and 100"),
      413: tooLarge,
      415: notJson
    }
  })
)

const ack = HttpApiEndpoint.post("ack", "/queue/ack", {
  payload: AckRequest,
  success: HttpApiSchema.NoContent,
  error: [QueueReceiptInvalid, ServiceUnavailable, ...bodyProblems]
}).annotateMerge(
  documented({
    summary: "Acknowledge a delivery, with its result",
    description:
      "The message is processed: its formula shows it processed, with `result`, and the formula's client is sent a formula.processed event. " +
      "Durable when answered: 204 only once that is committed. " +
      "503 if it could not be (the database is unavailable): nothing changed, the message is still yours under the same receipt, so ack again (or it is redelivered after its visibility timeout). " +
      "409 if the receipt is not the message's current one (it was redelivered since, or already settled): nothing is stored, another consumer owns it now. " +
      `400 for a result over ${maxResultBytes} bytes serialized.`,
    request: [
      example(AckRequest, "Done, with a result", {
        receipt,
        result: { concentrationClass: "Eau de Parfum", total: 30.7 }
      }),
      example(AckRequest, "Done, no result", { receipt })
    ],
    responses: {
      400: [
        ...invalid("/body/receipt", "is required"),
        example(
          InvalidRequest,
          "Result too large",
          new InvalidRequest({
            errors: [{ path: "/body/result", message: `must be at most ${maxResultBytes} bytes serialized, is 70012` }]
          })
        )
      ],
      409: receiptProblem,
      413: example(
        PayloadTooLarge,
        "Body too large",
        new PayloadTooLarge({ detail: "this request takes a body of at most 256 KiB" })
      ),
      415: notJson,
      503: example(
        ServiceUnavailable,
        "Database unavailable (ack not recorded)",
        new ServiceUnavailable({ detail: "database unavailable: Connection terminated unexpectedly" })
      )
    }
  })
)

const nack = HttpApiEndpoint.post("nack", "/queue/nack", {
  payload: NackRequest,
  success: HttpApiSchema.NoContent,
  error: [QueueReceiptInvalid, ...bodyProblems]
}).annotateMerge(
  documented({
    summary: "Give a delivery back",
    description:
      "Processing failed: the message is redelivered after `delayMs`, or moves to the dead letters once it has been delivered maxDeliveries times.",
    request: example(NackRequest, "Failed, retry in 5 s", {
      receipt,
      delayMs: 5_000,
      error: "classifier unavailable"
    }),
    responses: {
      400: invalid("/body/delayMs", "Expected a value between 0 and 43200000"),
      409: receiptProblem,
      413: tooLarge,
      415: notJson
    }
  })
)

const extend = HttpApiEndpoint.post("extend", "/queue/extend", {
  payload: ExtendRequest,
  success: HttpApiSchema.NoContent,
  error: [QueueReceiptInvalid, ...bodyProblems]
}).annotateMerge(
  documented({
    summary: "Extend a delivery's visibility",
    description: "Still working: the message stays invisible to other consumers until now + `visibilityTimeoutMs`.",
    request: example(ExtendRequest, "30 s more", { receipt, visibilityTimeoutMs: 30_000 }),
    responses: {
      400: invalid("/body/visibilityTimeoutMs", "is required"),
      409: receiptProblem,
      413: tooLarge,
      415: notJson
    }
  })
)

const stats = HttpApiEndpoint.get("stats", "/queue/stats", {
  success: QueueStatsView
}).annotateMerge(
  documented({
    summary: "Queue sizes and totals",
    description: "How many messages are in each state now, and how many went through each transition since start-up.",
    responses: {
      200: example(QueueStatsView, "One message in flight", {
        ready: 0,
        pending: 0,
        delayed: 0,
        inFlight: 1,
        deadLettered: 0,
        capacity: 10_000,
        size: 1,
        available: 9_999,
        waiting: 0,
        maxDeliveries: 5,
        visibilityTimeoutMs: 30_000,
        totals: {
          published: 1,
          duplicates: 0,
          aborted: 0,
          delivered: 1,
          redelivered: 0,
          acked: 0,
          nacked: 0,
          expired: 0,
          released: 0,
          deadLettered: 0,
          redriven: 0,
          purged: 0
        }
      })
    }
  })
)

const deadLetters = HttpApiEndpoint.get("deadLetters", "/queue/dead-letters", {
  success: DeadLetters
}).annotateMerge(
  documented({
    summary: "List dead letters",
    description:
      "Messages that were delivered maxDeliveries times without an ack, oldest first, with their last error.",
    responses: {
      200: example(DeadLetters, "One dead letter", {
        messages: [
          {
            messageId: summerBreezeMessageId,
            attempts: 5,
            lastError: "classifier unavailable",
            body: summerBreezeSubmitted,
            deadLetteredAt: "2026-12-01T02:24:11.042Z"
          }
        ]
      })
    }
  })
)

const redrive = HttpApiEndpoint.post("redrive", "/queue/dead-letters/redrive", {
  success: Redriven
}).annotateMerge(
  documented({
    summary: "Redrive dead letters",
    description:
      "Makes dead letters ready again, their attempts counted from 1. Only as many as the free capacity allows; the rest stay.",
    responses: { 200: example(Redriven, "One redriven", { redriven: 1 }) }
  })
)

const purge = HttpApiEndpoint.delete("purge", "/queue/dead-letters", {
  success: Purged
}).annotateMerge(
  documented({
    summary: "Purge dead letters",
    description: "Drops every dead letter for good.",
    responses: { 200: example(Purged, "One purged", { purged: 1 }) }
  })
)

export class QueueApi extends HttpApiGroup.make("queue")
  .add(receive, ack, nack, extend, stats, deadLetters, redrive, purge)
  // Also set on the whole Api; declared here so the group answers 400s as
  // problems wherever it is mounted (the middleware set is de-duplicated).
  .middleware(RequestProblems)
  .annotateMerge(
    OpenApi.annotations({
      title: "Queue",
      description:
        "The message queue for consumers outside the process: every new formula's FormulaSubmitted message, delivered at least once; dedupe by messageId."
    })
  ) {}
