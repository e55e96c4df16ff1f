/**
 * The formulas endpoints, described apart from their handlers so clients and
 * the OpenAPI document can use the description alone.
 */
import { Schema } from "effect"
import { FormulaRequestJson, MaterialJson } from "../domain/Formula.ts"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { documented, example } from "./Documented.ts"
import {
  summerBreeze,
  summerBreezeCreatedAt,
  summerBreezeDeliveredAt,
  summerBreezeFingerprint,
  summerBreezeId,
  summerBreezeMessageId,
  summerBreezeResult
} from "./Examples.ts"
import { formulaUrl } from "./FormulaView.ts"
import {
  DuplicateFormula,
  duplicateFormulaBody,
  FormulaNotFound,
  IdempotencyKeyInFlight,
  IdempotencyKeyReused,
  InvalidFormula,
  InvalidRequest,
  MalformedJson,
  PayloadTooLarge,
  QueueFullProblem,
  ServiceUnavailable,
  UnsupportedMediaType
} from "./Problems.ts"
import { Cursor } from "./Cursor.ts"
import { QueryInt } from "./QueryInt.ts"

export const MessageStatus = Schema.Literals(["pending", "processed", "dead-lettered", "purged"]).annotate({
  description:
    "pending: not yet acknowledged (queued, in flight, or redriven); processed: a consumer acknowledged it; " +
    "dead-lettered: delivered maxDeliveries times without an ack (see lastError), until redriven or purged; purged: dropped as a dead letter."
})
export type MessageStatus = typeof MessageStatus.Type

const Timestamp = Schema.NullOr(Schema.String.annotate({ description: "ISO 8601" }))

export const MessageView = Schema.Struct({
  id: Schema.String,
  status: MessageStatus,
  attempts: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).annotate({
    description: "Deliveries so far (pending), or when it was processed or dead-lettered"
  }),
  processedAt: Timestamp.annotate({ description: "When a consumer acknowledged it; null until then" }),
  result: Schema.Unknown.annotate({
    description: "The result the first acknowledging consumer gave (any JSON); null when none or not yet processed"
  }),
  lastError: Schema.NullOr(Schema.String).annotate({
    description: "Why its last delivery failed, for a dead-lettered (or purged) message; else null"
  }),
  deadLetteredAt: Timestamp.annotate({ description: "When it was dead-lettered, while it is (or was, if purged)" }),
  deliveredAt: Timestamp.annotate({ description: "Same as processedAt (its earlier name)" })
}).annotate({ description: "The formula's FormulaSubmitted message: how its processing ended, and its result." })

export const FormulaView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  fingerprint: Schema.String.annotate({ description: "SHA-256 of the canonical material make-up (hex)." }),
  materials: Schema.Array(MaterialJson),
  createdAt: Schema.String,
  message: MessageView
})
export type FormulaView = typeof FormulaView.Type

export const FormulaPage = Schema.Struct({
  items: Schema.Array(FormulaView),
  nextCursor: Schema.NullOr(Schema.String)
})

/** Summer Breeze as stored, its message not yet acknowledged. */
const stored: FormulaView = {
  id: summerBreezeId,
  name: summerBreeze.name,
  fingerprint: summerBreezeFingerprint,
  materials: summerBreeze.materials,
  createdAt: summerBreezeCreatedAt,
  message: {
    id: summerBreezeMessageId,
    status: "pending",
    attempts: 0,
    processedAt: null,
    result: null,
    lastError: null,
    deadLetteredAt: null,
    deliveredAt: null
  }
}

/** …and once a consumer has acknowledged its message with a result. */
const delivered: FormulaView = {
  ...stored,
  message: {
    id: summerBreezeMessageId,
    status: "processed",
    attempts: 1,
    processedAt: summerBreezeDeliveredAt,
    result: summerBreezeResult,
    lastError: null,
    deadLetteredAt: null,
    deliveredAt: summerBreezeDeliveredAt
  }
}

/** …or once its message was dead-lettered. */
const deadLettered: FormulaView = {
  ...stored,
  message: {
    id: summerBreezeMessageId,
    status: "dead-lettered",
    attempts: 5,
    processedAt: null,
    result: null,
    lastError: "classifier unavailable",
    deadLetteredAt: "2026-12-01T02:24:11.042Z",
    deliveredAt: null
  }
}

const idempotencyKey = "summer-breeze-2026-12-01"

const databaseUnavailable = example(
  ServiceUnavailable,
  "Database unavailable",
  new ServiceUnavailable({ detail: "database did not answer in time" })
)

const Limit = QueryInt({ minimum: 1, maximum: 100 })

/**
 * `POST /formulas` as documented. It is served by a route of its own
 * (SubmitRoute.ts), not by HttpApi: that is the service's hot path.
 */
