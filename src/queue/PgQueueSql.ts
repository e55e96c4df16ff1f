/**
 * The database queue's statements (PgMessageQueue.ts), one function each.
 * The settlements that write webhook events (ack, dead-lettering) are the
 * store's (FormulaSql.ts, beside the in-memory queue's, sharing its
 * `changeWithEvent`); these are the rest.
 *
 * Every time is the queue's "now" (its Clock plus the database's offset,
 * PgMessageQueue.ts), bound as a parameter, never `now()`: so a TestClock
 * drives this backend exactly like the in-memory one, and instances share the
 * database's clock.
 *
 * A row is unsettled while `delivered_at`, `purged_at` and `dead_lettered_at`
 * are NULL (the partial index `outbox_due` holds exactly those, by when they
 * fell due: `greatest(visible_at, created_at)`, then `created_at`); it is due
 * when `visible_at <= now` (never by `created_at`: a new row is due at once in
 * every instance, whatever their clocks). A receipt is current while its row
 * is unsettled and `visible_at > now`. `outbox_waiting` holds the unsettled
 * rows with a finite `visible_at` (in flight, delayed, redelivered), for the
 * sweeps.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { readyChannelExpression } from "../store/QueueChannel.ts"
import { uuids } from "../store/SqlArrays.ts"

export interface ClaimedRow {
  readonly message_id: string
  /** Null for a row at `maxDeliveries`: locked but not delivered (to be dead-lettered). */
  readonly receipt: string | null
  readonly attempts: number | null
  readonly body: unknown
  readonly exhausted: boolean
  /** It was in flight under an earlier receipt whose deadline passed (an expiry, not a nack). */
  readonly expired: boolean
}

export interface DeadLetterRow {
  readonly message_id: string
  readonly attempts: number
  readonly last_error: string | null
  readonly body: unknown
  readonly dead_lettered_at: Date
}

export interface CountsRow {
  readonly ready: number
  readonly delayed: number
  readonly in_flight: number
  readonly dead_lettered: number
}

/** jsonb arrives parsed from PostgreSQL, as text from some paths: always a value here. */
export const jsonValue = (value: unknown): unknown => (typeof value === "string" ? JSON.parse(value) : value)

