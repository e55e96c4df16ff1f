/**
 * One function per SQL statement the store runs. Values are always bound
 * through the `sql` tag, never spliced into the text.
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type { Statement } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { ints, jsonbs, numerics, texts, timestamps, uuids } from "./SqlArrays.ts"

export interface MaterialRow {
  readonly name: string
  /** Normalized exact decimal, e.g. "15.5". */
  readonly concentration: string
}

export interface FormulaRow {
  readonly seq: string
  readonly id: string
  readonly fingerprint: string
  readonly name: string
  readonly createdAt: Date
  readonly materials: ReadonlyArray<MaterialRow>
  readonly messageId: string
  /** When a consumer acknowledged the message (processed). */
  readonly deliveredAt: Date | null
  /** The first acknowledging consumer's result; null when none. */
  readonly result: unknown
  /** Deliveries when it was settled or dead-lettered (0 before). */
  readonly attempts: number
  readonly deadLetteredAt: Date | null
  readonly lastError: string | null
  readonly purgedAt: Date | null
}

/** A formula to store with its message (ids chosen by the caller). */
export interface NewFormulaRow {
  readonly id: string
  readonly fingerprint: string
  readonly name: string
  readonly materials: ReadonlyArray<MaterialRow>
  readonly createdAt: Date
  readonly message: { readonly id: string; readonly body: unknown }
  /** The submitting client (X-Client-Id); absent: none, so no webhooks. */
  readonly clientId?: string | undefined
  /**
   * Its `formula.created` webhook event, for a formula with a client: written
   * (with one delivery per subscribed enabled endpoint) only if the formula is
   * inserted and the client has such an endpoint.
   */
  readonly createdEvent?: { readonly id: string; readonly body: string } | undefined
}

/** Of an inserted formula: how many webhook deliveries its statement wrote. */
export type InsertedFormulas = ReadonlyMap<string, number>

interface UnsettledRow {
  readonly message_id: string
  readonly body: unknown
  readonly at: string
  readonly dead_lettered_at: Date | null
  readonly attempts: number
  readonly last_error: string | null
}

/** An event caused by a change to an outbox row, and when. */
export interface OutboxEvent {
  /** `evt_` + 32 lowercase hex. */
  readonly id: string
  readonly type: "formula.processed" | "formula.dead_lettered"
  /** The event body's text before and after the formula id (a JSON string), which only the row knows. */
  readonly bodyBeforeFormulaId: string
  /**
   * Text, or an SQL text expression over the changed row's returned columns when only the row knows
   * them too (the database queue's dead-lettering: its attempts; see `deadLetterByReceipt`).
   */
  readonly bodyAfterFormulaId: string | Statement.Fragment
}

/** What a settling statement did: whether it changed the row, and how many webhook deliveries it wrote. */
export interface SettleOutcome {
  readonly changed: boolean
  readonly deliveries: number
}

/** A place in the outbox's (created_at, message_id) order. */
export interface OutboxPosition {
  readonly messageId: string
  /** `created_at` as PostgreSQL writes it: exact to the microsecond. */
  readonly at: string
}

interface FormulaSelectRow {
  readonly seq: string
  readonly id: string
  readonly fingerprint: string
  readonly name: string
  readonly created_at: Date
  readonly message_id: string
  readonly delivered_at: Date | null
  readonly result: string | null
  readonly attempts: number
  readonly dead_lettered_at: Date | null
  readonly last_error: string | null
  readonly purged_at: Date | null
  readonly materials: ReadonlyArray<MaterialRow> | string
}

const toFormulaRow = (row: FormulaSelectRow): FormulaRow => ({
  seq: row.seq,
  id: row.id,
  fingerprint: row.fingerprint,
  name: row.name,
  createdAt: row.created_at,
  materials: typeof row.materials === "string" ? JSON.parse(row.materials) : row.materials,
  messageId: row.message_id,
  deliveredAt: row.delivered_at,
  result: row.result === null ? null : JSON.parse(row.result),
  attempts: row.attempts,
  deadLetteredAt: row.dead_lettered_at,
  lastError: row.last_error,
  purgedAt: row.purged_at
})

