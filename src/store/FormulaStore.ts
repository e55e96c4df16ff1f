/**
 * Formulas, their materials and their outbox message, in SQL.
 *
 * `insert` never checks before inserting: it inserts with
 * `ON CONFLICT DO NOTHING` and, when nothing was inserted, reads the winner's
 * id by fingerprint. Two concurrent submissions of one make-up therefore
 * cannot both win: the unique index serialises them.
 */
import { PgClient } from "@effect/sql-pg"
import { randomUUID } from "node:crypto"
import { Clock, Config, Context, Duration, Effect, Exit, Layer } from "effect"
import { GroupCommitLingerMs, GroupCommitMaxBatch, GroupCommitWorkers } from "../Settings.ts"
import {
  DatabaseUnavailable,
  isConnectionFailure,
  operationTimeout,
  timedOut,
  unavailableOnFailure
} from "./DatabaseUnavailable.ts"
import {
  type FormulaRow,
  makeFormulaSql,
  type MaterialRow,
  type NewFormulaRow,
  type OutboxEvent,
  type OutboxPosition,
  type SettleOutcome
} from "./FormulaSql.ts"
import * as GroupCommit from "./GroupCommit.ts"

export type { FormulaRow, MaterialRow, OutboxPosition, SettleOutcome }

export { DatabaseUnavailable }

export type NewFormula = NewFormulaRow

export type InsertOutcome =
  | {
      readonly _tag: "Created"
      readonly formula: FormulaRow
      /**
       * Webhook deliveries written with it: the dispatcher should be woken when
       * positive. Unknown when only a second attempt learnt that the first one
       * committed: then counted as 1 if it had an event (a spurious wake-up is harmless).
       */
      readonly webhookDeliveries: number
    }
  | { readonly _tag: "Duplicate"; readonly existingId: string }

/** An unsettled message, with its place in the outbox (a cursor for the next page). */
export interface UnsettledMessage extends OutboxPosition {
  readonly body: unknown
  /** Set when it is a dead letter: listed, not delivered, until redriven or purged. */
  readonly deadLettered: { readonly at: Date; readonly attempts: number; readonly lastError: string } | undefined
}

export interface ProcessedMessage {
  readonly messageId: string
  readonly attempts: number
  /** The result's JSON text (MessageResult.encodeResult); null for none. */
  readonly resultText: string | null
}

/** What `lockMessage` found under the lock. */
export type MessageLock = "open" | "settled" | "missing"

export interface DeadLetteredMessage {
  readonly messageId: string
  readonly attempts: number
  readonly lastError: string
  readonly deadLetteredAt: Date
}

export interface Page {
  readonly items: ReadonlyArray<FormulaRow>
  /** `seq` of the last item when more follow: pass it back as `beforeSeq`. */
  readonly nextBeforeSeq: string | null
}

export interface GroupCommitSettings {
  readonly maxBatch: number
  readonly linger: Duration.Input
  readonly workers: number
}

/** The database queue's ack (queue/PgMessageQueue.ts): the delivery's receipt, its result, the queue's now. */
export interface ReceiptAck {
  readonly receipt: string
  /** The result's JSON text (MessageResult.encodeResult); null for none. */
  readonly resultText: string | null
  readonly now: Date
}

export const GroupCommitConfig = Config.all({
  maxBatch: GroupCommitMaxBatch.config,
  linger: Config.map(GroupCommitLingerMs.config, Duration.millis),
  workers: GroupCommitWorkers.config
})

