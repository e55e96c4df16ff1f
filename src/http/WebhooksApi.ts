/**
 * The webhook endpoint API: a client (X-Client-Id, required on every route)
 * registers URLs to which events about its formulas are pushed, and watches
 * and retries their deliveries. Described apart from its handlers
 * (WebhooksHandlers.ts).
 */
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiError, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { subscribableEvents } from "../webhooks/WebhookEvents.ts"
import { documented, example } from "./Documented.ts"
import {
  InvalidRequest,
  MalformedJson,
  PayloadTooLarge,
  problemMembers,
  ServiceUnavailable,
  UnsupportedMediaType
} from "./Problems.ts"
import { Cursor } from "./Cursor.ts"
import { QueryInt } from "./QueryInt.ts"
import { RequestProblems } from "./RequestProblems.ts"

const problemType = (name: string) => `urn:formula-intake:problem:${name}` as const

export class WebhookNotFoundProblem extends HttpApiError.Problem<WebhookNotFoundProblem>()(
  "WebhookNotFoundProblem",
  { type: problemType("webhook-not-found"), status: 404, title: "The client has no webhook endpoint with this id" },
  problemMembers
) {}

export class DeliveryNotFoundProblem extends HttpApiError.Problem<DeliveryNotFoundProblem>()(
  "DeliveryNotFoundProblem",
  {
    type: problemType("webhook-delivery-not-found"),
    status: 404,
    title: "The webhook endpoint has no delivery with this id"
  },
  problemMembers
) {}

export class DeliveryNotRetryableProblem extends HttpApiError.Problem<DeliveryNotRetryableProblem>()(
  "DeliveryNotRetryableProblem",
  {
    type: problemType("webhook-delivery-not-failed"),
    status: 409,
    title: "Only a failed delivery can be retried"
  },
  {
    deliveryStatus: Schema.String.annotate({ description: "The delivery's status: pending or succeeded" }),
    ...problemMembers
  }
) {}

const clientHeaders = {
  "x-client-id": Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(255)).annotate({
    description: "The client (1–255 characters) whose endpoints these are; its formulas' events go to them."
  })
}

export const WebhookEvent = Schema.Literals(subscribableEvents).annotate({
  description: "formula.created, formula.processed or formula.dead_lettered"
})

const Events = Schema.Array(WebhookEvent)
  .check(Schema.isMinLength(1))
  .annotate({ description: "The events to send; default all three" })

const Url = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(2048)).annotate({
  description:
    "http or https, at most 2048 characters, no user name or password; its host must not resolve to a loopback, private, link-local or otherwise internal address. Stored as the URL parser normalizes it."
})

// NUL is the one character PostgreSQL text cannot hold: refused here rather than failing the insert.
const Description = Schema.String.check(
  Schema.isMaxLength(1000),
  Schema.isPattern(/^[^\u0000]*$/, { message: "must not contain NUL characters" })
)

export const CreateWebhookRequest = Schema.Struct({
  url: Url,
  events: Schema.optionalKey(Events),
  description: Schema.optionalKey(Description)
})

export const UpdateWebhookRequest = Schema.Struct({
  url: Schema.optionalKey(Url),
  events: Schema.optionalKey(Events),
  enabled: Schema.optionalKey(Schema.Boolean).annotate({
    description: "true re-enables the endpoint: failingSince and disabledReason are cleared"
  }),
  description: Schema.optionalKey(Schema.NullOr(Description))
})

export const WebhookView = Schema.Struct({
  id: Schema.String,
  url: Schema.String,
  events: Schema.Array(Schema.String),
  description: Schema.NullOr(Schema.String),
  enabled: Schema.Boolean,
  disabledReason: Schema.NullOr(Schema.String).annotate({ description: "Why it is disabled (null when enabled)" }),
  failingSince: Schema.NullOr(Schema.String).annotate({
    description: "Since when its deliveries fail without a success (ISO 8601), or null"
  }),
  createdAt: Schema.String,
  updatedAt: Schema.String
})
export type WebhookView = typeof WebhookView.Type

const Secret = Schema.String.annotate({
  description: "whsec_ + base64 of 32 random bytes: the Standard Webhooks signing secret. Shown only here; keep it."
})

