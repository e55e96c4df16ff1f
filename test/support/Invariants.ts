/**
 * The runtime's atomicity invariants, checked against the database and the
 * queue of a live runtime:
 *
 * (a) every formula has exactly one outbox row, and every outbox row a formula;
 * (b) the messages in the queue plus the ones already acked are exactly the
 *     outbox rows: no message without a committed formula, no committed
 *     formula without its message, no message twice.
 *
 * Checking drains the queue (receives everything and acks it), so the next
 * check starts from an empty queue and every outbox row settled. Call it
 * while nothing else submits.
 */
import { assert } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"

export interface FormulaRecord {
  readonly id: string
  readonly fingerprint: string
}

interface OutboxRecord {
  readonly message_id: string
  readonly formula_id: string
  readonly delivered: boolean
  readonly purged: boolean
}

/**
 * Every formula in the database, by id. Read again (twice at most) when the pool hands out a connection a
 * fault test killed while the database was "offline": its socket error may surface only on its next query.
 */
export const formulasInDatabase = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const rows = yield* sql<FormulaRecord>`SELECT id::text AS id, fingerprint FROM formulas`
  return new Map(rows.map((row) => [row.id, row.fingerprint]))
}).pipe(Effect.retry({ times: 2, while: (error) => error.reason._tag === "ConnectionError" }))

/** Receives every message the queue will give right now (each delivery invisible for a minute). */
export const drainQueue = Effect.gen(function* () {
  const queue = yield* MessageQueue
  const deliveries: Array<{ readonly messageId: string; readonly receipt: string; readonly body: unknown }> = []
  while (true) {
    const batch = yield* queue.receive({ max: 100, visibilityTimeout: "1 minute" })
    if (batch.length === 0) return deliveries
    deliveries.push(...batch)
  }
})

export interface InvariantReport {
  readonly formulas: number
  /** Messages this check received (and acked). */
  readonly delivered: ReadonlyArray<string>
}

/** Checks (a) and (b), draining and acking the queue. */
export const assertInvariants = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const queue = yield* MessageQueue

  const before = yield* queue.stats
  assert.strictEqual(before.pending, 0, "no reservation is left open (pending) after submissions finished")
  assert.strictEqual(before.inFlight, 0, "nothing in flight before the check")
  assert.strictEqual(before.deadLettered, 0, "no dead letters")

  const formulas = yield* formulasInDatabase
  const outbox = yield* sql<OutboxRecord>`
    SELECT message_id::text AS message_id, formula_id::text AS formula_id,
           delivered_at IS NOT NULL AS delivered, purged_at IS NOT NULL AS purged
      FROM outbox`

  // (a) one outbox row per formula, one formula per outbox row
  const outboxByFormula = new Map<string, Array<OutboxRecord>>()
  for (const row of outbox) {
    assert.isTrue(formulas.has(row.formula_id), `outbox row ${row.message_id} names a formula that exists`)
    outboxByFormula.set(row.formula_id, [...(outboxByFormula.get(row.formula_id) ?? []), row])
  }
  for (const id of formulas.keys()) {
    assert.strictEqual(outboxByFormula.get(id)?.length ?? 0, 1, `formula ${id} has exactly one outbox row`)
  }

  // (b) queued ∪ acked = outbox, queued ∩ acked = ∅, nothing twice
  const deliveries = yield* drainQueue
  const byMessage = new Map(outbox.map((row) => [row.message_id, row]))
  const seen = new Set<string>()
  for (const delivery of deliveries) {
    assert.isFalse(seen.has(delivery.messageId), `message ${delivery.messageId} is in the queue once`)
    seen.add(delivery.messageId)
    const row = byMessage.get(delivery.messageId)
    assert.isDefined(row, `queued message ${delivery.messageId} has a committed outbox row`)
    assert.isFalse(row!.delivered, `queued message ${delivery.messageId} was not acked before`)
    const body = delivery.body as { readonly formulaId?: unknown }
    assert.strictEqual(body.formulaId, row!.formula_id, "the message announces its own formula")
    assert.isTrue(formulas.has(row!.formula_id), `queued message ${delivery.messageId} names a committed formula`)
  }
  for (const row of outbox) {
    if (!row.delivered && !row.purged) {
      assert.isTrue(seen.has(row.message_id), `committed formula ${row.formula_id} has its message in the queue`)
    }
  }

  for (const delivery of deliveries) yield* queue.ack(delivery.receipt)
  const after = yield* queue.stats
  assert.strictEqual(after.size, 0, "the queue is empty after draining")
  const unsettled = yield* sql<{ readonly count: number }>`
    SELECT count(*)::int AS count FROM outbox WHERE delivered_at IS NULL AND purged_at IS NULL`
  assert.strictEqual(unsettled[0]!.count, 0, "every acked message settled its outbox row")

  return { formulas: formulas.size, delivered: deliveries.map((delivery) => delivery.messageId) } as InvariantReport
})
