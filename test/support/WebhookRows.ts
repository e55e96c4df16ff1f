/**
 * Webhook endpoints, events and deliveries written with plain SQL (the
 * endpoint API and the event writers are other modules; the dispatcher only
 * reads these rows), in the shapes the shared conventions fix.
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Effect } from "effect"
import { randomBytes, randomUUID } from "node:crypto"

export const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`

export interface EndpointInput {
  readonly url: string
  readonly secret?: string
  readonly previousSecret?: string | null
  readonly previousSecretExpiresAt?: Date | null
  readonly failingSince?: Date | null
  readonly clientId?: string
}

/** Inserts an enabled endpoint; returns its id and secret. */
export const insertEndpoint = (input: EndpointInput) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const id = randomUUID()
    const secret = input.secret ?? newSecret()
    const now = new Date(yield* Clock.currentTimeMillis)
    yield* sql`
      INSERT INTO webhook_endpoints (id, client_id, url, events, secret, previous_secret, previous_secret_expires_at,
                                     failing_since, created_at, updated_at)
      VALUES (${id}, ${input.clientId ?? "client-a"}, ${input.url}, ARRAY['formula.created'],
              ${input.secret ?? secret}, ${input.previousSecret ?? null}::text,
              ${input.previousSecretExpiresAt ?? null}::timestamptz, ${input.failingSince ?? null}::timestamptz,
              ${now}, ${now})`
    return { id, secret }
  })

/** A `formula.created` event and one pending delivery of it to `endpointId`, due now (by Clock). */
export const insertDelivery = (endpointId: string, options: { readonly eventId?: string } = {}) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const now = new Date(yield* Clock.currentTimeMillis)
    const eventId = options.eventId ?? `evt_${randomUUID().replaceAll("-", "")}`
    const body = JSON.stringify({ type: "formula.created", timestamp: now.toISOString(), data: { id: randomUUID() } })
    if (options.eventId === undefined) {
      yield* sql`INSERT INTO webhook_events (id, client_id, type, body, created_at)
                 VALUES (${eventId}, 'client-a', 'formula.created', ${body}, ${now})`
    }
    const id = randomUUID()
    yield* sql`
      INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempt_count, next_attempt_at, created_at, updated_at)
      VALUES (${id}, ${eventId}, ${endpointId}, 'pending', 0, ${now}, ${now}, ${now})`
    return { id, eventId, body }
  })

export interface DeliveryRow {
  readonly status: string
  readonly attempt_count: number
  readonly next_attempt_at: Date | null
  readonly lease_token: string | null
}

export const deliveryRow = (id: string) =>
  Effect.map(
    PgClient.PgClient.use(
      (sql) =>
        sql<DeliveryRow>`SELECT status, attempt_count, next_attempt_at, lease_token::text AS lease_token
                         FROM webhook_deliveries WHERE id = ${id}`
    ),
    (rows) => rows[0]!
  )

export interface AttemptRow {
  readonly number: number
  readonly at: Date
  readonly duration_ms: number
  readonly status: number | null
  readonly error: string | null
  readonly response: string | null
}

export const attemptRows = (deliveryId: string) =>
  PgClient.PgClient.use(
    (sql) =>
      sql<AttemptRow>`SELECT number, at, duration_ms, status, error, response FROM webhook_attempts
                      WHERE delivery_id = ${deliveryId} ORDER BY number`
  )

export interface EndpointRow {
  readonly enabled: boolean
  readonly disabled_reason: string | null
  readonly failing_since: Date | null
  readonly last_success_at: Date | null
}

export const endpointRow = (id: string) =>
  Effect.map(
    PgClient.PgClient.use(
      (sql) =>
        sql<EndpointRow>`SELECT enabled, disabled_reason, failing_since, last_success_at
                         FROM webhook_endpoints WHERE id = ${id}`
    ),
    (rows) => rows[0]!
  )

/** Every endpoint, event and delivery gone: a suite shares its database, and a dispatcher claims all due rows. */
export const clearWebhooks = PgClient.PgClient.use((sql) =>
  Effect.andThen(sql`DELETE FROM webhook_deliveries`, sql`DELETE FROM webhook_events`).pipe(
    Effect.andThen(sql`DELETE FROM webhook_endpoints`)
  )
)
