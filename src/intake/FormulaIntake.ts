/**
 * The submit path. Every entry point — HTTP, the embedding Layer, tests —
 * goes through this service: `submit` (= `decode` + `submitDecoded`), or, for
 * HTTP, `validate` + `submitOutcome` (the same steps, a duplicate being an
 * outcome rather than an error):
 *
 *   decode → fingerprint → cache (known make-up? → Duplicate, nothing else touched)
 *     → reserve a queue slot (full? → QueueFull, nothing stored)
 *     → one statement, so one transaction { formula ON CONFLICT DO NOTHING, materials, outbox row
 *       (+ with X-Client-Id: its formula.created webhook event and deliveries, if the client has endpoints) }
 *       (group-committed with concurrent submissions: FormulaStore, GroupCommit)
 *     → created: commit the reservation (the message becomes receivable); wake the webhook dispatcher
 *       duplicate or any failure: abort it (no message)
 *
 * So a consumer never receives a message whose formula is not committed, and
 * a committed formula always has its message: in the queue now, or — if the
 * process dies between the commit and the queue commit — re-enqueued from
 * the outbox by the relay at the next start; if the statement's outcome was
 * unknown, by the relay as soon as the database confirms it.
 */
import { Clock, Context, Effect, Exit, Layer, Metric, Result, Schema } from "effect"
import { toSqlNumeric } from "../domain/Decimal.ts"
import { fingerprint } from "../domain/Fingerprint.ts"
import { newId } from "../domain/Ids.ts"
import { type Formula, type FormulaInvalid, validateFormula } from "../domain/Formula.ts"
import { formulaSubmitted } from "../domain/FormulaSubmitted.ts"
import { withoutStack } from "../domain/WithoutStack.ts"
import { counter } from "../observability/Counters.ts"
import { MessageQueue, type QueueFull } from "../queue/MessageQueue.ts"
import { DatabaseUnavailable, type FormulaRow, FormulaStore, type InsertOutcome } from "../store/FormulaStore.ts"
import { DeliverySignal } from "../webhooks/DeliverySignal.ts"
import { formulaCreatedBody, newEventId } from "../webhooks/WebhookEvents.ts"
import { FingerprintCache } from "./FingerprintCache.ts"
import { OutboxRelay } from "./OutboxRelay.ts"
import { SubmissionCounters } from "../stats/SubmissionCounters.ts"

/** The make-up exists already; `existingId` is the formula that holds it. */
export class Duplicate extends Schema.TaggedError<Duplicate>()("Duplicate", {
  existingId: Schema.String,
  fingerprint: Schema.String
}) {}

export type SubmitError = FormulaInvalid | Duplicate | QueueFull | DatabaseUnavailable

/** How a decoded submission finished: stored and announced, or a make-up that `existingId` already holds. */
export type SubmitOutcome =
  | { readonly _tag: "Created"; readonly formula: FormulaRow }
  | { readonly _tag: "Duplicate"; readonly existingId: string; readonly fingerprint: string }

/** Who submits: the client (X-Client-Id) whose formula it becomes, and whose webhook endpoints hear of it. */
export interface SubmitOptions {
  readonly clientId?: string | undefined
}

const submissions = Metric.counter("formula_submissions_total", {
  description: "Submissions by outcome (created, duplicate, invalid, queue_full, unavailable)"
})

export class FormulaIntake extends Context.Service<
  FormulaIntake,
  {
    /** Stores and announces a new make-up once; fails with `Duplicate` for a known one. */
    submit(input: unknown, options?: SubmitOptions): Effect.Effect<FormulaRow, SubmitError>
    /** Validates a submission (every problem listed), counting invalid ones in the metrics. */
    decode(input: unknown): Effect.Effect<Formula, FormulaInvalid>
    /** `decode`, synchronously. */
    validate(input: unknown): Result.Result<Formula, FormulaInvalid>
    /** Counts a submission found invalid without `validate` (HTTP judges large bodies on a worker thread). */
    countInvalid(): void
    /** The same as `submit`, for a formula already decoded. */
    submitDecoded(
      formula: Formula,
      options?: SubmitOptions
    ): Effect.Effect<FormulaRow, Duplicate | QueueFull | DatabaseUnavailable>
    /**
     * The same again, with a duplicate as an outcome rather than an error —
     * for callers that answer both alike (HTTP), without building an error
     * for every repeat submission.
     */
    submitOutcome(
      formula: Formula,
      options?: SubmitOptions
    ): Effect.Effect<SubmitOutcome, QueueFull | DatabaseUnavailable>
  }