export class FormulaStore extends Context.Service<
  FormulaStore,
  {
    insert(formula: NewFormula): Effect.Effect<InsertOutcome, DatabaseUnavailable>
    findById(id: string): Effect.Effect<FormulaRow | undefined, DatabaseUnavailable>
    /** Newest first, `limit` items older than `beforeSeq` (a `FormulaRow.seq`). */
    page(options: {
      readonly limit: number
      readonly beforeSeq: string | undefined
    }): Effect.Effect<Page, DatabaseUnavailable>
    readonly ping: Effect.Effect<void, DatabaseUnavailable>
    /**
     * Records that a consumer acknowledged the message, with its result and
     * the `formula.processed` event, in one transaction. Idempotent: only the
     * first call changes anything (the first result wins).
     */
    settleProcessed(message: ProcessedMessage): Effect.Effect<SettleOutcome, DatabaseUnavailable>
    /**
     * Inside a transaction: locks the message's outbox row until the
     * transaction ends and says what it holds — "settled" (processed or
     * purged), "open", or "missing" (no such row: a message published to the
     * queue directly, or an id that is not a UUID). consumeTransactional's
     * first statement.
     */
    lockMessage(messageId: string): Effect.Effect<MessageLock, DatabaseUnavailable>
    /** Records a dead-lettering and its `formula.dead_lettered` event, in one transaction. Idempotent. */
    settleDeadLettered(letter: DeadLetteredMessage): Effect.Effect<SettleOutcome, DatabaseUnavailable>
    /**
     * The database queue's ack: settles the row in flight under the receipt (result, `formula.processed`
     * event) and clears the receipt; only clears it when the row is already settled. `changed` false:
     * the receipt is stale (its deadline passed at `now`) or unknown.
     */
    settleByReceipt(ack: ReceiptAck): Effect.Effect<SettleOutcome, DatabaseUnavailable>
    /**
     * The database queue's nack of a last delivery: dead-letters the row in flight under the receipt if
     * it has used up `maxDeliveries`, with its event. `changed` false: stale receipt, or deliveries left.
     */
    deadLetterByReceipt(nack: {
      readonly receipt: string
      readonly maxDeliveries: number
      readonly lastError: string
      readonly now: Date
    }): Effect.Effect<SettleOutcome, DatabaseUnavailable>
    /**
     * Dead-letters a due row that used up `maxDeliveries` (a claim found it): `expiredError` as its last
     * error if its last delivery expired, else (delayed by a nack) its own. Idempotent.
     */
    deadLetterExhausted(letter: {
      readonly messageId: string
      readonly maxDeliveries: number
      readonly expiredError: string
      readonly nackedError: string
      readonly now: Date
    }): Effect.Effect<SettleOutcome, DatabaseUnavailable>
    /** Records that these dead letters were redriven: pending again. */
    markRedriven(messageIds: ReadonlyArray<string>): Effect.Effect<void, DatabaseUnavailable>
    /** Records that an operator purged these dead letters. */
    markPurged(messageIds: ReadonlyArray<string>): Effect.Effect<void, DatabaseUnavailable>
    /**
     * Committed messages no consumer has acknowledged (and nobody purged),
     * oldest first, page by page: after `after` (undefined: from the start),
     * up to `upTo` inclusive.
     */
    unsettledMessages(options: {
      readonly limit: number
      readonly after: OutboxPosition | undefined
      readonly upTo: OutboxPosition
    }): Effect.Effect<ReadonlyArray<UnsettledMessage>, DatabaseUnavailable>
    /** Where the newest unsettled message is; undefined when every message is settled. */
    readonly lastUnsettled: Effect.Effect<OutboxPosition | undefined, DatabaseUnavailable>
    /** Which of these messages exist, i.e. whose transactions committed. */
    existingMessages(messageIds: ReadonlyArray<string>): Effect.Effect<ReadonlySet<string>, DatabaseUnavailable>
    /** fingerprint → id of the newest `limit` formulas. */
    recentFingerprints(
      limit: number
    ): Effect.Effect<ReadonlyArray<{ readonly fingerprint: string; readonly id: string }>, DatabaseUnavailable>
  }
