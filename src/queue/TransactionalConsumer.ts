/**
 * Exactly-once effects for in-process consumers whose work is SQL on the
 * runtime's database (the inbox pattern, with the outbox row as the inbox).
 *
 * `consumeTransactional(handler, options)` takes the same options as
 * `consume` (Consumer.ts) and behaves the same way — workers, long polls,
 * backoff on failure, dead letters after `maxDeliveries`, shutdown — but runs
 * each delivery in one transaction on the runtime's database:
 *
 *   BEGIN
 *   SELECT … FROM outbox WHERE message_id = $id FOR UPDATE      (FormulaStore.lockMessage)
 *     settled (processed or purged) ─► COMMIT; ack              a redelivery of work that committed:
 *                                                               the handler is not called again
 *     open    ─► handler(delivery)                              its SQL joins this transaction
 *                UPDATE outbox SET delivered_at, result, …      (FormulaStore.settleProcessed, with the
 *                  + formula.processed event and deliveries      same statement the ack hook uses)
 *                COMMIT; wake the webhook dispatcher; ack(receipt, { result })
 *     missing ─► ROLLBACK; nack                                 see "no outbox row" below
 *   handler fails, or its result cannot be stored ─► ROLLBACK; nack with backoff (as consume)
 *
 * So the handler's writes and the settlement commit together or not at all.
 * Whatever happens after COMMIT — the ack's answer lost, the ack failing, the
 * process killed before it acks — the message comes back at its deadline, the
 * lock finds it settled, and it is acked without running the handler again.
 * The row lock also serialises two deliveries of one message that overlap
 * (the memory queue redelivering a message whose first transaction is still
 * running): the second waits for the first, then finds it settled.
 *
 * The ack after COMMIT only tells the queue: the memory backend's ack hook
 * finds the row settled and changes nothing; the postgres backend accepts an
 * ack whose receipt names an already-settled row and just clears the receipt.
 *
 * Heartbeat: with the memory queue the delivery is extended while the
 * transaction runs, as `consume` does, so it is not redelivered to another
 * worker meanwhile (which would then only wait on the row lock). With a queue
 * whose claims skip locked rows (`settings.lockedRowsAreSkipped`, the postgres
 * backend) none is sent: the row lock already keeps every other consumer off
 * the message however long the transaction runs, and an extend — an UPDATE of
 * that same row from another connection — would just wait for our COMMIT.
 *
 * No outbox row: a message published to the queue directly (not a formula's)
 * has no row to lock or to record its settlement in, so its handler cannot run
 * exactly once. It is not run at all: the delivery is nacked with backoff and
 * the error `NoOutboxRow`, and after `maxDeliveries` it is a dead letter an
 * operator can see. (With the postgres backend every published message is a
 * row, so this does not happen there.) Consume such messages with `consume`.
 *
 * The handler's SQL must use the runtime's own `SqlClient` (the one
 * `Runtime.layerWith` was given): Effect's SqlClient runs every statement of
 * the transaction's fiber on the transaction's connection. Statements sent
 * from a fiber the handler forks and leaves running, or through another
 * client, are outside the transaction. On the embedded database (one
 * connection) transactions run one at a time.
 */
import { Effect, Exit, Schema, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import { storableResult } from "../domain/MessageResult.ts"
import { FormulaStore } from "../store/FormulaStore.ts"
import { DeliverySignal } from "../webhooks/DeliverySignal.ts"
import { type ConsumeOptions, heartbeat, resolveTimings, runWorkers, settle } from "./Consumer.ts"
import { type Delivery, MessageQueue } from "./MessageQueue.ts"

export type TransactionalConsumeOptions = ConsumeOptions

/** The delivered message has no outbox row to record its settlement in (see the module comment). */
export class NoOutboxRow extends Schema.TaggedError<NoOutboxRow>()("NoOutboxRow", {
  message: Schema.String
}) {}

/** What one delivery's transaction came to. */
interface Committed {
  /** The handler's value; undefined when it was not called. */
  readonly result: unknown
  /** Webhook deliveries the settlement wrote (the dispatcher is woken when positive). */
  readonly deliveries: number
}

export const consumeTransactional = Effect.fnUntraced(function* <E, R>(
  handler: (delivery: Delivery) => Effect.Effect<unknown, E, R>,
  options: TransactionalConsumeOptions
): Effect.fn.Return<void, never, MessageQueue | FormulaStore | SqlClient.SqlClient | DeliverySignal | R | Scope.Scope> {
  const queue = yield* MessageQueue
  const store = yield* FormulaStore
  const sql = yield* SqlClient.SqlClient
  const signal = yield* DeliverySignal
  const timings = resolveTimings(options, queue)
  const needsHeartbeat = queue.settings.lockedRowsAreSkipped !== true

  const transaction = (delivery: Delivery) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const lock = yield* store.lockMessage(delivery.messageId)
        if (lock === "settled") {
          yield* Effect.logDebug("Message already settled by an earlier transaction; handler skipped", {
            messageId: delivery.messageId,
            attempt: delivery.attempt
          })
          return { result: undefined, deliveries: 0 } satisfies Committed
        }
        if (lock === "missing") {
          return yield* new NoOutboxRow({
            message: `message ${delivery.messageId} has no outbox row to settle in the handler's transaction; consume messages published directly with consume`
          })
        }
        const result = yield* handler(delivery)
        const resultText = yield* storableResult(result)
        const outcome = yield* store.settleProcessed({
          messageId: delivery.messageId,
          attempts: delivery.attempt,
          resultText
        })
        return { result, deliveries: outcome.deliveries } satisfies Committed
      })
    )

  yield* runWorkers(
    queue,
    timings,
    (delivery, restore) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(
          restore(
            needsHeartbeat
              ? Effect.scoped(
                  Effect.andThen(Effect.forkScoped(heartbeat(queue, timings, delivery.receipt)), transaction(delivery))
                )
              : transaction(delivery)
          )
        )
        if (Exit.isFailure(exit)) return yield* settle(queue, timings, delivery, exit)
        // Committed: the settlement is durable whatever becomes of the ack.
        if (exit.value.deliveries > 0) signal.wake()
        yield* settle(queue, timings, delivery, Exit.succeed(exit.value.result))
      }),
    "TransactionalConsumer"
  )
})