>()("formula-intake/intake/FormulaIntake") {
  static readonly layerNoDeps = Layer.effect(
    FormulaIntake,
    Effect.gen(function* () {
      const store = yield* FormulaStore
      const queue = yield* MessageQueue
      const cache = yield* FingerprintCache
      const relay = yield* OutboxRelay
      const signal = yield* DeliverySignal
      const stats = yield* SubmissionCounters

      const store_ = Effect.fnUntraced(function* (formula: Formula, print: string, clientId: string | undefined) {
        const id = yield* newId
        const createdAt = new Date(yield* Clock.currentTimeMillis)
        const message = {
          messageId: yield* newId,
          body: formulaSubmitted({ formulaId: id, fingerprint: print, name: formula.name, submittedAt: createdAt })
        }
        const materials = formula.materials.map((material) => ({
          name: material.name,
          concentration: toSqlNumeric(material.concentration)
        }))
        // Only a formula with a client can have webhooks: only its event is built (and sent to the database,
        // which writes it if the client has an endpoint subscribed to it).
        const createdEvent =
          clientId === undefined
            ? undefined
            : {
                id: yield* newEventId,
                body: formulaCreatedBody({
                  seq: "",
                  id,
                  fingerprint: print,
                  name: formula.name,
                  createdAt,
                  materials,
                  messageId: message.messageId,
                  deliveredAt: null,
                  result: null,
                  attempts: 0,
                  deadLetteredAt: null,
                  lastError: null,
                  purgedAt: null
                })
              }
        const insert = store.insert({
          id,
          fingerprint: print,
          name: formula.name,
          materials,
          createdAt,
          message: { id: message.messageId, body: message.body },
          clientId,
          createdEvent
        })
        // The reservation is held across the transaction and settled by its
        // outcome, whatever happens (failure, interruption included). A
        // transaction that failed may still have committed (the database
        // could not be asked, or the request was interrupted mid-commit): the
        // relay finds out and enqueues the message if so.
        return yield* Effect.acquireUseRelease(
          queue.reserve(message),
          () => insert,
          (reservation, exit: Exit.Exit<InsertOutcome, DatabaseUnavailable>) =>
            Exit.isFailure(exit)
              ? Effect.andThen(queue.abort(reservation), relay.reportUncertain(message))
              : exit.value._tag === "Created"
                ? queue.commit(reservation)
                : queue.abort(reservation)
        )
      })

      const count = yield* Effect.all({
        created: counter(submissions, { outcome: "created" }),
        duplicate: counter(submissions, { outcome: "duplicate" }),
        invalid: counter(submissions, { outcome: "invalid" }),
        queueFull: counter(submissions, { outcome: "queue_full" }),
        unavailable: counter(submissions, { outcome: "unavailable" })
      })

      const duplicate = (existingId: string, print: string): SubmitOutcome => {
        count.duplicate()
        stats.duplicate()
        return { _tag: "Duplicate", existingId, fingerprint: print }
      }

      // Past the cache: the database decides, and the cache learns its answer.
      const write = Effect.fnUntraced(function* (formula: Formula, print: string, clientId: string | undefined) {
        const outcome = yield* store_(formula, print, clientId).pipe(
          Effect.tapError((error) => Effect.sync(error._tag === "QueueFull" ? count.queueFull : count.unavailable))
        )
        if (outcome._tag === "Duplicate") {
          cache.set(print, outcome.existingId)
          return duplicate(outcome.existingId, print)
        }
        cache.set(print, outcome.formula.id)
        count.created()
        // Committed: the dispatcher may send the first attempts now rather than at its next poll.
        if (outcome.webhookDeliveries > 0) signal.wake()
        return outcome
      })

      // A known make-up is answered here: no database, no queue. (Suspended, so that building the
      // effect — as IdempotencyKeys.run's argument, say — neither looks up nor counts anything.)
      const submitOutcome = (
        formula: Formula,
        options?: SubmitOptions
      ): Effect.Effect<SubmitOutcome, QueueFull | DatabaseUnavailable> =>
        Effect.suspend(() => {
          const print = fingerprint(formula)
          const known = cache.get(print)
          return known === undefined
            ? write(formula, print, options?.clientId)
            : Effect.succeed(duplicate(known, print))
        })

      const submitDecoded = (formula: Formula, options?: SubmitOptions) =>
        Effect.flatMap(submitOutcome(formula, options), (outcome) =>
          outcome._tag === "Created"
            ? Effect.succeed(outcome.formula)
            : Effect.fail(
                withoutStack(() => new Duplicate({ existingId: outcome.existingId, fingerprint: outcome.fingerprint }))
              )
        )

      const validate = (input: unknown): Result.Result<Formula, FormulaInvalid> => {
        const result = validateFormula(input)
        if (Result.isFailure(result)) countInvalid()
        return result
      }

      const countInvalid = () => {
        count.invalid()
        stats.invalid()
      }

      const decode = (input: unknown) => Effect.suspend(() => Effect.fromResult(validate(input)))

      const submit = (input: unknown, options?: SubmitOptions) =>
        Effect.flatMap(decode(input), (formula) => submitDecoded(formula, options))

      return FormulaIntake.of({ submit, decode, validate, countInvalid, submitDecoded, submitOutcome })
    })
  )
}

export { DatabaseUnavailable }