export const WebhookCreated = Schema.Struct({ ...WebhookView.fields, secret: Secret })
export const WebhookList = Schema.Struct({ items: Schema.Array(WebhookView) })
export const RotatedSecret = Schema.Struct({ secret: Secret })
export const TestEventSent = Schema.Struct({ eventId: Schema.String })

export const DeliveryStatus = Schema.Literals(["pending", "succeeded", "failed"])

export const DeliveryAttempt = Schema.Struct({
  at: Schema.String,
  durationMs: Schema.Int,
  status: Schema.optionalKey(Schema.Int).annotate({ description: "The HTTP status the endpoint answered, if any" }),
  error: Schema.optionalKey(Schema.String).annotate({ description: "What went wrong, if anything" })
})

export const DeliveryView = Schema.Struct({
  id: Schema.String,
  eventId: Schema.String.annotate({ description: "The webhook-id header: the same on every attempt" }),
  type: Schema.String,
  status: DeliveryStatus,
  createdAt: Schema.String,
  attempts: Schema.Array(DeliveryAttempt),
  nextAttemptAt: Schema.NullOr(Schema.String).annotate({
    description: "When the next attempt is due; null unless pending"
  }),
  retryInSeconds: Schema.NullOr(Schema.Int).annotate({
    description: "Whole seconds until nextAttemptAt (0: due now); null unless pending"
  })
})
export type DeliveryView = typeof DeliveryView.Type

export const DeliveryPage = Schema.Struct({
  items: Schema.Array(DeliveryView),
  nextCursor: Schema.NullOr(Schema.String)
})

const bodyProblems = [InvalidRequest, MalformedJson, UnsupportedMediaType, PayloadTooLarge] as const

// ---- examples: Atelier Grasse registers its receiver

const clientId = "atelier-grasse"
const webhookId = "01a22f60-1b3e-7c55-8e0a-3f4b5c6d7e8f"
const deliveryId = "01a22f66-b2cb-7d20-a6f3-0c1d2e3f4a5b"
const eventId = "evt_01a22f66b2ca7b10b1c29d8e7f6a5b4c"
const hookUrl = "https://hooks.atelier-grasse.example/formula-intake"
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5+Ab4sMyQ0c="

const registered: WebhookView = {
  id: webhookId,
  url: hookUrl,
  events: [...subscribableEvents],
  description: "Classification results",
  enabled: true,
  disabledReason: null,
  failingSince: null,
  createdAt: "2026-12-01T02:10:03.114Z",
  updatedAt: "2026-12-01T02:10:03.114Z"
}

const failedDelivery: DeliveryView = {
  id: deliveryId,
  eventId,
  type: "formula.created",
  status: "pending",
  createdAt: "2026-12-01T02:19:49.321Z",
  attempts: [
    { at: "2026-12-01T02:19:49.402Z", durationMs: 87, status: 503 },
    { at: "2026-12-01T02:19:54.611Z", durationMs: 15_000, error: "timed out after 15 s" }
  ],
  nextAttemptAt: "2026-12-01T02:24:53.950Z",
  retryInSeconds: 300
}

const parameters = { "x-client-id": clientId }

const missingClient = example(
  InvalidRequest,
  "No X-Client-Id",
  new InvalidRequest({ errors: [{ path: "/headers/x-client-id", message: "is required" }] })
)

const notFound = example(
  WebhookNotFoundProblem,
  "Not this client's endpoint",
  new WebhookNotFoundProblem({ detail: `no webhook endpoint ${webhookId} of this client` })
)

const databaseUnavailable = example(
  ServiceUnavailable,
  "Database unavailable",
  new ServiceUnavailable({ detail: "database did not answer in time" })
)

const notJson = example(
  UnsupportedMediaType,
  "Not JSON content type",
  new UnsupportedMediaType({ detail: "content-type text/plain is not JSON" })
)

const tooLarge = example(
  PayloadTooLarge,
  "Body too large",
  new PayloadTooLarge({ detail: "this request takes a body of at most 64 KiB" })
)

const urlRefused = example(
  InvalidRequest,
  "Host resolves to a private address",
  new InvalidRequest({
    errors: [
      {
        path: "/body/url",
        message: "host intranet.example resolves to 10.0.0.7, a private (RFC 1918) address: not allowed"
      }
    ]
  })
)