export const makePgQueueSql = (sql: PgClient.PgClient) => {
  const unsettled = sql.literal("delivered_at IS NULL AND purged_at IS NULL AND dead_lettered_at IS NULL")

  const databaseNow = Effect.map(sql<{ readonly now: Date }>`SELECT now() AS now`, (rows) => rows[0]!.now)

  const readyChannel = Effect.map(
    sql<{ readonly channel: string }>`SELECT ${sql.literal(readyChannelExpression)} AS channel`,
    (rows) => rows[0]!.channel
  )

  /**
   * Tells every instance LISTENing that `count` messages became ready (QueueChannel.ts): a statement
   * of its own, sent after theirs committed, never part of it (see PgMessageQueue.ts, "announcing").
   * Its transaction commits without waiting for the WAL flush (`synchronous_commit` off for it alone):
   * it writes no data, and a notifying commit holds PostgreSQL's server-wide notify lock until it returns.
   */
  const announce = (count: number) =>
    Effect.asVoid(
      sql`SELECT set_config('synchronous_commit', 'off', true),
                 pg_notify(${sql.literal(readyChannelExpression)}, ${String(count)})`
    )

  /**
   * Claims up to `max` due rows in the order they fell due (a new row when
   * written, a redelivery at its deadline or the end of its delay: as the
   * in-memory queue's ready line, so a redelivery never waits behind messages
   * newer than it), skipping rows another
   * claim holds: each gets a fresh receipt, `visible_at = until` and one more
   * attempt. A due row that already had `maxDeliveries` deliveries comes back
   * with `exhausted` and no receipt, unchanged: the caller dead-letters it.
   * Rows come back in claim order.
   */
  const claim = (claim: {
    readonly now: Date
    readonly until: Date
    readonly max: number
    readonly maxDeliveries: number
  }) =>
    sql<ClaimedRow>`
      WITH due AS (
        SELECT message_id, visible_at, created_at, attempts >= ${claim.maxDeliveries} AS exhausted,
               receipt IS NOT NULL AS expired
          FROM outbox
         WHERE visible_at <= ${claim.now} AND ${unsettled}
         ORDER BY greatest(visible_at, created_at), created_at
         LIMIT ${claim.max}
           FOR UPDATE SKIP LOCKED
      ), claimed AS (
        UPDATE outbox o SET receipt = gen_random_uuid(), visible_at = ${claim.until}, attempts = o.attempts + 1
          FROM due
         WHERE o.message_id = due.message_id AND NOT due.exhausted
        RETURNING o.message_id, o.receipt, o.attempts, o.body
      )
      SELECT due.message_id::text AS message_id, c.receipt::text AS receipt, c.attempts, c.body, due.exhausted,
             due.expired
        FROM due LEFT JOIN claimed c ON c.message_id = due.message_id
       ORDER BY greatest(due.visible_at, due.created_at), due.created_at`

  /**
   * Due rows that have used up `maxDeliveries` (their last delivery expired): dead letters in all but
   * the column, for the caller to dead-letter (the store's `deadLetterExhausted`). Only rows that were
   * ever delivered or delayed can be such, and those have a finite `visible_at`: `outbox_waiting` holds
   * only those, so the sweep skips every message that never waited (`-infinity`), however long the backlog.
   */
  const exhaustedDue = (sweep: { readonly now: Date; readonly maxDeliveries: number; readonly limit: number }) =>
    Effect.map(
      sql<{ readonly message_id: string }>`
        SELECT message_id::text AS message_id FROM outbox
         WHERE visible_at > '-infinity' AND visible_at <= ${sweep.now} AND attempts >= ${sweep.maxDeliveries}
           AND ${unsettled}
         ORDER BY visible_at, created_at LIMIT ${sweep.limit}`,
      (rows) => rows.map((row) => row.message_id)
    )

  /**
   * Ends the deliveries whose deadline passed (with deliveries left): their receipts cleared, as the
   * in-memory queue's timer does, so they read as ready and their expiry is counted once, by whoever
   * saw it first (this, or a claim). Returns how many.
   */
  const expireDue = (expire: { readonly now: Date; readonly maxDeliveries: number }) =>
    Effect.map(
      sql<{ readonly expired: number }>`
        WITH due AS (
          -- Rows someone else holds (a claim, another sweep) are theirs to handle: skipped, never waited for,
          -- so sweeps in several instances cannot deadlock.
          SELECT message_id FROM outbox
           WHERE visible_at > '-infinity' AND visible_at <= ${expire.now} AND receipt IS NOT NULL
             AND attempts < ${expire.maxDeliveries} AND ${unsettled}
             FOR UPDATE SKIP LOCKED
        ), expired AS (
          UPDATE outbox o SET receipt = NULL FROM due WHERE o.message_id = due.message_id
          RETURNING 1
        )
        SELECT count(*)::int AS expired FROM expired`,
      (rows) => rows[0]!.expired
    )

  /** When the next unsettled row not yet due becomes due; undefined when none is waiting. */
  const nextDue = (now: Date) =>
    Effect.map(
      sql<{ readonly next: Date | null }>`
        SELECT min(visible_at) AS next FROM outbox
         WHERE visible_at > '-infinity' AND visible_at > ${now} AND ${unsettled}`,
      (rows) => rows[0]?.next ?? undefined
    )

  /**
   * A message of its own (no formula), ready now; false when the id exists already (in any state).
   * `created_at` is `written` (the queue's clock plus `micros` microseconds, not the column's default
   * `now()`), so that it takes its place in the claim order among redeliveries, whose times are the
   * queue's too (a TestClock's, in tests).
   */
  const publish = (message: {
    readonly messageId: string
    readonly bodyText: string
    readonly written: { readonly at: Date; readonly micros: number }
  }) =>
    Effect.map(
      sql<{ readonly added: number }>`
        WITH added AS (
          INSERT INTO outbox (message_id, body, created_at)
          VALUES (${message.messageId}::uuid, ${message.bodyText}::jsonb,
                  ${message.written.at}::timestamptz + ${message.written.micros}::int * interval '1 microsecond')
          ON CONFLICT DO NOTHING
          RETURNING message_id
        )
        SELECT count(*)::int AS added FROM added`,
      (rows) => rows[0]!.added > 0
    )

  const exists = (messageId: string) =>
    Effect.map(
      sql<{ readonly found: number }>`SELECT count(*)::int AS found FROM outbox WHERE message_id = ${messageId}::uuid`,
      (rows) => rows[0]!.found > 0
    )

  /**
   * A nack with deliveries left: the row waits until `until` (ready at once
   * when `until <= now`), keeping `lastError` for its dead letter.
   * False: stale receipt, or the delivery was the last one (the store
   * dead-letters it, with its event).
   */
  const requeueByReceipt = (nack: {
    readonly receipt: string
    readonly now: Date
    readonly until: Date
    readonly lastError: string
    readonly maxDeliveries: number
  }) =>
    Effect.map(
      sql<{ readonly changed: number }>`
        WITH nacked AS (
          UPDATE outbox SET receipt = NULL, visible_at = ${nack.until}, last_error = ${nack.lastError}
           WHERE receipt = ${nack.receipt}::uuid AND attempts < ${nack.maxDeliveries}
             AND visible_at > ${nack.now} AND ${unsettled}
          RETURNING 1
        )
        SELECT count(*)::int AS changed FROM nacked`,
      (rows) => rows[0]!.changed > 0
    )

  /** A new visibility deadline for a current receipt; false when it is stale. */
  const extendByReceipt = (extend: { readonly receipt: string; readonly now: Date; readonly until: Date }) =>
    Effect.map(
      sql<{ readonly changed: number }>`
        WITH extended AS (
          UPDATE outbox SET visible_at = ${extend.until}
           WHERE receipt = ${extend.receipt}::uuid AND visible_at > ${extend.now} AND ${unsettled}
          RETURNING 1
        )
        SELECT count(*)::int AS changed FROM extended`,
      (rows) => rows[0]!.changed > 0
    )

  /**
   * The delivery given back uncounted: ready at once, in its place as a new
   * message (`-infinity`: by its age, ahead of every row that fell due after it
   * was written).
   */
  const releaseByReceipt = (release: { readonly receipt: string; readonly now: Date }) =>
    Effect.map(
      sql<{ readonly changed: number }>`
        WITH released AS (
          UPDATE outbox SET receipt = NULL, visible_at = '-infinity', attempts = attempts - 1
           WHERE receipt = ${release.receipt}::uuid AND visible_at > ${release.now} AND ${unsettled}
          RETURNING 1
        )
        SELECT count(*)::int AS changed FROM released`,
      (rows) => rows[0]!.changed > 0
    )

  const deadLetterCondition = sql.literal("dead_lettered_at IS NOT NULL AND delivered_at IS NULL AND purged_at IS NULL")

  /** Dead letters, oldest dead-lettering first. */
  const deadLetters = sql<DeadLetterRow>`
    SELECT message_id::text AS message_id, attempts, last_error, body, dead_lettered_at
      FROM outbox WHERE ${deadLetterCondition}
     ORDER BY dead_lettered_at, created_at, message_id`

  const onlyIds = (messageIds: ReadonlyArray<string> | undefined) =>
    messageIds === undefined ? sql`` : sql` AND message_id = ANY(${uuids(messageIds)})`

  /**
   * Up to `limit` dead letters (these ids, or any) ready again at `now`
   * (behind what is ready already), attempts from 0. Returns how many.
   */
  const redrive = (redrive: {
    readonly messageIds: ReadonlyArray<string> | undefined
    readonly limit: number
    readonly now: Date
  }) =>
    Effect.map(
      sql<{ readonly redriven: number }>`
        WITH picked AS (
          SELECT message_id FROM outbox WHERE ${deadLetterCondition}${onlyIds(redrive.messageIds)}
           ORDER BY dead_lettered_at, created_at, message_id LIMIT ${redrive.limit}
             FOR UPDATE SKIP LOCKED
        ), redriven AS (
          UPDATE outbox o SET dead_lettered_at = NULL, last_error = NULL, attempts = 0, receipt = NULL,
                 visible_at = ${redrive.now}
            FROM picked WHERE o.message_id = picked.message_id
          RETURNING 1
        )
        SELECT count(*)::int AS redriven FROM redriven`,
      (rows) => rows[0]!.redriven
    )

  /** Dead letters (these ids, or all) settled as purged. Returns how many. */
  const purge = (purge: { readonly messageIds: ReadonlyArray<string> | undefined; readonly now: Date }) =>
    Effect.map(
      sql<{ readonly purged: number }>`
        WITH purged AS (
          UPDATE outbox SET purged_at = ${purge.now} WHERE ${deadLetterCondition}${onlyIds(purge.messageIds)}
          RETURNING 1
        )
        SELECT count(*)::int AS purged FROM purged`,
      (rows) => rows[0]!.purged
    )

  /** The unsettled rows by state at `now`. */
  const counts = (now: Date) =>
    Effect.map(
      sql<CountsRow>`
        SELECT count(*) FILTER (WHERE dead_lettered_at IS NULL AND visible_at <= ${now})::int AS ready,
               count(*) FILTER (WHERE dead_lettered_at IS NULL AND visible_at > ${now} AND receipt IS NULL)::int
                 AS delayed,
               count(*) FILTER (WHERE dead_lettered_at IS NULL AND visible_at > ${now} AND receipt IS NOT NULL)::int
                 AS in_flight,
               count(*) FILTER (WHERE dead_lettered_at IS NOT NULL)::int AS dead_lettered
          FROM outbox WHERE delivered_at IS NULL AND purged_at IS NULL`,
      (rows) => rows[0]!
    )

  /** What counts against the capacity: unsettled rows that are not dead letters (the `outbox_due` index). */
  const capacityCount = Effect.map(
    sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM outbox WHERE ${unsettled}`,
    (rows) => rows[0]!.n
  )

  return {
    databaseNow,
    readyChannel,
    announce,
    claim,
    exhaustedDue,
    expireDue,
    nextDue,
    publish,
    exists,
    requeueByReceipt,
    extendByReceipt,
    releaseByReceipt,
    deadLetters,
    redrive,
    purge,
    counts,
    capacityCount
  }
}

export type PgQueueSql = ReturnType<typeof makePgQueueSql>
