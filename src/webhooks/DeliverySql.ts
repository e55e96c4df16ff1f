/**
 * One function per SQL statement of the webhook dispatcher, on the tables of
 * migration 0007. Every timestamp is a parameter from Effect's `Clock` (never
 * the database's `now()`), so TestClock drives leases and schedules alike.
 *
 * A delivery is claimed by a *lease*: `lease_token` (random per claim) and
 * `lease_expires_at`. A pending delivery is claimable when it is due and has
 * no live lease. The claim locks candidate rows `FOR UPDATE SKIP LOCKED`, and
 * its locking step re-checks status, due time and lease on the newest row
 * version, so two processes claiming at once never both get a row, and a row
 * another process claimed (and committed) after this statement's snapshot is
 * not taken again. The settlement matches `lease_token`: a process whose lease
 * lapsed (it hung, or its settlement came late) and whose delivery another
 * process claimed since changes nothing.
 */
import { Effect } from "effect"
import { type PgClient, PgTypes } from "@effect/sql-pg"

export interface ClaimedDelivery {
  readonly id: string
  readonly endpointId: string
  /** Attempts made before this one. */
  readonly attemptCount: number
  /** When this attempt fell due. */
  readonly dueAt: Date
  readonly eventId: string
  readonly body: string
  readonly url: string
  readonly secret: string
  readonly previousSecret: string | null
  readonly previousSecretExpiresAt: Date | null
}

interface ClaimedRow {
  readonly id: string
  readonly endpoint_id: string
  readonly attempt_count: number
  readonly next_attempt_at: Date
  readonly event_id: string
  readonly body: string
  readonly url: string
  readonly secret: string
  readonly previous_secret: string | null
  readonly previous_secret_expires_at: Date | null
}

/** What became of the delivery after an attempt. */
export type SettledStatus = "pending" | "succeeded" | "failed"

export interface Settlement {
  readonly deliveryId: string
  readonly endpointId: string
  readonly leaseToken: string
  readonly status: SettledStatus
  /** Set iff `status` is pending. */
  readonly nextAttemptAt: Date | null
  /** The attempt log row. */
  readonly attempt: {
    readonly at: Date
    readonly durationMs: number
    readonly status: number | null
    readonly error: string | null
    readonly response: string | null
  }
  /** The endpoint's health: a 2xx clears `failing_since`, anything else starts it. */
  readonly succeeded: boolean
  /** Disable the endpoint now (410 Gone). */
  readonly gone: boolean
  /** An endpoint failing since this instant or earlier is disabled. */
  readonly disableIfFailingSince: Date
  /** `disabled_reason` if this settlement disables the endpoint. */
  readonly disabledReason: string
}

