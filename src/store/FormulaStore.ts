/**
 * Formulas, their materials and their outbox message, in SQL.
 *
 * `insert` never checks before inserting: it inserts with
 * `ON CONFLICT (fingerprint) DO NOTHING` and, when nothing was inserted, reads
 * the winner's id. Two concurrent submissions of one make-up therefore cannot
 * both win: the unique index serialises them.
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Context, Duration, Effect, Layer, Schedule, Schema } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { type FormulaRow, makeFormulaSql, type MaterialRow } from "./FormulaSql.ts"

export type { FormulaRow, MaterialRow }

/** The database did not answer in time or refused the connection; the caller may retry. */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()(
  "DatabaseUnavailable",
  { message: Schema.String },
  { httpApiStatus: 503 }
) {}

export interface NewFormula {
  readonly id: string
  readonly fingerprint: string
  readonly name: string
  readonly materials: ReadonlyArray<MaterialRow>
  readonly createdAt: Date
  readonly message: { readonly id: string; readonly body: unknown }
}

export type InsertOutcome =
  | { readonly _tag: "Created"; readonly formula: FormulaRow }
  | { readonly _tag: "Duplicate"; readonly existingId: string }

export interface UnsettledMessage {
  readonly messageId: string
  readonly body: unknown
  readonly createdAt: Date
}

export interface Page {
  readonly items: ReadonlyArray<FormulaRow>
  /** `seq` of the last item when more follow: pass it back as `beforeSeq`. */
  readonly nextBeforeSeq: string | null
}

/** Longest a request waits for the database before answering 503. */
const operationTimeout = Duration.seconds(10)

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
    /** Records that a consumer acknowledged the message. */
    markDelivered(messageId: string): Effect.Effect<void, DatabaseUnavailable>
    /** Records that an operator purged these dead letters. */
    markPurged(messageIds: ReadonlyArray<string>): Effect.Effect<void, DatabaseUnavailable>
    /** Committed messages no consumer has acknowledged (and nobody purged), oldest first, page by page. */
    unsettledMessages(options: {
      readonly limit: number
      readonly after: UnsettledMessage | undefined
    }): Effect.Effect<ReadonlyArray<UnsettledMessage>, DatabaseUnavailable>
    /** fingerprint → id of the newest `limit` formulas. */
    recentFingerprints(
      limit: number
    ): Effect.Effect<ReadonlyArray<{ readonly fingerprint: string; readonly id: string }>, DatabaseUnavailable>
  }
>()("formula-intake/store/FormulaStore") {
  static readonly layerNoDeps = Layer.effect(
    FormulaStore,
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const q = makeFormulaSql(sql)

      const writeTransaction = (formula: NewFormula) =>
        sql.withTransaction(
          Effect.gen(function* () {
            const inserted = yield* q.insertFormulaIfNew(formula)
            if (!inserted) {
              const existingId = yield* q.findIdByFingerprint(formula.fingerprint)
              // The row that beat us cannot vanish (formulas are never deleted), so this is always found.
              return { _tag: "Duplicate", existingId: existingId! } as const
            }
            yield* q.insertMaterials(formula.id, formula.materials)
            yield* q.insertOutboxMessage({
              messageId: formula.message.id,
              formulaId: formula.id,
              body: formula.message.body
            })
            return { _tag: "Created" } as const
          })
        )

      // When the transaction fails we may not know whether COMMIT took effect
      // (the connection can drop after the server committed). The outbox row
      // exists exactly when it did, so ask; retry the question briefly while
      // the database comes back.
      const committedAnyway = (formula: NewFormula) =>
        q
          .outboxMessageExists(formula.message.id)
          .pipe(Effect.retry({ schedule: Schedule.exponential(Duration.millis(50)), times: 5 }))

      const insert = Effect.fn("FormulaStore.insert")(function* (formula: NewFormula) {
        const outcome = yield* writeTransaction(formula).pipe(
          Effect.catchTag("SqlError", (error) =>
            isBug(error)
              ? Effect.die(error)
              : Effect.flatMap(committedAnyway(formula), (committed) =>
                  committed ? Effect.succeed({ _tag: "Created" } as const) : Effect.fail(error)
                )
          ),
          unavailableOnFailure
        )
        if (outcome._tag === "Duplicate") return outcome
        const created: FormulaRow = {
          seq: "",
          id: formula.id,
          fingerprint: formula.fingerprint,
          name: formula.name,
          createdAt: formula.createdAt,
          materials: formula.materials,
          messageId: formula.message.id,
          deliveredAt: null
        }
        return { _tag: "Created", formula: created } as const
      })

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

      const markDelivered = (messageId: string) =>
        Effect.flatMap(now, (at) => q.markDelivered(messageId, at)).pipe(
          unavailableOnFailure,
          Effect.withSpan("FormulaStore.markDelivered")
        )

      const markPurged = (messageIds: ReadonlyArray<string>) =>
        Effect.flatMap(now, (at) => q.markPurged(messageIds, at)).pipe(
          unavailableOnFailure,
          Effect.withSpan("FormulaStore.markPurged")
        )

      const unsettledMessages = (options: { readonly limit: number; readonly after: UnsettledMessage | undefined }) =>
        q.selectUnsettled(options).pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.unsettledMessages"))

      const recentFingerprints = (limit: number) =>
        q.selectRecentFingerprints(limit).pipe(unavailableOnFailure, Effect.withSpan("FormulaStore.recentFingerprints"))

      return FormulaStore.of({
        insert,
        findById,
        page,
        ping,
        markDelivered,
        markPurged,
        unsettledMessages,
        recentFingerprints
      })
    })
  )
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Errors that mean our SQL is wrong, not that the database is away: those are defects, never a 503. */
const isBug = (error: SqlError): boolean =>
  error.reason._tag === "SqlSyntaxError" || error.reason._tag === "ConstraintError"

/** Maps infrastructure failures and slowness to `DatabaseUnavailable`, within a bounded time. */
const unavailableOnFailure = <A, R>(self: Effect.Effect<A, SqlError, R>): Effect.Effect<A, DatabaseUnavailable, R> =>
  self.pipe(
    Effect.catchTag("SqlError", (error) =>
      isBug(error)
        ? Effect.die(error)
        : Effect.fail(new DatabaseUnavailable({ message: `database unavailable: ${error.reason.message}` }))
    ),
    Effect.timeoutOrElse({
      duration: operationTimeout,
      orElse: () => Effect.fail(new DatabaseUnavailable({ message: "database did not answer in time" }))
    })
  )
