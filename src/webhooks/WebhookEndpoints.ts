/**
 * A client's webhook endpoints: register (the URL checked by the SSRF guard,
 * a fresh signing secret shown once), read, change, delete, rotate the
 * secret, send a test event, list deliveries, retry a failed one.
 *
 * Everything is scoped by the client (X-Client-Id): another client's endpoint
 * or delivery is simply not found, so its existence is not revealed. Rows
 * that make the dispatcher work (a test event's delivery, a retried one) are
 * committed, then the dispatcher is woken (DeliverySignal).
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Context, Effect, Layer, Schema } from "effect"
import { randomBytes } from "node:crypto"
import { newId } from "../domain/Ids.ts"
import { WebhookAllowPrivateNetworks } from "../Settings.ts"
import { DatabaseUnavailable, sqlState, unavailableOnFailure } from "../store/DatabaseUnavailable.ts"
import { DeliverySignal } from "./DeliverySignal.ts"
import { resolveAllowed } from "./SsrfGuard.ts"
import { eventBody, newEventId, subscribableEvents } from "./WebhookEvents.ts"
import { type DeliveryRow, type EndpointPatch, type EndpointRow, makeWebhookSql } from "./WebhookSql.ts"

export type { DeliveryRow, EndpointRow }

export class WebhookNotFound extends Schema.TaggedError<WebhookNotFound>()("WebhookNotFound", {
  id: Schema.String
}) {}

export class DeliveryNotFound extends Schema.TaggedError<DeliveryNotFound>()("DeliveryNotFound", {
  id: Schema.String
}) {}

/** Only a failed delivery can be retried by hand (a pending one is retried anyway; a succeeded one is done). */
export class DeliveryNotRetryable extends Schema.TaggedError<DeliveryNotRetryable>()("DeliveryNotRetryable", {
  id: Schema.String,
  status: Schema.String
}) {}

/** The endpoint URL is refused; `reason` says why, naming the host, the address and the rule. */
export class UrlNotAllowed extends Schema.TaggedError<UrlNotAllowed>()("UrlNotAllowed", {
  reason: Schema.String
}) {}

export const maxUrlLength = 2048

/** How long a rotated-out secret still signs deliveries (receivers may be switching over). */
export const previousSecretLifetimeMs = 24 * 60 * 60 * 1000

/** `whsec_` + base64 of 32 random bytes (the Standard Webhooks form). */
export const newSecret = (): string => `whsec_${randomBytes(32).toString("base64")}`

export interface NewEndpoint {
  readonly url: string
  readonly events?: ReadonlyArray<string> | undefined
  readonly description?: string | undefined
}