const create = HttpApiEndpoint.post("create", "/webhooks", {
  headers: clientHeaders,
  payload: CreateWebhookRequest,
  success: WebhookCreated.pipe(HttpApiSchema.status(201)),
  error: [...bodyProblems, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Register a webhook endpoint",
    description:
      "Events about the client's formulas (those submitted with its X-Client-Id) are POSTed to `url`, signed the Standard Webhooks way with `secret`, which is shown only in this answer (and on rotation). " +
      "The URL's host is resolved now and before every attempt; one that resolves to a loopback, private, link-local, carrier-grade NAT, unique-local, multicast or otherwise internal address is refused.",
    parameters,
    request: example(CreateWebhookRequest, "All events", { url: hookUrl, description: "Classification results" }),
    responses: {
      201: example(WebhookCreated, "Registered", { ...registered, secret }),
      400: [urlRefused, missingClient],
      413: tooLarge,
      415: notJson,
      503: databaseUnavailable
    }
  })
)

const list = HttpApiEndpoint.get("list", "/webhooks", {
  headers: clientHeaders,
  success: WebhookList,
  error: [InvalidRequest, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "List the client's webhook endpoints",
    description: "Oldest first; never their secrets.",
    parameters,
    responses: {
      200: example(WebhookList, "One endpoint", { items: [registered] }),
      400: missingClient,
      503: databaseUnavailable
    }
  })
)

const idParams = { id: Schema.String.annotate({ description: "The id POST /webhooks returned" }) }

const get = HttpApiEndpoint.get("get", "/webhooks/:id", {
  headers: clientHeaders,
  params: idParams,
  success: WebhookView,
  error: [InvalidRequest, WebhookNotFoundProblem, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Get a webhook endpoint",
    description: "Without its secret. 404 for an id that is not one of this client's endpoints.",
    parameters: { ...parameters, id: webhookId },
    responses: {
      200: example(WebhookView, "Failing for an hour", {
        ...registered,
        failingSince: "2026-12-01T03:19:54.611Z"
      }),
      400: missingClient,
      404: notFound,
      503: databaseUnavailable
    }
  })
)

const update = HttpApiEndpoint.patch("update", "/webhooks/:id", {
  headers: clientHeaders,
  params: idParams,
  payload: UpdateWebhookRequest,
  success: WebhookView,
  error: [...bodyProblems, WebhookNotFoundProblem, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Change a webhook endpoint",
    description:
      "Changes the fields given. A new URL is checked like a registered one. `enabled: true` re-enables an endpoint the service disabled (or the client did), clearing `failingSince` and `disabledReason`.",
    parameters: { ...parameters, id: webhookId },
    request: example(UpdateWebhookRequest, "Only results, re-enabled", {
      events: ["formula.processed", "formula.dead_lettered"],
      enabled: true
    }),
    responses: {
      200: example(WebhookView, "Changed", {
        ...registered,
        events: ["formula.processed", "formula.dead_lettered"],
        updatedAt: "2026-12-01T04:02:17.530Z"
      }),
      400: [urlRefused, missingClient],
      404: notFound,
      413: tooLarge,
      415: notJson,
      503: databaseUnavailable
    }
  })
)

const remove = HttpApiEndpoint.delete("delete", "/webhooks/:id", {
  headers: clientHeaders,
  params: idParams,
  success: HttpApiSchema.NoContent,
  error: [InvalidRequest, WebhookNotFoundProblem, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Delete a webhook endpoint",
    description: "It and its deliveries are gone: nothing more is sent to it.",
    parameters: { ...parameters, id: webhookId },
    responses: { 400: missingClient, 404: notFound, 503: databaseUnavailable }
  })
)

const rotateSecret = HttpApiEndpoint.post("rotateSecret", "/webhooks/:id/rotate-secret", {
  headers: clientHeaders,
  params: idParams,
  success: RotatedSecret,
  error: [InvalidRequest, WebhookNotFoundProblem, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Rotate a webhook endpoint's secret",
    description:
      "A new secret, shown only here. For 24 hours deliveries carry a signature with each secret, so the receiver can switch over.",
    parameters: { ...parameters, id: webhookId },
    responses: {
      200: example(RotatedSecret, "New secret", { secret: "whsec_3q2+7wAAAAC6bKZr0JH8c5M4n9T1u2V3w4X5y6Z7a8E=" }),
      400: missingClient,
      404: notFound,
      503: databaseUnavailable
    }
  })
)

