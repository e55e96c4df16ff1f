/**
 * The outbox is the truth; the in-memory queue is a fast copy of its
 * unsettled part. The relay puts every committed, unsettled message into the
 * queue: once at start-up (before the server answers, so a restart loses
 * nothing), then every `OUTBOX_RELAY_INTERVAL_MS` for what could not be
 * enqueued earlier — a backlog larger than the queue, or a message whose
 * transaction committed although the submitter could not tell (lost COMMIT
 * answer) and so aborted its reservation.
 *
 * Publishing an id the queue already holds adds nothing, so the relay never
 * duplicates a message that is waiting or in flight. A message acked between
 * the relay's read and its publish may be delivered once more: delivery is
 * at-least-once, consumers dedupe by message id.
 */
import { Config, Duration, Effect, Layer, Schema } from "effect"
import { MessageQueue } from "../queue/MessageQueue.ts"
import { FormulaStore, type UnsettledMessage } from "../store/FormulaStore.ts"

const batchSize = 500

/** Enqueues unsettled messages, oldest first, until the queue is full or none are left. Returns how many were added. */
export const relayOnce = Effect.gen(function* () {
  const store = yield* FormulaStore
  const queue = yield* MessageQueue
  let added = 0
  let after: UnsettledMessage | undefined = undefined
  while (true) {
    if ((yield* queue.stats).available === 0) return added
    const batch: ReadonlyArray<UnsettledMessage> = yield* store.unsettledMessages({ limit: batchSize, after })
    for (const message of batch) {
      const published = yield* queue.publish({ messageId: message.messageId, body: message.body }).pipe(Effect.option)
      if (published._tag === "None") return added // full
      if (!published.value.duplicate) added++
    }
    if (batch.length < batchSize) return added
    after = batch[batch.length - 1]
  }
}).pipe(Effect.withSpan("OutboxRelay.relayOnce"))

/** Start-up recovery, then a relay every `interval`, in the layer's scope. */
export const layerWith = (options: { readonly interval: Duration.Input }) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const recovered = yield* relayOnce
      if (recovered > 0) yield* Effect.logInfo(`outbox: re-enqueued ${recovered} unsettled messages`)
      yield* relayOnce.pipe(
        Effect.catch((error) => Effect.logWarning("outbox relay failed; will retry", error)),
        Effect.delay(options.interval),
        Effect.forever,
        Effect.forkScoped
      )
    })
  )

/** Interval from `OUTBOX_RELAY_INTERVAL_MS` (default 5000). */
export const layer = Layer.unwrap(
  Effect.map(
    Config.schema(
      Schema.Int.check(Schema.isBetween({ minimum: 10, maximum: 3_600_000 })),
      "OUTBOX_RELAY_INTERVAL_MS"
    ).pipe(Config.withDefault(5_000)),
    (interval) => layerWith({ interval })
  )
)