export interface DeliveryPage {
  readonly items: ReadonlyArray<DeliveryRow>
  /** `seq` of the last item when more follow. */
  readonly nextBeforeSeq: string | null
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export class WebhookEndpoints extends Context.Service<
  WebhookEndpoints,
  {
    create(
      clientId: string,
      endpoint: NewEndpoint
    ): Effect.Effect<{ readonly endpoint: EndpointRow; readonly secret: string }, UrlNotAllowed | DatabaseUnavailable>
    list(clientId: string): Effect.Effect<ReadonlyArray<EndpointRow>, DatabaseUnavailable>
    get(clientId: string, id: string): Effect.Effect<EndpointRow, WebhookNotFound | DatabaseUnavailable>
    update(
      clientId: string,
      id: string,
      patch: EndpointPatch
    ): Effect.Effect<EndpointRow, WebhookNotFound | UrlNotAllowed | DatabaseUnavailable>
    remove(clientId: string, id: string): Effect.Effect<void, WebhookNotFound | DatabaseUnavailable>
    /** The new secret; the old one keeps signing for 24 h. */
    rotateSecret(clientId: string, id: string): Effect.Effect<string, WebhookNotFound | DatabaseUnavailable>
    /** Writes a `webhook.test` event with one delivery to this endpoint; answers the event id. */
    sendTest(clientId: string, id: string): Effect.Effect<string, WebhookNotFound | DatabaseUnavailable>
    deliveries(
      clientId: string,
      id: string,
      options: {
        readonly status: "pending" | "succeeded" | "failed" | undefined
        readonly beforeSeq: string | undefined
        readonly limit: number
      }
    ): Effect.Effect<DeliveryPage, WebhookNotFound | DatabaseUnavailable>
    retryDelivery(
      clientId: string,
      id: string,
      deliveryId: string
    ): Effect.Effect<void, WebhookNotFound | DeliveryNotFound | DeliveryNotRetryable | DatabaseUnavailable>
  }
>()("formula-intake/webhooks/WebhookEndpoints") {
  static readonly layerWith = (options: { readonly allowPrivateNetworks: boolean }) =>
    Layer.effect(
      WebhookEndpoints,
      Effect.gen(function* () {
        const q = makeWebhookSql(yield* PgClient.PgClient)
        const signal = yield* DeliverySignal
        const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

        /**
         * A URL we may send to: http(s), no credentials, a host whose every
         * address the SSRF guard allows. Answers it as the URL parser writes it
         * (what is stored and sent to is what was checked).
         */
        const checkUrl = (raw: string): Effect.Effect<string, UrlNotAllowed> =>
          Effect.gen(function* () {
            if (raw.length > maxUrlLength) {
              return yield* new UrlNotAllowed({ reason: `must be at most ${maxUrlLength} characters` })
            }
            const url = URL.parse(raw)
            if (url === null) return yield* new UrlNotAllowed({ reason: "is not an absolute URL" })
            if (url.protocol !== "http:" && url.protocol !== "https:") {
              return yield* new UrlNotAllowed({ reason: `must be http or https, not ${url.protocol.slice(0, -1)}` })
            }
            if (url.username !== "" || url.password !== "") {
              return yield* new UrlNotAllowed({ reason: "must not contain a user name or password" })
            }
            yield* resolveAllowed(url.hostname, options).pipe(
              Effect.catchTags({
                AddressRefused: (refused) =>
                  Effect.fail(
                    new UrlNotAllowed({
                      reason: `host ${refused.host} resolves to ${refused.address}, a ${refused.reason} address: not allowed`
                    })
                  ),
                HostUnresolvable: (unresolvable) =>
                  Effect.fail(
                    new UrlNotAllowed({ reason: `host ${unresolvable.host} does not resolve (${unresolvable.reason})` })
                  )
              })
            )
            if (url.href.length > maxUrlLength) {
              return yield* new UrlNotAllowed({ reason: `must be at most ${maxUrlLength} characters once normalized` })
            }
            return url.href
          })

        // Ids are UUIDs; anything else names nothing (and must not reach a uuid-typed comparison).
        const ensureId = (id: string) =>
          uuidPattern.test(id) ? Effect.succeed(id.toLowerCase()) : Effect.fail(new WebhookNotFound({ id }))

        const uniqueEvents = (events: ReadonlyArray<string> | undefined) =>
          Array.from(new Set(events ?? subscribableEvents))

        const create = Effect.fn("WebhookEndpoints.create")(function* (clientId: string, endpoint: NewEndpoint) {
          const url = yield* checkUrl(endpoint.url)
          const secret = newSecret()
          const row = yield* q
            .insertEndpoint({
              id: yield* newId,
              clientId,
              url,
              events: uniqueEvents(endpoint.events),
              description: endpoint.description ?? null,
              secret,
              at: yield* now
            })
            .pipe(unavailableOnFailure)
          return { endpoint: row, secret }
        })

        const list = (clientId: string) =>
          q.selectEndpoints(clientId).pipe(unavailableOnFailure, Effect.withSpan("WebhookEndpoints.list"))

        const get = Effect.fn("WebhookEndpoints.get")(function* (clientId: string, id: string) {
          const row = yield* q.selectEndpoint(clientId, yield* ensureId(id)).pipe(unavailableOnFailure)
          return row ?? (yield* new WebhookNotFound({ id }))
        })

        const update = Effect.fn("WebhookEndpoints.update")(function* (
          clientId: string,
          id: string,
          patch: EndpointPatch
        ) {
          const key = yield* ensureId(id)
          const url = patch.url === undefined ? undefined : yield* checkUrl(patch.url)
          const row = yield* q
            .updateEndpoint(
              clientId,
              key,
              { ...patch, url, events: patch.events === undefined ? undefined : uniqueEvents(patch.events) },
              yield* now
            )
            .pipe(unavailableOnFailure)
          return row ?? (yield* new WebhookNotFound({ id }))
        })

        const remove = Effect.fn("WebhookEndpoints.remove")(function* (clientId: string, id: string) {
          const deleted = yield* q.deleteEndpoint(clientId, yield* ensureId(id)).pipe(unavailableOnFailure)
          if (!deleted) return yield* new WebhookNotFound({ id })
        })

        const rotateSecret = Effect.fn("WebhookEndpoints.rotateSecret")(function* (clientId: string, id: string) {
          const key = yield* ensureId(id)
          const secret = newSecret()
          const at = yield* now
          const rotated = yield* q
            .rotateSecret(clientId, key, secret, new Date(at.getTime() + previousSecretLifetimeMs), at)
            .pipe(unavailableOnFailure)
          if (!rotated) return yield* new WebhookNotFound({ id })
          return secret
        })

        const sendTest = Effect.fn("WebhookEndpoints.sendTest")(function* (clientId: string, id: string) {
          const endpointId = yield* ensureId(id)
          const at = yield* now
          const eventId = yield* newEventId
          const written = yield* q
            .insertTestEvent({
              clientId,
              endpointId,
              eventId,
              body: eventBody("webhook.test", at, { endpointId }),
              deliveryId: yield* newId,
              at
            })
            .pipe(
              // Deleted by a concurrent request between the statement's read and its write: not found either.
              Effect.catchTag("SqlError", (error) =>
                sqlState(error) === "23503" ? Effect.succeed(false) : Effect.fail(error)
              ),
              unavailableOnFailure
            )
          if (!written) return yield* new WebhookNotFound({ id })
          signal.wake()
          return eventId
        })

        const deliveries = Effect.fn("WebhookEndpoints.deliveries")(function* (
          clientId: string,
          id: string,
          options: {
            readonly status: "pending" | "succeeded" | "failed" | undefined
            readonly beforeSeq: string | undefined
            readonly limit: number
          }
        ) {
          const endpoint = yield* get(clientId, id)
          // One more row than asked tells whether another page follows.
          const rows = yield* q
            .selectDeliveries({
              endpointId: endpoint.id,
              status: options.status,
              beforeSeq: options.beforeSeq,
              limit: options.limit + 1
            })
            .pipe(unavailableOnFailure)
          const items = rows.slice(0, options.limit)
          return { items, nextBeforeSeq: rows.length > options.limit ? items[items.length - 1]!.seq : null }
        })

        const retryDelivery = Effect.fn("WebhookEndpoints.retryDelivery")(function* (
          clientId: string,
          id: string,
          deliveryId: string
        ) {
          const endpointId = yield* ensureId(id)
          if (!uuidPattern.test(deliveryId)) return yield* new DeliveryNotFound({ id: deliveryId })
          const { outcome, status } = yield* q
            .retryDelivery({ clientId, endpointId, deliveryId: deliveryId.toLowerCase(), at: yield* now })
            .pipe(unavailableOnFailure)
          if (outcome === "absent") {
            // Tell an unknown endpoint from an unknown delivery of a known one: the 404 names what is missing.
            yield* get(clientId, id)
            return yield* new DeliveryNotFound({ id: deliveryId })
          }
          if (outcome === "not-failed") {
            return yield* new DeliveryNotRetryable({ id: deliveryId, status: status ?? "unknown" })
          }
          signal.wake()
        })

        return WebhookEndpoints.of({
          create,
          list,
          get,
          update,
          remove,
          rotateSecret,
          sendTest,
          deliveries,
          retryDelivery
        })
      })
    )

  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS (false) from the environment. */
  static readonly layerNoDeps = Layer.unwrap(
    Effect.map(WebhookAllowPrivateNetworks.config, (allowPrivateNetworks) =>
      WebhookEndpoints.layerWith({ allowPrivateNetworks })
    )
  )
}