const sendTest = HttpApiEndpoint.post("sendTest", "/webhooks/:id/test", {
  headers: clientHeaders,
  params: idParams,
  success: TestEventSent.pipe(HttpApiSchema.status(202)),
  error: [InvalidRequest, WebhookNotFoundProblem, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Send a test event",
    description:
      "A `webhook.test` event (data: the endpoint's id) is delivered to this endpoint like any other event, whatever events it subscribed to; follow it in the deliveries.",
    parameters: { ...parameters, id: webhookId },
    responses: {
      202: example(TestEventSent, "Queued", { eventId }),
      400: missingClient,
      404: notFound,
      503: databaseUnavailable
    }
  })
)

const deliveries = HttpApiEndpoint.get("deliveries", "/webhooks/:id/deliveries", {
  headers: clientHeaders,
  params: idParams,
  query: {
    status: Schema.optional(DeliveryStatus).annotate({ description: "Only deliveries in this state" }),
    cursor: Schema.optional(Cursor).annotate({ description: "nextCursor of the previous page" }),
    limit: Schema.optional(QueryInt({ minimum: 1, maximum: 100 })).annotate({ description: "1–100, default 20" })
  },
  success: DeliveryPage,
  error: [InvalidRequest, WebhookNotFoundProblem, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "List a webhook endpoint's deliveries",
    description:
      "Newest first, with every attempt (time, duration, status or error) and, while pending, when the next attempt is due (`nextAttemptAt`, `retryInSeconds`).",
    parameters: { ...parameters, id: webhookId, status: "pending", cursor: "czI", limit: "20" },
    responses: {
      200: example(DeliveryPage, "A delivery waiting for its third attempt", {
        items: [failedDelivery],
        nextCursor: null
      }),
      400: missingClient,
      404: notFound,
      503: databaseUnavailable
    }
  })
)

const retryDelivery = HttpApiEndpoint.post("retryDelivery", "/webhooks/:id/deliveries/:deliveryId/retry", {
  headers: clientHeaders,
  params: {
    ...idParams,
    deliveryId: Schema.String.annotate({ description: "A delivery's id, from the deliveries list" })
  },
  success: HttpApiSchema.Accepted,
  error: [
    InvalidRequest,
    WebhookNotFoundProblem,
    DeliveryNotFoundProblem,
    DeliveryNotRetryableProblem,
    ServiceUnavailable
  ]
}).annotateMerge(
  documented({
    summary: "Retry a failed delivery",
    description:
      "A delivery that failed (every scheduled attempt used) is attempted again now; its attempts so far stay listed. 409 for a delivery that is pending (it will be retried anyway) or succeeded.",
    parameters: { ...parameters, id: webhookId, deliveryId },
    responses: {
      400: missingClient,
      404: [
        notFound,
        example(
          DeliveryNotFoundProblem,
          "Unknown delivery",
          new DeliveryNotFoundProblem({ detail: `no delivery ${deliveryId} of this endpoint` })
        )
      ],
      409: example(
        DeliveryNotRetryableProblem,
        "Still pending",
        new DeliveryNotRetryableProblem({
          deliveryStatus: "pending",
          detail: `delivery ${deliveryId} is pending, not failed`
        })
      ),
      503: databaseUnavailable
    }
  })
)

export class WebhooksApi extends HttpApiGroup.make("webhooks")
  .add(create, list, get, update, remove, rotateSecret, sendTest, deliveries, retryDelivery)
  .middleware(RequestProblems)
  .annotateMerge(
    OpenApi.annotations({
      title: "Webhooks",
      description:
        "A client's endpoints for events about its formulas (formula.created, formula.processed, formula.dead_lettered): signed (Standard Webhooks), persisted, retried on a schedule, each attempt visible. Every route needs X-Client-Id; another client's endpoints are not found."
    })
  ) {}
