/**
 * One function per SQL statement of the webhook endpoint API. Every statement
 * names the client: an endpoint (and so its deliveries) is found only through
 * the client that owns it, so another client's id finds nothing. Times are
 * parameters (the application's Clock), never now().
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { texts } from "../store/SqlArrays.ts"

export interface EndpointRow {
  readonly id: string
  readonly url: string
  readonly events: ReadonlyArray<string>
  readonly description: string | null
  readonly enabled: boolean
  readonly disabledReason: string | null
  readonly failingSince: Date | null
  readonly createdAt: Date
  readonly updatedAt: Date
}

interface EndpointSelectRow {
  readonly id: string
  readonly url: string
  readonly events: ReadonlyArray<string> | string
  readonly description: string | null
  readonly enabled: boolean
  readonly disabled_reason: string | null
  readonly failing_since: Date | null
  readonly created_at: Date
  readonly updated_at: Date
}

/** `text[]` as PostgreSQL's array literal, when a driver hands it over unparsed (`{a,"b c"}`). */
const parseTextArray = (value: ReadonlyArray<string> | string): ReadonlyArray<string> =>
  typeof value !== "string"
    ? value
    : value === "{}"
      ? []
      : value
          .slice(1, -1)
          .split(",")
          .map((item) => (item.startsWith('"') ? JSON.parse(item) : item))

const toEndpointRow = (row: EndpointSelectRow): EndpointRow => ({
  id: row.id,
  url: row.url,
  events: parseTextArray(row.events),
  description: row.description,
  enabled: row.enabled,
  disabledReason: row.disabled_reason,
  failingSince: row.failing_since,
  createdAt: row.created_at,
  updatedAt: row.updated_at
})

export interface AttemptRow {
  readonly at: Date
  readonly durationMs: number
  readonly status: number | null
  readonly error: string | null
}

export interface DeliveryRow {
  readonly seq: string
  readonly id: string
  readonly eventId: string
  readonly type: string
  readonly status: "pending" | "succeeded" | "failed"
  readonly createdAt: Date
  readonly nextAttemptAt: Date | null
  readonly attempts: ReadonlyArray<AttemptRow>
}

interface DeliverySelectRow {
  readonly seq: string
  readonly id: string
  readonly event_id: string
  readonly type: string
  readonly status: "pending" | "succeeded" | "failed"
  readonly created_at: Date
  readonly next_attempt_at: Date | null
  readonly attempts:
    | ReadonlyArray<{ at: string; durationMs: number; status: number | null; error: string | null }>
    | string
}

const toDeliveryRow = (row: DeliverySelectRow): DeliveryRow => {
  const attempts = typeof row.attempts === "string" ? JSON.parse(row.attempts) : row.attempts
  return {
    seq: row.seq,
    id: row.id,
    eventId: row.event_id,
    type: row.type,
    status: row.status,
    createdAt: row.created_at,
    nextAttemptAt: row.next_attempt_at,
    attempts: (
      attempts as ReadonlyArray<{ at: string; durationMs: number; status: number | null; error: string | null }>
    ).map((attempt) => ({ ...attempt, at: new Date(attempt.at) }))
  }
}

export interface EndpointPatch {
  readonly url?: string | undefined
  readonly events?: ReadonlyArray<string> | undefined
  readonly enabled?: boolean | undefined
  /** `null` clears it. */
  readonly description?: string | null | undefined
}

