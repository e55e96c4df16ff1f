/**
 * The formulas endpoints, described apart from their handlers so clients and
 * the OpenAPI document can use the description alone.
 */
import { Schema } from "effect"
import { FormulaRequestJson, MaterialJson } from "../domain/Formula.ts"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import {
  DuplicateFormula,
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

export const MessageView = Schema.Struct({
  id: Schema.String,
  status: Schema.Literals(["pending", "delivered"]),
  deliveredAt: Schema.NullOr(Schema.String)
}).annotate({ description: "The formula's FormulaSubmitted message and whether a consumer has acknowledged it." })

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
    "x-client-id": Schema.optional(Schema.String).annotate({ description: "Scopes Idempotency-Key per client." })
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
  OpenApi.annotations({
    summary: "Submit a formula",
    description:
      "Stores a new material make-up once and publishes its FormulaSubmitted message. A make-up that exists answers 409 with the existing formula's id."
  })
)

const list = HttpApiEndpoint.get("list", "/formulas", {
  query: {
    limit: Schema.optional(Limit).annotate({ description: "1–100, default 20" }),
    cursor: Schema.optional(Cursor).annotate({ description: "nextCursor of the previous page" })
  },
  success: FormulaPage,
  error: [InvalidRequest, ServiceUnavailable]
}).annotateMerge(OpenApi.annotations({ summary: "List formulas, newest first" }))

const get = HttpApiEndpoint.get("get", "/formulas/:id", {
  params: { id: Schema.String },
  success: FormulaView,
  error: [FormulaNotFound, ServiceUnavailable]
}).annotateMerge(OpenApi.annotations({ summary: "Get one formula with its materials and delivery state" }))

/** The formulas endpoints, as documented (OpenAPI, the docs page, clients). */
export class FormulasApi extends HttpApiGroup.make("formulas")
  .add(submit, list, get)
  .annotateMerge(OpenApi.annotations({ title: "Formulas" })) {}

/** The formulas endpoints HttpApi serves: all but `submit`, which SubmitRoute.ts serves. */
export class FormulasServedApi extends HttpApiGroup.make("formulas")
  .add(list, get)
  .annotateMerge(OpenApi.annotations({ title: "Formulas" })) {}