const submit = HttpApiEndpoint.post("submit", "/formulas", {
  // Documented with the domain's schema; the route parses the raw body itself to keep decimals exact.
  payload: FormulaRequestJson,
  headers: {
    "idempotency-key": Schema.optional(Schema.String).annotate({
      description: "1–255 characters. Repeating it with the same body replays the first 201 or 409."
    }),
    "x-client-id": Schema.optional(Schema.String).annotate({
      description:
        "Up to 255 characters. The client whose formula it becomes: its webhook endpoints hear of it (formula.created, then how it was processed). Also scopes Idempotency-Key."
    })
  },
  success: HttpApiSchema.WithHeaders(FormulaView, { location: Schema.String }).pipe(HttpApiSchema.status(201)),
  error: [
    InvalidFormula,
    InvalidRequest,
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    DuplicateFormula,
    IdempotencyKeyReused,
    IdempotencyKeyInFlight,
    QueueFullProblem,
    ServiceUnavailable
  ]
}).annotateMerge(
  documented({
    summary: "Submit a formula",
    description:
      "Stores a new material make-up once and publishes its FormulaSubmitted message (receivable from the queue before the 201 is sent). " +
      "The make-up is the materials' names and concentrations, whatever their order, case, spacing or decimal spelling; the formula's own name is not part of it. " +
      "A make-up that exists answers 409 with the existing formula's id and URL. " +
      "With an `Idempotency-Key`, a repeated request gets the first 201 or 409 again, with `Idempotent-Replayed: true`.",
    parameters: { "idempotency-key": idempotencyKey, "x-client-id": "atelier-grasse" },
    request: example(FormulaRequestJson, "Summer Breeze", summerBreeze),
    responses: {
      201: example(FormulaView, "Stored", stored),
      400: [
        example(
          InvalidFormula,
          "Invalid formula (every problem listed)",
          new InvalidFormula({
            errors: [
              { path: "/name", message: "must not be empty" },
              { path: "/materials/1/concentration", message: "must have at most 6 decimal places" },
              {
                path: "/materials/1/name",
                message:
                  "duplicates the name at /materials/0/name (names are compared ignoring case, whitespace and Unicode compatibility forms)"
              }
            ]
          })
        ),
        example(
          MalformedJson,
          "Not JSON",
          new MalformedJson({
            detail:
              "body is not valid JSON: Expected ',' or ']' after array element in JSON at position 81 (line 1 column 82)"
          })
        ),
        example(
          InvalidRequest,
          "Idempotency-Key too long",
          new InvalidRequest({ errors: [{ path: "Idempotency-Key", message: "must be 1–255 characters" }] })
        )
      ],
      409: [
        example(
          DuplicateFormula,
          "Make-up already stored",
          new DuplicateFormula({
            existingId: summerBreezeId,
            existingUrl: formulaUrl(summerBreezeId),
            detail: duplicateFormulaBody(summerBreezeId).detail
          })
        ),
        example(
          IdempotencyKeyInFlight,
          "Same Idempotency-Key still in flight",
          new IdempotencyKeyInFlight({ detail: `Idempotency-Key ${JSON.stringify(idempotencyKey)}` })
        )
      ],
      413: example(PayloadTooLarge, "Body over 1 MiB", new PayloadTooLarge({})),
      415: example(
        UnsupportedMediaType,
        "Not JSON content type",
        new UnsupportedMediaType({ detail: "content-type text/plain is not JSON" })
      ),
      422: example(
        IdempotencyKeyReused,
        "Idempotency-Key reused with another body",
        new IdempotencyKeyReused({ detail: `Idempotency-Key ${JSON.stringify(idempotencyKey)}` })
      ),
      503: [
        example(
          QueueFullProblem,
          "Queue full (nothing stored)",
          new QueueFullProblem({ detail: "too many messages await consumers" })
        ),
        databaseUnavailable
      ]
    }
  })
)

const list = HttpApiEndpoint.get("list", "/formulas", {
  query: {
    limit: Schema.optional(Limit).annotate({ description: "1–100, default 20" }),
    cursor: Schema.optional(Cursor).annotate({ description: "nextCursor of the previous page" })
  },
  success: FormulaPage,
  error: [InvalidRequest, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "List formulas",
    description:
      "Newest first, `limit` at a time (1–100, default 20). Pass `nextCursor` back as `cursor` for the next page; it is null on the last.",
    parameters: { limit: "20", cursor: "czI" },
    responses: {
      200: example(FormulaPage, "A page of one, more to come", { items: [delivered], nextCursor: "czI" }),
      400: example(
        InvalidRequest,
        "Limit out of range",
        new InvalidRequest({ errors: [{ path: "/query/limit", message: "Expected a value between 1 and 100" }] })
      ),
      503: databaseUnavailable
    }
  })
)

const get = HttpApiEndpoint.get("get", "/formulas/:id", {
  params: {
    id: Schema.String.annotate({ description: "The id POST /formulas returned" })
  },
  success: FormulaView,
  error: [FormulaNotFound, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Get a formula",
    description:
      "The formula with its materials and how its FormulaSubmitted message ended: pending until a consumer acks it, then processed with the consumer's result; dead-lettered (with its last error) after maxDeliveries failed deliveries, pending again once redriven, purged once dropped. 404 for an id that names no formula, malformed ones included.",
    parameters: { id: summerBreezeId },
    responses: {
      200: [example(FormulaView, "Processed", delivered), example(FormulaView, "Dead-lettered", deadLettered)],
      404: example(
        FormulaNotFound,
        "Unknown id",
        new FormulaNotFound({ detail: "no formula with id 01a22f66-b2c8-7410-9cab-b37f7e77cb18" })
      ),
      503: databaseUnavailable
    }
  })
)

const formulasTag = OpenApi.annotations({
  title: "Formulas",
  description:
    "Submit fragrance formulas and read them back. Each distinct material make-up is stored once and announced once."
})

/** The formulas endpoints, as documented (OpenAPI, the docs page, clients). */
export class FormulasApi extends HttpApiGroup.make("formulas").add(submit, list, get).annotateMerge(formulasTag) {}

/** The formulas endpoints HttpApi serves: all but `submit`, which SubmitRoute.ts serves. */
export class FormulasServedApi extends HttpApiGroup.make("formulas").add(list, get).annotateMerge(formulasTag) {}