export const makeDeliverySql = (sql: PgClient.PgClient) => {
  const arrayOf = (oid: number) => (values: ReadonlyArray<unknown>) => {
    const parameter = PgTypes.array(values, oid)
    if (parameter._tag === "Failure") throw parameter.failure
    return parameter.success
  }
  const uuids = arrayOf(PgTypes.OID.uuid)
  const ints = arrayOf(PgTypes.OID.int4)

  /**
   * Leases up to `limit` due deliveries of enabled endpoints, soonest due
   * first, at most `perEndpoint` per endpoint counting the ones this process
   * already has in flight (`inFlight`), until `leaseUntil`. Returns each with
   * what its attempt needs (event body, endpoint URL and secrets).
   */
  const claimDue = (options: {
    readonly now: Date
    readonly leaseUntil: Date
    readonly leaseToken: string
    readonly limit: number
    readonly perEndpoint: number
    readonly inFlight: ReadonlyMap<string, number>
  }) => {
    const full = [...options.inFlight].filter(([, n]) => n >= options.perEndpoint).map(([id]) => id)
    return Effect.map(
      sql<ClaimedRow>`
        WITH busy AS (
          SELECT * FROM unnest(${uuids([...options.inFlight.keys()])}, ${ints([...options.inFlight.values()])})
            AS b (endpoint_id, in_flight)
        ), due AS (
          -- The soonest due deliveries of endpoints with room (those without are skipped, not ranked), a
          -- bounded window: ranking every due row would cost as much as the backlog on every claim.
          SELECT d.id, d.endpoint_id, d.next_attempt_at, d.seq
            FROM webhook_deliveries d
            JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
           WHERE d.status = 'pending' AND d.next_attempt_at <= ${options.now}
             AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= ${options.now})
             AND NOT (d.endpoint_id = ANY (${uuids(full)}))
           ORDER BY d.next_attempt_at, d.seq
           LIMIT ${options.limit * options.perEndpoint}
        ), candidates AS (
          -- At most perEndpoint per endpoint, counting its attempts in flight here. An endpoint with more
          -- due than that fills up; it is skipped by the next claim, which then reaches the others.
          SELECT id FROM (
            SELECT due.id, due.next_attempt_at, due.seq,
                   row_number() OVER (PARTITION BY due.endpoint_id ORDER BY due.next_attempt_at, due.seq)
                     + COALESCE(b.in_flight, 0) AS slot
              FROM due LEFT JOIN busy b ON b.endpoint_id = due.endpoint_id
          ) ranked
          WHERE slot <= ${options.perEndpoint}
          ORDER BY next_attempt_at, seq
          LIMIT ${options.limit}
        ), locked AS (
          -- Re-checked on the newest row version: another claim may have committed since our snapshot.
          SELECT d.id FROM webhook_deliveries d
           WHERE d.id IN (SELECT id FROM candidates)
             AND d.status = 'pending' AND d.next_attempt_at <= ${options.now}
             AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= ${options.now})
             FOR UPDATE SKIP LOCKED
        )
        UPDATE webhook_deliveries d
           SET lease_token = ${options.leaseToken}, lease_expires_at = ${options.leaseUntil}
          FROM locked, webhook_events ev, webhook_endpoints e
         WHERE d.id = locked.id AND ev.id = d.event_id AND e.id = d.endpoint_id
        RETURNING d.id::text AS id, d.endpoint_id::text AS endpoint_id, d.attempt_count, d.next_attempt_at,
                  ev.id AS event_id, ev.body, e.url, e.secret, e.previous_secret, e.previous_secret_expires_at`,
      (rows): ReadonlyArray<ClaimedDelivery> =>
        rows
          .map((row) => ({
            id: row.id,
            endpointId: row.endpoint_id,
            attemptCount: row.attempt_count,
            dueAt: row.next_attempt_at,
            eventId: row.event_id,
            body: row.body,
            url: row.url,
            secret: row.secret,
            previousSecret: row.previous_secret,
            previousSecretExpiresAt: row.previous_secret_expires_at
          }))
          .sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime())
    )
  }

  /**
   * Records the attempt and settles the delivery — only while `leaseToken` is
   * still its lease — and updates the endpoint's health in the same
   * statement. False when the lease was no longer ours: nothing was written.
   */
  const settle = (s: Settlement) =>
    Effect.map(
      sql<{ readonly number: number }>`
        WITH settled AS (
          UPDATE webhook_deliveries
             SET status = ${s.status}, attempt_count = attempt_count + 1,
                 next_attempt_at = ${s.nextAttemptAt}::timestamptz,
                 lease_token = NULL, lease_expires_at = NULL, updated_at = ${s.attempt.at}
           WHERE id = ${s.deliveryId} AND lease_token = ${s.leaseToken}
          RETURNING id, attempt_count, endpoint_id
        ), attempt AS (
          INSERT INTO webhook_attempts (delivery_id, number, at, duration_ms, status, error, response)
          SELECT id, attempt_count, ${s.attempt.at}, ${s.attempt.durationMs},
                 ${s.attempt.status}::integer, ${s.attempt.error}::text, ${s.attempt.response}::text
            FROM settled
        ), verdict AS (
          SELECT e.id,
                 ${s.gone}::boolean
                   OR (NOT ${s.succeeded}::boolean
                       AND COALESCE(e.failing_since, ${s.attempt.at}) <= ${s.disableIfFailingSince}) AS disable
            FROM webhook_endpoints e JOIN settled ON settled.endpoint_id = e.id
        ), endpoint AS (
          UPDATE webhook_endpoints e
             SET last_success_at = CASE WHEN ${s.succeeded}::boolean THEN ${s.attempt.at} ELSE e.last_success_at END,
                 failing_since = CASE WHEN ${s.succeeded}::boolean THEN NULL
                                      ELSE COALESCE(e.failing_since, ${s.attempt.at}) END,
                 enabled = e.enabled AND NOT verdict.disable,
                 disabled_reason = CASE WHEN e.enabled AND verdict.disable THEN ${s.disabledReason}
                                        ELSE e.disabled_reason END
            FROM verdict WHERE e.id = verdict.id
        )
        SELECT attempt_count AS number FROM settled`,
      (rows) => rows.length > 0
    )

  /**
   * When the next delivery will be claimable (due, lease lapsed), ignoring the
   * endpoints in `exceptEndpoints` (those this process has no room for now).
   */
  const nextDueAt = (exceptEndpoints: ReadonlyArray<string>) =>
    Effect.map(
      sql<{ readonly at: Date | null }>`
        SELECT min(GREATEST(d.next_attempt_at, COALESCE(d.lease_expires_at, d.next_attempt_at))) AS at
          FROM webhook_deliveries d
          JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
         WHERE d.status = 'pending' AND NOT (d.endpoint_id = ANY (${uuids(exceptEndpoints)}))`,
      (rows) => rows[0]?.at ?? undefined
    )

  /** Database-wide counts for the gauges. */
  const counts = Effect.map(
    sql<{ readonly pending: string; readonly disabled: string }>`
      SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending,
             (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS disabled`,
    (rows) => ({ pending: Number(rows[0]?.pending ?? 0), disabled: Number(rows[0]?.disabled ?? 0) })
  )

  return { claimDue, settle, nextDueAt, counts }
}

export type DeliverySql = ReturnType<typeof makeDeliverySql>