>()("formula-intake/store/FormulaStore") {
  /** With explicit group-commit settings (see GroupCommit.ts); `maxBatch: 1` writes each formula alone. */
  static readonly layerWith = (options: GroupCommitSettings) =>
    Layer.effect(
      FormulaStore,
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const q = makeFormulaSql(sql)

        const createdRow = (formula: NewFormula, webhookDeliveries: number): InsertOutcome => ({
          _tag: "Created",
          webhookDeliveries,
          formula: {
            seq: "",
            id: formula.id,
            fingerprint: formula.fingerprint,
            name: formula.name,
            createdAt: formula.createdAt,
            materials: formula.materials,
            messageId: formula.message.id,
            deliveredAt: null,
            result: null,
            attempts: 0,
            deadLetteredAt: null,
            lastError: null,
            purgedAt: null
          }
        })

        /**
         * One formula, one statement. When the statement fails we may not know
         * whether it committed (the connection can drop after the server
         * committed, or before the statement it already received arrives). So
         * it runs once more with the same ids: the unique index makes that
         * second attempt wait for a first one still running, and then
         * "duplicate of our own id" means the first one committed; a first
         * one arriving later still finds the make-up taken and writes nothing.
         * No guess, no race with a statement still in flight.
         *
         * Only a connection failure leaves the outcome unknown. An error the
         * server answered (a unique violation, a deadlock, ...) says the
         * statement did not happen, and running it again would hide what
         * caused it: it surfaces (DatabaseUnavailable.ts).
         */
        const insertOne = (formula: NewFormula): Effect.Effect<InsertOutcome, DatabaseUnavailable> =>
          writeOne(formula).pipe(
            Effect.catchTag("SqlError", (error) =>
              isConnectionFailure(error) ? writeOne(formula) : Effect.fail(error)
            ),
            unavailableOnFailure,
            Effect.map((outcome) =>
              outcome._tag === "Created"
                ? outcome
                : outcome.existingId === formula.id
                  ? createdRow(formula, formula.createdEvent === undefined ? 0 : 1)
                  : outcome
            )
          )

        /**
         * Many formulas, one statement (so one transaction and one round
         * trip): multi-row inserts, per-item outcomes. The owners of the
         * make-ups that lost are read afterwards: the rows they lost to are
         * committed (`ON CONFLICT` waited for them) and formulas are never
         * deleted, so a second statement sees them.
         */
        const batchWrite = (formulas: ReadonlyArray<NewFormula>) =>
          Effect.gen(function* () {
            // In fingerprint order, so two batches with make-ups in common
            // take their index locks in the same order and cannot deadlock.
            const inserted = yield* q.insertNewFormulas(
              [...formulas].sort((a, b) => (a.fingerprint < b.fingerprint ? -1 : 1))
            )
            const lost = formulas.filter((formula) => !inserted.has(formula.id))
            const owners =
              lost.length === 0
                ? new Map<string, string>()
                : yield* q.findIdsByFingerprints(lost.map((f) => f.fingerprint))
            return formulas.map(
              (formula): InsertOutcome =>
                inserted.has(formula.id)
                  ? createdRow(formula, inserted.get(formula.id)!)
                  : { _tag: "Duplicate", existingId: owners.get(formula.fingerprint)! }
            )
          })

        const writeOne = (formula: NewFormula) => Effect.map(batchWrite([formula]), (outcomes) => outcomes[0]!)

        // A batch whose outcome is unknown (connection lost, no answer in
        // time) is written again item by item with the same ids: each item
        // learns whether the batch committed it (see insertOne). A batch the
        // server refused did not happen; every item gets that answer — a
        // defect for a bug, DatabaseUnavailable otherwise — rather than a
        // second chance that would hide it (a unique violation from a race,
        // say, would vanish item by item).
        const insertBatch = (
          formulas: ReadonlyArray<NewFormula>
        ): Effect.Effect<ReadonlyArray<Exit.Exit<InsertOutcome, DatabaseUnavailable>>> =>
          formulas.length === 1
            ? Effect.map(Effect.exit(insertOne(formulas[0]!)), (exit) => [exit])
            : batchWrite(formulas).pipe(
                Effect.map((outcomes) => outcomes.map((outcome) => Exit.succeed(outcome))),
                Effect.timeoutOrElse({ duration: operationTimeout, orElse: () => Effect.fail(timedOut) }),
                Effect.catch((error) =>
                  error._tag === "DatabaseUnavailable" || isConnectionFailure(error)
                    ? Effect.forEach(formulas, (formula) => Effect.exit(insertOne(formula)), {
                        concurrency: options.workers * 4
                      }).pipe(
                        Effect.timeoutOrElse({
                          duration: operationTimeout,
                          orElse: () => Effect.succeed(formulas.map(() => Exit.fail(timedOut)))
                        })
                      )
                    : Effect.map(Effect.exit(unavailableOnFailure(Effect.fail(error))), (exit) =>
                        formulas.map(() => exit)
                      )
                ),
                Effect.withSpan("FormulaStore.insertBatch", { attributes: { size: formulas.length } })
              )

        const submit = yield* GroupCommit.make({ ...options, write: insertBatch })
        // A batch answers within operationTimeout, its item-by-item fallback
        // within another: no caller waits longer than that for a 503.
        const insert = (formula: NewFormula) =>
          // No span per formula: capturing its stack trace was ~2% of a submission (npm run bench); the batch has one.
          submit(formula, Duration.times(operationTimeout, 2), () => timedOut)

        const findById = Effect.fn("FormulaStore.findById")(function* (id: string) {
          // Ids are UUIDs; anything else cannot exist, and must not reach a uuid-typed comparison.
          if (!uuidPattern.test(id)) return undefined
          return yield* q.selectFormulaById(id.toLowerCase()).pipe(unavailableOnFailure)
        })

        const page = Effect.fn("FormulaStore.page")(function* (options: {
          readonly limit: number
          readonly beforeSeq: string | undefined
        }) {
          // Read one more row than asked to learn whether another page follows.
          const rows = yield* q
            .selectFormulaPage({ limit: options.limit + 1, beforeSeq: options.beforeSeq })
            .pipe(unavailableOnFailure)
          const items = rows.slice(0, options.limit)
          const nextBeforeSeq = rows.length > options.limit ? items[items.length - 1]!.seq : null
          return { items, nextBeforeSeq }
        })

        const ping = q.ping.pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.ping"))

        const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

        // Not retried on a lost connection, unlike insert: the caller (an ack,
        // the dead-letter persister) tries again, and the statements are idempotent.
        // A message id that is not a UUID names no outbox row (a message someone
        // published to the queue directly): nothing to settle, and it must not
        // reach a uuid-typed comparison.
        const unchanged = Effect.succeed<SettleOutcome>({ changed: false, deliveries: 0 })

        const settleProcessed = (message: ProcessedMessage) =>
          !uuidPattern.test(message.messageId)
            ? unchanged
            : Effect.flatMap(now, (at) =>
                q.settleProcessed(
                  message,
                  outboxEvent(
                    "formula.processed",
                    at,
                    `,"messageId":${JSON.stringify(message.messageId)},"result":${message.resultText ?? "null"}}}`
                  ),
                  at
                )
              ).pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.settleProcessed"))

        const lockMessage = (messageId: string): Effect.Effect<MessageLock, DatabaseUnavailable> =>
          !uuidPattern.test(messageId)
            ? Effect.succeed("missing")
            : q.lockOutboxRow(messageId).pipe(
                Effect.map((settled) => (settled === undefined ? "missing" : settled ? "settled" : "open")),
                unavailableOnFailure,
                Effect.withSpan("FormulaStore.lockMessage")
              )

        const settleDeadLettered = (letter: DeadLetteredMessage) =>
          !uuidPattern.test(letter.messageId)
            ? unchanged
            : Effect.flatMap(now, (at) =>
                q.settleDeadLettered(
                  letter,
                  outboxEvent(
                    "formula.dead_lettered",
                    letter.deadLetteredAt,
                    `,"messageId":${JSON.stringify(letter.messageId)},"attempts":${letter.attempts},"lastError":${JSON.stringify(letter.lastError)}}}`
                  ),
                  at
                )
              ).pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.settleDeadLettered"))

        // The event's rest is read from the changed row: only it knows the message id (and, dead, its attempts).
        const messageIdJson = sql.literal(`',"messageId":' || to_json(message_id::text)::text`)

        const settleByReceipt = (ack: ReceiptAck) =>
          q
            .settleByReceipt({
              ...ack,
              event: outboxEvent(
                "formula.processed",
                ack.now,
                sql`${messageIdJson} || ${`,"result":${ack.resultText ?? "null"}}}`}::text`
              )
            })
            .pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.settleByReceipt"))

        const deadLetterByReceipt = (nack: {
          readonly receipt: string
          readonly maxDeliveries: number
          readonly lastError: string
          readonly now: Date
        }) =>
          q
            .deadLetterByReceipt({
              ...nack,
              event: outboxEvent(
                "formula.dead_lettered",
                nack.now,
                sql`${messageIdJson} || ',"attempts":' || attempts || ${`,"lastError":${JSON.stringify(nack.lastError)}}}`}::text`
              )
            })
            .pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.deadLetterByReceipt"))

        const deadLetterExhausted = (letter: {
          readonly messageId: string
          readonly maxDeliveries: number
          readonly expiredError: string
          readonly nackedError: string
          readonly now: Date
        }) =>
          q
            .deadLetterExhausted({
              ...letter,
              event: outboxEvent(
                "formula.dead_lettered",
                letter.now,
                sql`${messageIdJson} || ',"attempts":' || attempts || ',"lastError":' || to_json(last_error)::text || '}}'`
              )
            })
            .pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.deadLetterExhausted"))

        const markRedriven = (messageIds: ReadonlyArray<string>) =>
          q
            .markRedriven(messageIds.filter((id) => uuidPattern.test(id)))
            .pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.markRedriven"))

        const markPurged = (messageIds: ReadonlyArray<string>) =>
          Effect.flatMap(now, (at) => q.markPurged(messageIds, at)).pipe(
            unavailableOnFailure,
            Effect.withSpan("FormulaStore.markPurged")
          )

        const unsettledMessages = (options: {
          readonly limit: number
          readonly after: OutboxPosition | undefined
          readonly upTo: OutboxPosition
        }) => q.selectUnsettled(options).pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.unsettledMessages"))

        const lastUnsettled = q.selectLastUnsettled.pipe(
          unavailableOnFailure,
          Effect.withSpan("FormulaStore.lastUnsettled")
        )

        const recentFingerprints = (limit: number) =>
          q
            .selectRecentFingerprints(limit)
            .pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.recentFingerprints"))

        return FormulaStore.of({
          insert,
          findById,
          page,
          ping,
          settleProcessed,
          lockMessage,
          settleDeadLettered,
          settleByReceipt,
          deadLetterByReceipt,
          deadLetterExhausted,
          markRedriven,
          markPurged,
          unsettledMessages,
          lastUnsettled,
          recentFingerprints,
          existingMessages: (messageIds: ReadonlyArray<string>) =>
            q
              .existingOutboxMessages(messageIds)
              .pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.existingMessages"))
        })
      })
    )

  /** Group commit from `GROUP_COMMIT_MAX_BATCH` (64), `GROUP_COMMIT_LINGER_MS` (0), `GROUP_COMMIT_WORKERS` (2). */
  static readonly layerNoDeps = Layer.unwrap(
    Effect.map(GroupCommitConfig, (settings) => FormulaStore.layerWith(settings))
  )
}

/**
 * An event about a formula, its body text split around the formula id (which
 * the statement reads from the outbox row): exactly
 * `{"type":…,"timestamp":…,"data":{"formulaId":…<dataRest>`.
 */
const outboxEvent = (
  type: OutboxEvent["type"],
  timestamp: Date,
  dataRest: OutboxEvent["bodyAfterFormulaId"]
): OutboxEvent => ({
  id: "evt_" + randomUUID().replaceAll("-", ""),
  type,
  bodyBeforeFormulaId: `{"type":${JSON.stringify(type)},"timestamp":${JSON.stringify(timestamp.toISOString())},"data":{"formulaId":`,
  bodyAfterFormulaId: dataRest
})

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