export const makeFormulaSql = (sql: PgClient.PgClient) => {
  // One statement returns formulas with their materials and message state, so
  // a page costs one round trip whatever its size.
  const selectFormulas = sql`
    SELECT f.seq::text AS seq, f.id::text AS id, f.fingerprint, f.name, f.created_at,
           o.message_id::text AS message_id, o.delivered_at, o.result::text AS result, o.attempts,
           o.dead_lettered_at, o.last_error, o.purged_at,
           (SELECT json_agg(json_build_object('name', m.name, 'concentration', m.concentration::text)
                            ORDER BY m.position)
              FROM formula_materials m WHERE m.formula_id = f.id) AS materials
      FROM formulas f
      JOIN outbox o ON o.formula_id = f.id`

  const selectFormulaById = (id: string) =>
    Effect.map(sql<FormulaSelectRow>`${selectFormulas} WHERE f.id = ${id}`, (rows) =>
      rows.length === 0 ? undefined : toFormulaRow(rows[0]!)
    )

  /** Newest first; `beforeSeq` is the last row of the previous page. */
  const selectFormulaPage = (options: { readonly limit: number; readonly beforeSeq: string | undefined }) =>
    Effect.map(
      options.beforeSeq === undefined
        ? sql<FormulaSelectRow>`${selectFormulas} ORDER BY f.seq DESC LIMIT ${options.limit}`
        : sql<FormulaSelectRow>`${selectFormulas} WHERE f.seq < ${options.beforeSeq}::bigint
            ORDER BY f.seq DESC LIMIT ${options.limit}`,
      (rows) => rows.map(toFormulaRow)
    )

  const ping = Effect.asVoid(sql`SELECT 1`)

  // No NOTIFY in the inserts, whatever the queue backend: with QUEUE_BACKEND=postgres the queue announces a
  // submission after its commit (PgMessageQueue.ts `commit`), since PostgreSQL serializes the commits of
  // notifying transactions (QueueChannel.ts).

  // The batch statements below take one array per column and `unnest` them,
  // so a batch of any size is the same statement text (prepared once) and
  // one round trip per table.

  /**
   * The CTEs both insert statements share: the materials and the outbox message
   * of each formula the `inserted` CTE wrote (from `input`), nothing for the others.
   */
  const materialsAndMessages = (formulas: ReadonlyArray<NewFormulaRow>) => {
    const materials = formulas.flatMap((f) => f.materials.map((m, position) => ({ id: f.id, position, ...m })))
    return sql`materials AS (
          INSERT INTO formula_materials (formula_id, position, name, concentration)
          SELECT m.formula_id, m.position, m.name, m.concentration
            FROM unnest(
              ${uuids(materials.map((m) => m.id))},
              ${ints(materials.map((m) => m.position))},
              ${texts(materials.map((m) => m.name))},
              ${numerics(materials.map((m) => m.concentration))}
            ) AS m (formula_id, position, name, concentration)
            JOIN inserted ON inserted.id = m.formula_id
        ), messages AS (
          INSERT INTO outbox (message_id, formula_id, body)
          SELECT input.message_id, input.id, input.body FROM input JOIN inserted ON inserted.id = input.id
        )`
  }

  /**
   * Stores every formula whose fingerprint is new — the formula, its materials
   * and its outbox message — in one statement, so in one implicit transaction
   * and one round trip: the data-modifying CTEs write materials and messages
   * only for the formulas the first one inserted, and the statement commits or
   * fails as a whole. Returns the ids that were inserted (with the number of
   * webhook deliveries written for each); a formula left out lost to an
   * existing make-up, or is its own earlier attempt (`ON CONFLICT DO
   * NOTHING`, never check-then-insert). Rows are inserted in the order given.
   *
   * A batch with a formula of a known client takes the longer statement
   * (`insertNewFormulasWithEvents`); one without — the common case — this
   * one, unchanged: no webhook cost at all.
   */
  const insertNewFormulas = (formulas: ReadonlyArray<NewFormulaRow>): Effect.Effect<InsertedFormulas, SqlError> => {
    if (formulas.some((f) => f.clientId !== undefined)) return insertNewFormulasWithEvents(formulas)
    return Effect.map(
      sql<{ readonly id: string }>`
        WITH input AS (
          SELECT * FROM unnest(
            ${uuids(formulas.map((f) => f.id))},
            ${texts(formulas.map((f) => f.fingerprint))},
            ${texts(formulas.map((f) => f.name))},
            ${timestamps(formulas.map((f) => f.createdAt))},
            ${uuids(formulas.map((f) => f.message.id))},
            ${jsonbs(formulas.map((f) => f.message.body))}
          ) WITH ORDINALITY AS t (id, fingerprint, name, created_at, message_id, body, ord)
        ), inserted AS (
          INSERT INTO formulas (id, fingerprint, name, created_at)
          SELECT id, fingerprint, name, created_at FROM input ORDER BY ord
          -- Any unique index may arbitrate, not only the fingerprint's: a second attempt with the same
          -- ids can meet its first attempt's row on the id index before the fingerprint one.
          ON CONFLICT DO NOTHING
          RETURNING id
        ), ${materialsAndMessages(formulas)}
        SELECT id::text AS id FROM inserted`,
      (rows) => new Map(rows.map((row) => [row.id, 0]))
    )
  }

  /**
   * `insertNewFormulas` for a batch with clients: the same CTEs, the client
   * stored on each formula, and in the same statement each inserted formula's
   * `formula.created` event with one delivery per enabled endpoint of its
   * client subscribed to it (none, and no event, when there is none: a
   * duplicate has no event since only inserted rows have one). Deliveries are
   * due at the formula's creation time (the application's clock).
   */
  const insertNewFormulasWithEvents = (formulas: ReadonlyArray<NewFormulaRow>) => {
    return Effect.map(
      sql<{ readonly id: string; readonly deliveries: number }>`
        WITH input AS (
          SELECT * FROM unnest(
            ${uuids(formulas.map((f) => f.id))},
            ${texts(formulas.map((f) => f.fingerprint))},
            ${texts(formulas.map((f) => f.name))},
            ${timestamps(formulas.map((f) => f.createdAt))},
            ${uuids(formulas.map((f) => f.message.id))},
            ${jsonbs(formulas.map((f) => f.message.body))},
            ${texts(formulas.map((f) => f.clientId ?? null))},
            ${texts(formulas.map((f) => f.createdEvent?.id ?? null))},
            ${texts(formulas.map((f) => f.createdEvent?.body ?? null))}
          ) WITH ORDINALITY AS t (id, fingerprint, name, created_at, message_id, body, client_id, event_id,
                                  event_body, ord)
        ), inserted AS (
          INSERT INTO formulas (id, fingerprint, name, created_at, client_id)
          SELECT id, fingerprint, name, created_at, client_id FROM input ORDER BY ord
          ON CONFLICT DO NOTHING
          RETURNING id
        ), ${materialsAndMessages(formulas)}, endpoints AS (
          -- Locked (KEY SHARE: it blocks only a delete) so an endpoint deleted by a transaction still in
          -- flight is waited for and then skipped, not referenced by a delivery whose foreign key then fails
          -- the whole statement.
          SELECT e.id, e.client_id FROM webhook_endpoints e
           WHERE e.client_id IN (SELECT client_id FROM input WHERE event_id IS NOT NULL)
             AND e.enabled AND 'formula.created' = ANY (e.events)
             FOR KEY SHARE
        ), subscribed AS (
          SELECT input.id AS formula_id, input.event_id, input.created_at, e.id AS endpoint_id
            FROM input
            JOIN inserted ON inserted.id = input.id
            JOIN endpoints e ON e.client_id = input.client_id
           WHERE input.event_id IS NOT NULL
        ), events AS (
          INSERT INTO webhook_events (id, client_id, type, body, created_at)
          SELECT input.event_id, input.client_id, 'formula.created', input.event_body, input.created_at
            FROM input
           WHERE input.event_id IN (SELECT event_id FROM subscribed)
          RETURNING id
        ), deliveries AS (
          INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at, updated_at)
          -- Joined to events so that an event row is written before its deliveries reference it.
          SELECT gen_random_uuid(), s.event_id, s.endpoint_id, s.created_at, s.created_at, s.created_at
            FROM subscribed s JOIN events ON events.id = s.event_id
          RETURNING event_id
        )
        SELECT input.id::text AS id,
               (SELECT count(*) FROM deliveries d WHERE d.event_id = input.event_id)::int AS deliveries
          FROM inserted JOIN input ON input.id = inserted.id`,
      (rows) => new Map(rows.map((row) => [row.id, Number(row.deliveries)]))
    )
  }

  const findIdsByFingerprints = (fingerprints: ReadonlyArray<string>) =>
    Effect.map(
      sql<{ readonly fingerprint: string; readonly id: string }>`
        SELECT fingerprint, id::text AS id FROM formulas
         WHERE fingerprint = ANY(${texts(fingerprints)})`,
      (rows) => new Map(rows.map((row) => [row.fingerprint, row.id]))
    )

  /** Which of these messages exist: asked after a statement whose answer was lost. */
  const existingOutboxMessages = (messageIds: ReadonlyArray<string>) =>
    Effect.map(
      sql<{ readonly message_id: string }>`
        SELECT message_id::text AS message_id FROM outbox
         WHERE message_id = ANY(${uuids(messageIds)})`,
      (rows) => new Set(rows.map((row) => row.message_id))
    )

  /**
   * `change` (an UPDATE of one outbox row RETURNING its formula_id) and, only
   * if it changed the row, the event it causes for the formula's client: one
   * `webhook_events` row and one pending delivery per enabled endpoint of that
   * client subscribed to the event's type; nothing when there is none (or the
   * formula has no client). One statement, so one implicit transaction: the
   * event exists iff the change committed.
   */
  const changeWithEvent = (change: Statement.Statement<unknown>, event: OutboxEvent, at: Date) => {
    const after =
      typeof event.bodyAfterFormulaId === "string"
        ? sql`${event.bodyAfterFormulaId}::text`
        : sql`(SELECT ${event.bodyAfterFormulaId} FROM changed LIMIT 1)`
    return Effect.map(
      sql<{ readonly changed: number; readonly deliveries: number }>`
        WITH changed AS (${change}),
        endpoints AS (
          SELECT e.id, f.client_id, f.id AS formula_id
            FROM changed c
            JOIN formulas f ON f.id = c.formula_id
            JOIN webhook_endpoints e ON e.client_id = f.client_id
           WHERE e.enabled AND ${event.type}::text = ANY (e.events)
           -- As in the insert above: an endpoint deleted meanwhile is waited for and skipped, never referenced.
             FOR KEY SHARE OF e
        ), event AS (
          INSERT INTO webhook_events (id, client_id, type, body, created_at)
          SELECT ${event.id}::text, client_id, ${event.type}::text,
                 ${event.bodyBeforeFormulaId}::text || to_json(formula_id::text)::text || ${after},
                 ${at}
            FROM endpoints LIMIT 1
          RETURNING id
        ), deliveries AS (
          INSERT INTO webhook_deliveries
                 (id, event_id, endpoint_id, status, attempt_count, next_attempt_at, created_at, updated_at)
          SELECT gen_random_uuid(), event.id, endpoints.id, 'pending', 0, ${at}, ${at}, ${at}
            FROM event CROSS JOIN endpoints
          RETURNING id
        )
        SELECT (SELECT count(*) FROM changed)::int AS changed, (SELECT count(*) FROM deliveries)::int AS deliveries`,
      (rows): SettleOutcome => ({ changed: rows[0]!.changed > 0, deliveries: rows[0]!.deliveries })
    )
  }

  /**
   * Locks a message's outbox row until the end of the caller's transaction
   * (a concurrent locker waits; a postgres-backend claim skips it) and says
   * whether it is settled: processed or purged. Undefined: no such row.
   */
  const lockOutboxRow = (messageId: string) =>
    Effect.map(
      sql<{ readonly settled: boolean }>`
        SELECT (delivered_at IS NOT NULL OR purged_at IS NOT NULL) AS settled FROM outbox
         WHERE message_id = ${messageId} FOR UPDATE`,
      (rows) => (rows.length === 0 ? undefined : rows[0]!.settled)
    )

  /**
   * Settles a message acked by a consumer, with its result (JSON text, or
   * null for none) and its `formula.processed` event. Only the first ack
   * changes the row: a redelivered message acked again keeps the first
   * result, and a retried statement whose answer was lost writes nothing twice.
   */
  const settleProcessed = (
    message: { readonly messageId: string; readonly attempts: number; readonly resultText: string | null },
    event: OutboxEvent,
    at: Date
  ) =>
    changeWithEvent(
      sql`UPDATE outbox SET delivered_at = ${at}, result = ${message.resultText}::jsonb, attempts = ${message.attempts}
           WHERE message_id = ${message.messageId} AND delivered_at IS NULL AND purged_at IS NULL
          RETURNING formula_id`,
      event,
      at
    )

  /**
   * Records a dead-lettering, with its `formula.dead_lettered` event. Changes
   * nothing for a message processed, purged or already recorded as dead.
   */
  const settleDeadLettered = (
    letter: {
      readonly messageId: string
      readonly attempts: number
      readonly lastError: string
      readonly deadLetteredAt: Date
    },
    event: OutboxEvent,
    at: Date
  ) =>
    changeWithEvent(
      sql`UPDATE outbox SET dead_lettered_at = ${letter.deadLetteredAt}, attempts = ${letter.attempts}, last_error = ${letter.lastError}
           WHERE message_id = ${letter.messageId} AND delivered_at IS NULL AND purged_at IS NULL
             AND dead_lettered_at IS NULL
          RETURNING formula_id`,
      event,
      at
    )

  // The database queue's settlements (QUEUE_BACKEND=postgres, queue/PgMessageQueue.ts). The row in flight is
  // found by its receipt, which is current only until its visibility deadline (`now`, the queue's clock): a
  // receipt past it is stale even before another consumer claims the row, as in the in-memory queue.

  /**
   * Settles the row in flight under `receipt` with its result and `formula.processed` event, and clears
   * the receipt. A row already settled under that receipt (consumeTransactional settled it inside its
   * own transaction) only has its receipt cleared: the first result stays, no second event. `changed`
   * false: the receipt is stale or unknown.
   */
  const settleByReceipt = (ack: {
    readonly receipt: string
    readonly resultText: string | null
    readonly now: Date
    readonly event: OutboxEvent
  }) =>
    changeWithEvent(
      // `old` is the row before the change (RETURNING sees only the new one); `o.receipt` is matched again
      // so that a second ack with the same receipt, waiting for the first one's lock, changes nothing.
      sql`UPDATE outbox o SET receipt = NULL,
                 delivered_at = coalesce(o.delivered_at, ${ack.now}),
                 result = CASE WHEN o.delivered_at IS NULL THEN ${ack.resultText}::jsonb ELSE o.result END
            FROM (SELECT message_id, delivered_at IS NOT NULL AS settled FROM outbox WHERE receipt = ${ack.receipt}) old
           WHERE o.message_id = old.message_id AND o.receipt = ${ack.receipt}
             AND (old.settled OR (o.visible_at > ${ack.now} AND o.purged_at IS NULL AND o.dead_lettered_at IS NULL))
          RETURNING CASE WHEN old.settled THEN NULL ELSE o.formula_id END AS formula_id, o.message_id`,
      ack.event,
      ack.now
    )

  /**
   * Dead-letters the row in flight under `receipt` if it is at its last delivery (a nack that used up
   * `maxDeliveries`), with `lastError` and its `formula.dead_lettered` event. `changed` false: the
   * receipt is stale or unknown, or the row has deliveries left.
   */
  const deadLetterByReceipt = (nack: {
    readonly receipt: string
    readonly maxDeliveries: number
    readonly lastError: string
    readonly now: Date
    readonly event: OutboxEvent
  }) =>
    changeWithEvent(
      sql`UPDATE outbox SET dead_lettered_at = ${nack.now}, last_error = ${nack.lastError}, receipt = NULL
           WHERE receipt = ${nack.receipt} AND attempts >= ${nack.maxDeliveries} AND visible_at > ${nack.now}
             AND delivered_at IS NULL AND purged_at IS NULL AND dead_lettered_at IS NULL
          RETURNING formula_id, message_id, attempts`,
      nack.event,
      nack.now
    )

  /**
   * Dead-letters a due row that has used up `maxDeliveries` (found by a claim, which does not deliver
   * it): its last delivery expired (`expiredError`), or it waits out a nack's delay (keeping that
   * nack's error). Changes nothing if anyone changed the row since (another instance dead-lettered it).
   */
  const deadLetterExhausted = (letter: {
    readonly messageId: string
    readonly maxDeliveries: number
    readonly expiredError: string
    readonly nackedError: string
    readonly now: Date
    readonly event: OutboxEvent
  }) =>
    changeWithEvent(
      sql`UPDATE outbox SET dead_lettered_at = ${letter.now}, receipt = NULL,
                 last_error = CASE WHEN receipt IS NULL THEN coalesce(last_error, ${letter.nackedError})
                                   ELSE ${letter.expiredError} END
           WHERE message_id = ${letter.messageId} AND attempts >= ${letter.maxDeliveries}
             AND visible_at <= ${letter.now}
             AND delivered_at IS NULL AND purged_at IS NULL AND dead_lettered_at IS NULL
          RETURNING formula_id, message_id, attempts, last_error`,
      letter.event,
      letter.now
    )

  /** Redriven dead letters are pending again, their attempts counted afresh. */
  const markRedriven = (messageIds: ReadonlyArray<string>) =>
    messageIds.length === 0
      ? Effect.void
      : Effect.asVoid(
          sql`UPDATE outbox SET dead_lettered_at = NULL, last_error = NULL, attempts = 0
               WHERE message_id = ANY(${uuids(messageIds)}) AND delivered_at IS NULL`
        )

  /** Settles dead letters an operator purged, so start-up recovery does not bring them back. */
  const markPurged = (messageIds: ReadonlyArray<string>, at: Date) =>
    messageIds.length === 0
      ? Effect.void
      : Effect.asVoid(sql`UPDATE outbox SET purged_at = ${at} WHERE message_id IN ${sql.in(messageIds)}`)

  /**
   * Unsettled messages, oldest first, after a position and up to another
   * (both inclusive of nothing past them): one page of the backlog. A
   * position is `created_at` as the database's own text (microseconds, which
   * a JS Date would round away, and with them the cursor's exactness) and
   * the message id.
   */
  const selectUnsettled = (options: {
    readonly limit: number
    readonly after: OutboxPosition | undefined
    readonly upTo: OutboxPosition
  }) =>
    Effect.map(
      options.after === undefined
        ? sql<UnsettledRow>`
            SELECT message_id::text AS message_id, body, created_at::text AS at,
                   dead_lettered_at, attempts, last_error FROM outbox
             WHERE delivered_at IS NULL AND purged_at IS NULL
               AND (created_at, message_id) <= (${options.upTo.at}::timestamptz, ${options.upTo.messageId}::uuid)
             ORDER BY created_at, message_id LIMIT ${options.limit}`
        : sql<UnsettledRow>`
            SELECT message_id::text AS message_id, body, created_at::text AS at,
                   dead_lettered_at, attempts, last_error FROM outbox
             WHERE delivered_at IS NULL AND purged_at IS NULL
               AND (created_at, message_id) > (${options.after.at}::timestamptz, ${options.after.messageId}::uuid)
               AND (created_at, message_id) <= (${options.upTo.at}::timestamptz, ${options.upTo.messageId}::uuid)
             ORDER BY created_at, message_id LIMIT ${options.limit}`,
      (rows) =>
        rows.map((row) => ({
          messageId: row.message_id,
          body: typeof row.body === "string" ? JSON.parse(row.body) : row.body,
          at: row.at,
          deadLettered:
            row.dead_lettered_at === null
              ? undefined
              : { at: row.dead_lettered_at, attempts: row.attempts, lastError: row.last_error ?? "" }
        }))
    )

  /** The position of the newest unsettled message: where a start-up's backlog ends. */
  const selectLastUnsettled = Effect.map(
    sql<{ readonly message_id: string; readonly at: string }>`
      SELECT message_id::text AS message_id, created_at::text AS at FROM outbox
       WHERE delivered_at IS NULL AND purged_at IS NULL
       ORDER BY created_at DESC, message_id DESC LIMIT 1`,
    (rows): OutboxPosition | undefined =>
      rows.length === 0 ? undefined : { messageId: rows[0]!.message_id, at: rows[0]!.at }
  )

  /** The newest formulas' fingerprints, to warm the in-memory duplicate cache. */
  const selectRecentFingerprints = (limit: number) =>
    sql<{ readonly fingerprint: string; readonly id: string }>`
      SELECT fingerprint, id::text AS id FROM formulas ORDER BY seq DESC LIMIT ${limit}`

  return {
    selectFormulaById,
    selectFormulaPage,
    ping,
    insertNewFormulas,
    findIdsByFingerprints,
    existingOutboxMessages,
    lockOutboxRow,
    settleProcessed,
    settleDeadLettered,
    settleByReceipt,
    deadLetterByReceipt,
    deadLetterExhausted,
    markRedriven,
    markPurged,
    selectUnsettled,
    selectLastUnsettled,
    selectRecentFingerprints
  }
}