export const makeWebhookSql = (sql: PgClient.PgClient) => {
  const endpointColumns = sql`
    id::text AS id, url, events, description, enabled, disabled_reason, failing_since, created_at, updated_at`

  const insertEndpoint = (endpoint: {
    readonly id: string
    readonly clientId: string
    readonly url: string
    readonly events: ReadonlyArray<string>
    readonly description: string | null
    readonly secret: string
    readonly at: Date
  }) =>
    Effect.map(
      sql<EndpointSelectRow>`
        INSERT INTO webhook_endpoints (id, client_id, url, events, description, secret, created_at, updated_at)
        VALUES (${endpoint.id}, ${endpoint.clientId}, ${endpoint.url}, ${texts(endpoint.events)},
                ${endpoint.description}, ${endpoint.secret}, ${endpoint.at}, ${endpoint.at})
        RETURNING ${endpointColumns}`,
      (rows) => toEndpointRow(rows[0]!)
    )

  /** The client's endpoints, oldest first. */
  const selectEndpoints = (clientId: string) =>
    Effect.map(
      sql<EndpointSelectRow>`
        SELECT ${endpointColumns} FROM webhook_endpoints WHERE client_id = ${clientId} ORDER BY seq`,
      (rows) => rows.map(toEndpointRow)
    )

  const selectEndpoint = (clientId: string, id: string) =>
    Effect.map(
      sql<EndpointSelectRow>`
        SELECT ${endpointColumns} FROM webhook_endpoints WHERE id = ${id} AND client_id = ${clientId}`,
      (rows) => (rows.length === 0 ? undefined : toEndpointRow(rows[0]!))
    )

  /**
   * Changes what the patch names. Enabling clears why it was disabled and
   * since when it fails (a fresh start); disabling by hand says so, unless
   * the dispatcher already gave a reason.
   */
  const updateEndpoint = (clientId: string, id: string, patch: EndpointPatch, at: Date) =>
    Effect.map(
      sql<EndpointSelectRow>`
        UPDATE webhook_endpoints SET
          url = COALESCE(${patch.url ?? null}::text, url),
          events = CASE WHEN ${patch.events !== undefined}::boolean THEN ${texts(patch.events ?? [])}::text[] ELSE events END,
          description = CASE WHEN ${patch.description !== undefined}::boolean THEN ${patch.description ?? null}::text
                             ELSE description END,
          enabled = COALESCE(${patch.enabled ?? null}::boolean, enabled),
          disabled_reason = CASE WHEN ${patch.enabled ?? null}::boolean THEN NULL
                                 WHEN NOT ${patch.enabled ?? null}::boolean
                                   THEN COALESCE(disabled_reason, 'disabled by the client')
                                 ELSE disabled_reason END,
          failing_since = CASE WHEN ${patch.enabled ?? null}::boolean THEN NULL ELSE failing_since END,
          updated_at = ${at}
        WHERE id = ${id} AND client_id = ${clientId}
        RETURNING ${endpointColumns}`,
      (rows) => (rows.length === 0 ? undefined : toEndpointRow(rows[0]!))
    )

  /** Deletes the endpoint; its deliveries and their attempts go with it (ON DELETE CASCADE). */
  const deleteEndpoint = (clientId: string, id: string) =>
    Effect.map(
      sql`DELETE FROM webhook_endpoints WHERE id = ${id} AND client_id = ${clientId} RETURNING id`,
      (rows) => rows.length > 0
    )

  /** The current secret becomes the previous one, valid until `previousExpiresAt`. */
  const rotateSecret = (clientId: string, id: string, secret: string, previousExpiresAt: Date, at: Date) =>
    Effect.map(
      sql`
        UPDATE webhook_endpoints
           SET previous_secret = secret, previous_secret_expires_at = ${previousExpiresAt},
               secret = ${secret}, updated_at = ${at}
         WHERE id = ${id} AND client_id = ${clientId}
        RETURNING id`,
      (rows) => rows.length > 0
    )

  /**
   * A `webhook.test` event and its one delivery to this endpoint, due now,
   * in one statement; nothing when the endpoint is not the client's.
   */
  const insertTestEvent = (event: {
    readonly clientId: string
    readonly endpointId: string
    readonly eventId: string
    readonly body: string
    readonly deliveryId: string
    readonly at: Date
  }) =>
    Effect.map(
      sql<{ readonly id: string }>`
        WITH endpoint AS (
          SELECT id FROM webhook_endpoints WHERE id = ${event.endpointId} AND client_id = ${event.clientId}
        ), inserted_event AS (
          INSERT INTO webhook_events (id, client_id, type, body, created_at)
          SELECT ${event.eventId}, ${event.clientId}, 'webhook.test', ${event.body}, ${event.at} FROM endpoint
          RETURNING id
        )
        INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at, updated_at)
        SELECT ${event.deliveryId}, inserted_event.id, endpoint.id, ${event.at}, ${event.at}, ${event.at}
          FROM inserted_event, endpoint
        RETURNING id::text AS id`,
      (rows) => rows.length > 0
    )

  /** A page of the endpoint's deliveries, newest first, with their attempts in order. */
  const selectDeliveries = (options: {
    readonly endpointId: string
    readonly status: string | undefined
    readonly beforeSeq: string | undefined
    readonly limit: number
  }) =>
    Effect.map(
      sql<DeliverySelectRow>`
        SELECT d.seq::text AS seq, d.id::text AS id, d.event_id, e.type, d.status, d.created_at, d.next_attempt_at,
               COALESCE((SELECT json_agg(json_build_object('at', a.at, 'durationMs', a.duration_ms,
                                                           'status', a.status, 'error', a.error)
                                         ORDER BY a.number)
                           FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::json) AS attempts
          FROM webhook_deliveries d
          JOIN webhook_events e ON e.id = d.event_id
         WHERE d.endpoint_id = ${options.endpointId}
           AND (${options.status ?? null}::text IS NULL OR d.status = ${options.status ?? null}::text)
           AND (${options.beforeSeq ?? null}::bigint IS NULL OR d.seq < ${options.beforeSeq ?? null}::bigint)
         ORDER BY d.seq DESC
         LIMIT ${options.limit}`,
      (rows) => rows.map(toDeliveryRow)
    )

  /**
   * A failed delivery of the client's endpoint becomes pending again, due
   * now; its attempts (and their count) stay. Answers what it found: retried,
   * a delivery that is not failed, or nothing of the client's.
   */
  const retryDelivery = (options: {
    readonly clientId: string
    readonly endpointId: string
    readonly deliveryId: string
    readonly at: Date
  }) =>
    Effect.map(
      sql<{ readonly status: string; readonly retried: boolean }>`
        WITH target AS (
          SELECT d.id, d.status FROM webhook_deliveries d
            JOIN webhook_endpoints e ON e.id = d.endpoint_id
           WHERE d.id = ${options.deliveryId} AND e.id = ${options.endpointId} AND e.client_id = ${options.clientId}
        ), retried AS (
          UPDATE webhook_deliveries d
             SET status = 'pending', next_attempt_at = ${options.at}, updated_at = ${options.at},
                 lease_token = NULL, lease_expires_at = NULL
            FROM target
           WHERE d.id = target.id AND d.status = 'failed'
          RETURNING d.id
        )
        SELECT target.status, EXISTS (SELECT 1 FROM retried) AS retried FROM target`,
      (rows): { readonly outcome: "retried" | "not-failed" | "absent"; readonly status?: string } =>
        rows.length === 0
          ? { outcome: "absent" }
          : rows[0]!.retried
            ? { outcome: "retried" }
            : { outcome: "not-failed", status: rows[0]!.status }
    )

  return {
    insertEndpoint,
    selectEndpoints,
    selectEndpoint,
    updateEndpoint,
    deleteEndpoint,
    rotateSecret,
    insertTestEvent,
    selectDeliveries,
    retryDelivery
  }
}
