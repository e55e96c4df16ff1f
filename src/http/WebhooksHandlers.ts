/**
 * Handlers for the "webhooks" group (WebhooksApi.ts): the client is the
 * X-Client-Id header (required, checked by the group's schema), every answer
 * is that client's alone. Bodies are read like the queue's (handleRaw,
 * decodeJsonBody): a 415 for another content type, a malformed-json 400, and
 * every invalid field listed at `/body/…`; a URL the SSRF guard refuses is a
 * problem at `/body/url`.
 */
import { Clock, Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import {
  type DeliveryNotFound,
  type DeliveryNotRetryable,
  type DeliveryRow,
  type EndpointRow,
  type UrlNotAllowed,
  WebhookEndpoints,
  type WebhookNotFound
} from "../webhooks/WebhookEndpoints.ts"
import type { DatabaseUnavailable } from "../store/DatabaseUnavailable.ts"
import { ServedApi } from "./Api.ts"
import { decodeCursor, encodeCursor } from "./Cursor.ts"
import { decodeJsonBody } from "./JsonBody.ts"
import { InvalidRequest, ServiceUnavailable } from "./Problems.ts"
import {
  CreateWebhookRequest,
  DeliveryNotFoundProblem,
  DeliveryNotRetryableProblem,
  type DeliveryView,
  UpdateWebhookRequest,
  WebhookNotFoundProblem,
  type WebhookView
} from "./WebhooksApi.ts"

/** Enough for a 2048-character URL, a description and the event names. */
export const maxBodyBytes = 64 * 1024

const toWebhookView = (row: EndpointRow): WebhookView => ({
  id: row.id,
  url: row.url,
  events: row.events,
  description: row.description,
  enabled: row.enabled,
  disabledReason: row.disabledReason,
  failingSince: row.failingSince === null ? null : row.failingSince.toISOString(),
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString()
})

/** A delivery as listed; `retryInSeconds` counts from `nowMillis` (whole seconds, rounded up: 0 means due). */
export const toDeliveryView = (row: DeliveryRow, nowMillis: number): DeliveryView => ({
  id: row.id,
  eventId: row.eventId,
  type: row.type,
  status: row.status,
  createdAt: row.createdAt.toISOString(),
  attempts: row.attempts.map((attempt) => ({
    at: attempt.at.toISOString(),
    durationMs: attempt.durationMs,
    ...(attempt.status === null ? {} : { status: attempt.status }),
    ...(attempt.error === null ? {} : { error: attempt.error })
  })),
  nextAttemptAt: row.status === "pending" && row.nextAttemptAt !== null ? row.nextAttemptAt.toISOString() : null,
  retryInSeconds:
    row.status === "pending" && row.nextAttemptAt !== null
      ? Math.max(0, Math.ceil((row.nextAttemptAt.getTime() - nowMillis) / 1000))
      : null
})

type ServiceError = WebhookNotFound | DeliveryNotFound | DeliveryNotRetryable | UrlNotAllowed | DatabaseUnavailable

/** Each error of the service as the problem the client gets. */
const problemOf = (error: ServiceError) => {
  switch (error._tag) {
    case "WebhookNotFound":
      return new WebhookNotFoundProblem({ detail: `no webhook endpoint ${error.id} of this client` })
    case "DeliveryNotFound":
      return new DeliveryNotFoundProblem({ detail: `no delivery ${error.id} of this endpoint` })
    case "DeliveryNotRetryable":
      return new DeliveryNotRetryableProblem({
        deliveryStatus: error.status,
        detail: `delivery ${error.id} is ${error.status}, not failed`
      })
    case "UrlNotAllowed":
      return new InvalidRequest({ errors: [{ path: "/body/url", message: error.reason }] })
    case "DatabaseUnavailable":
      return new ServiceUnavailable({ detail: error.message })
  }
}

/** The problem each error becomes, by type: an endpoint declares only the problems its service call can give. */
type ProblemOf<E> = E extends WebhookNotFound
  ? WebhookNotFoundProblem
  : E extends DeliveryNotFound
    ? DeliveryNotFoundProblem
    : E extends DeliveryNotRetryable
      ? DeliveryNotRetryableProblem
      : E extends UrlNotAllowed
        ? InvalidRequest
        : ServiceUnavailable

const problems = <A, E extends ServiceError, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, ProblemOf<E>, R> =>
  Effect.mapError(self, (error) => problemOf(error) as ProblemOf<E>)

export const WebhooksHandlers = HttpApiBuilder.group(
  ServedApi,
  "webhooks",
  Effect.fn(function* (handlers) {
    const webhooks = yield* WebhookEndpoints

    return handlers
      .handleRaw("create", ({ headers, request }) =>
        decodeJsonBody(request, CreateWebhookRequest, maxBodyBytes).pipe(
          Effect.flatMap((payload) => problems(webhooks.create(headers["x-client-id"], payload))),
          Effect.map(({ endpoint, secret }) => ({ ...toWebhookView(endpoint), secret }))
        )
      )
      .handle("list", ({ headers }) =>
        problems(webhooks.list(headers["x-client-id"])).pipe(Effect.map((rows) => ({ items: rows.map(toWebhookView) })))
      )
      .handle("get", ({ headers, params }) =>
        Effect.map(problems(webhooks.get(headers["x-client-id"], params.id)), toWebhookView)
      )
      .handleRaw("update", ({ headers, params, request }) =>
        decodeJsonBody(request, UpdateWebhookRequest, maxBodyBytes).pipe(
          Effect.flatMap((patch) => problems(webhooks.update(headers["x-client-id"], params.id, patch))),
          Effect.map(toWebhookView)
        )
      )
      .handle("delete", ({ headers, params }) => problems(webhooks.remove(headers["x-client-id"], params.id)))
      .handle("rotateSecret", ({ headers, params }) =>
        Effect.map(problems(webhooks.rotateSecret(headers["x-client-id"], params.id)), (secret) => ({ secret }))
      )
      .handle("sendTest", ({ headers, params }) =>
        Effect.map(problems(webhooks.sendTest(headers["x-client-id"], params.id)), (eventId) => ({ eventId }))
      )
      .handle("deliveries", ({ headers, params, query }) =>
        Effect.gen(function* () {
          // The query's schema (Cursor) has already rejected any cursor this API did not return.
          const beforeSeq = query.cursor === undefined ? undefined : (decodeCursor(query.cursor) ?? undefined)
          const page = yield* problems(
            webhooks.deliveries(headers["x-client-id"], params.id, {
              status: query.status,
              beforeSeq,
              limit: query.limit ?? 20
            })
          )
          const now = yield* Clock.currentTimeMillis
          return {
            items: page.items.map((row) => toDeliveryView(row, now)),
            nextCursor: page.nextBeforeSeq === null ? null : encodeCursor(page.nextBeforeSeq)
          }
        })
      )
      .handle("retryDelivery", ({ headers, params }) =>
        problems(webhooks.retryDelivery(headers["x-client-id"], params.id, params.deliveryId))
      )
  })
)
