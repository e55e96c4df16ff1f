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
import type { PgClient } from "@effect/sql-pg"
import { bools, ints, texts, timestamps, uuids } from "../store/SqlArrays.ts"

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
           WHERE d.id = ANY (ARRAY (SELECT id FROM candidates))
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
   * Records the attempts and settles a batch of deliveries — each only while
   * its `leaseToken` is still its lease — and updates their endpoints' health,
   * in one transaction of two statements (it was one statement per settlement,
   * each updating its endpoint's row: concurrent batches queued on a few hot
   * rows for as long as a batch's round trips took). Returns, per settlement
   * in order, whether it was written (false: the lease was no longer ours).
   *
   * Endpoint health, merged per endpoint as if the batch's settlements were
   * applied one by one in order: a 2xx sets `last_success_at` and clears
   * `failing_since`; anything else sets `failing_since` if unset; a failure
   * whose endpoint has been failing since `disableIfFailingSince` or earlier
   * disables it, as does a 410. The endpoint row is written only when that
   * changes something, except that `last_success_at` may lag the newest
   * success by up to `successFreshMs` on an endpoint that is not failing: it
   * is informational (the disable rule counts from `failing_since`, which is
   * always written exactly), and a healthy endpoint under load would otherwise
   * be written by every batch.
   */
  const settleBatch = (settlements: ReadonlyArray<Settlement>, successFreshMs: number) => {
    if (settlements.length === 0) return Effect.succeed([] as ReadonlyArray<boolean>)
    const column = <A>(f: (s: Settlement) => A) => settlements.map(f)
    const failedEndpoints = [...new Set(settlements.filter((s) => !s.succeeded || s.gone).map((s) => s.endpointId))]
    const newestSuccess = new Map<string, number>()
    for (const s of settlements)
      if (s.succeeded)
        newestSuccess.set(s.endpointId, Math.max(newestSuccess.get(s.endpointId) ?? 0, s.attempt.at.getTime()))
    const freshIds = [...newestSuccess.keys()]
    const freshSince = freshIds.map((id) => new Date(newestSuccess.get(id)! - successFreshMs))
    // Row locks on the endpoints this batch may write, taken in id order: batches running at once (in
    // this process or others) then wait for each other instead of deadlocking. NO KEY UPDATE, so
    // submissions inserting deliveries (KEY SHARE through the foreign key) are not held up. Endpoints
    // that are healthy and whose last success is fresh are not locked (nor written below).
    const lock = sql`
      SELECT e.id FROM webhook_endpoints e
       WHERE e.id = ANY (${uuids([...new Set(column((s) => s.endpointId))])})
         AND (e.id = ANY (${uuids(failedEndpoints)}) OR e.failing_since IS NOT NULL OR e.last_success_at IS NULL
              OR e.last_success_at < (SELECT f.since FROM unnest(${uuids(freshIds)}, ${timestamps(freshSince)})
                                        AS f (id, since) WHERE f.id = e.id))
       ORDER BY e.id
         FOR NO KEY UPDATE`
    const write = sql<{ readonly id: string }>`
      WITH input AS (
        SELECT * FROM unnest(
          ${uuids(column((s) => s.deliveryId))}, ${uuids(column((s) => s.leaseToken))},
          ${texts(column((s) => s.status))}, ${timestamps(column((s) => s.nextAttemptAt))},
          ${timestamps(column((s) => s.attempt.at))}, ${ints(column((s) => s.attempt.durationMs))},
          ${ints(column((s) => s.attempt.status))}, ${texts(column((s) => s.attempt.error))},
          ${texts(column((s) => s.attempt.response))}, ${bools(column((s) => s.succeeded))},
          ${bools(column((s) => s.gone))}, ${timestamps(column((s) => s.disableIfFailingSince))},
          ${texts(column((s) => s.disabledReason))}
        ) WITH ORDINALITY AS i (id, lease_token, status, next_attempt_at, at, duration_ms, http_status, error,
                                response, succeeded, gone, disable_if_failing_since, disabled_reason, ord)
      ), settled AS (
        UPDATE webhook_deliveries d
           SET status = i.status, attempt_count = d.attempt_count + 1, next_attempt_at = i.next_attempt_at,
               lease_token = NULL, lease_expires_at = NULL, updated_at = i.at
          FROM input i
         WHERE d.id = i.id AND d.lease_token = i.lease_token
        RETURNING d.id, d.attempt_count, d.endpoint_id
      ), attempt AS (
        INSERT INTO webhook_attempts (delivery_id, number, at, duration_ms, status, error, response)
        SELECT s.id, s.attempt_count, i.at, i.duration_ms, i.http_status, i.error, i.response
          FROM settled s JOIN input i ON i.id = s.id
      ), segmented AS (
        -- segment: how many successes of this endpoint came before or at this settlement, in order.
        -- Failures in segment 0 continue the endpoint's stored failing streak; later ones start anew.
        SELECT s.endpoint_id, i.ord, i.at, i.succeeded, i.gone, i.disable_if_failing_since, i.disabled_reason,
               count(*) FILTER (WHERE i.succeeded)
                 OVER (PARTITION BY s.endpoint_id ORDER BY i.ord ROWS UNBOUNDED PRECEDING) AS segment
          FROM settled s JOIN input i ON i.id = s.id
      ), streaks AS (
        SELECT g.*,
               max(g.segment) OVER (PARTITION BY g.endpoint_id) AS last_segment,
               -- The failing streak's start as of this settlement (null for a success).
               CASE WHEN NOT g.succeeded THEN
                 CASE WHEN g.segment = 0 THEN COALESCE(e.failing_since, first_failure) ELSE first_failure END
               END AS failing_since
          FROM (SELECT g.*, min(g.at) FILTER (WHERE NOT g.succeeded)
                             OVER (PARTITION BY g.endpoint_id, g.segment ORDER BY g.ord ROWS UNBOUNDED PRECEDING)
                               AS first_failure
                  FROM segmented g) g
          JOIN webhook_endpoints e ON e.id = g.endpoint_id
      ), verdict AS (
        SELECT endpoint_id,
               max(at) FILTER (WHERE succeeded) AS last_success_at,
               bool_or(succeeded) AS any_success,
               min(failing_since) FILTER (WHERE segment = last_segment) AS failing_since,
               (array_agg(disabled_reason ORDER BY ord)
                  FILTER (WHERE gone OR failing_since <= disable_if_failing_since))[1] AS disabled_reason
          FROM streaks GROUP BY endpoint_id
      ), endpoint AS (
        UPDATE webhook_endpoints e
           SET last_success_at = COALESCE(v.last_success_at, e.last_success_at),
               failing_since = v.failing_since,
               enabled = e.enabled AND v.disabled_reason IS NULL,
               disabled_reason = CASE WHEN e.enabled AND v.disabled_reason IS NOT NULL THEN v.disabled_reason
                                      ELSE e.disabled_reason END
          FROM verdict v
         WHERE e.id = v.endpoint_id
           AND (v.failing_since IS DISTINCT FROM e.failing_since
                OR (e.enabled AND v.disabled_reason IS NOT NULL)
                OR (v.any_success AND (e.last_success_at IS NULL
                                       OR e.last_success_at < v.last_success_at - ${successFreshMs}::double precision * interval '1 millisecond')))
      )
      SELECT id::text AS id FROM settled`
    return Effect.map(Effect.andThen(lock, write), (rows) => {
      const written = new Set(rows.map((row) => row.id))
      return settlements.map((s) => written.has(s.deliveryId))
    })
  }

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

  return { claimDue, settleBatch, nextDueAt, counts }
}

export type DeliverySql = ReturnType<typeof makeDeliverySql>
