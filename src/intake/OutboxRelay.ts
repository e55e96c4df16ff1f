/**
 * The outbox is the truth; the in-memory queue is a fast copy of its
 * unsettled part. The relay keeps the copy complete:
 *
 * - **Start-up recovery**: every committed, unsettled message is enqueued
 *   before the server answers (the layer is built before the socket opens);
 *   one stored as a dead letter is restored as a dead letter (listed with its
 *   attempts and last error, not delivered until redriven).
 *   If they do not all fit, the rest — the *backlog* — follows as consumers
 *   make room: a fiber waits for the queue to free a slot (an ack, an abort,
 *   a dead letter: `MessageQueue.awaitRoom`) and enqueues as many as now fit,
 *   page by page from a cursor (never from the start again), until the
 *   backlog is empty. The backlog ends where the newest unsettled message was
 *   at start-up: every message committed since reaches the queue through its
 *   submitter, or as an uncertain outcome below — reading past that point
 *   would only race consumers acking those messages into a second delivery.
 * - **Uncertain outcomes**: a submission whose transaction failed in a way
 *   that may still have committed (its COMMIT answer lost and the database
 *   not answering the question, or the request interrupted mid-commit) aborts
 *   its queue reservation and reports the message here. The relay asks the
 *   database about it until it knows: committed → enqueued; absent after
 *   `uncertainFor` → forgotten.
 *
 * Every `interval` it does both (the backlog too, in case the database failed
 * the fiber that follows it), scanning only the backlog and the uncertain ids —
 * never the whole outbox — so its cost does not grow with history.
 * Publishing an id the queue already holds adds nothing. Delivery is
 * at-least-once; consumers dedupe by message id.
 */
import { Clock, Context, Duration, Effect, Layer, Semaphore } from "effect"
import { OutboxRelayIntervalMs } from "../Settings.ts"
import { type DeadLetter, type Message, MessageQueue } from "../queue/MessageQueue.ts"
import { FormulaStore, type OutboxPosition, type UnsettledMessage } from "../store/FormulaStore.ts"

const batchSize = 500

/**
 * How long an uncertain message is asked about before it is taken as never
 * committed: well past the longest a write can still be running after its
 * caller gave up (two operation timeouts, see FormulaStore.insert).
 */
const uncertainFor = Duration.minutes(2)

/** Uncertain messages remembered at most; past that the oldest wait for the next start-up recovery. */
const maxUncertain = 100_000

export class OutboxRelay extends Context.Service<
  OutboxRelay,
  {
    /** A message whose transaction may or may not have committed. */
    reportUncertain(message: Message): Effect.Effect<void>
    /** One pass: the backlog, then the uncertain messages. Returns how many messages it enqueued. */
    readonly relay: Effect.Effect<number>
  }
>()("formula-intake/intake/OutboxRelay") {
  /** Start-up recovery now, then a pass every `interval`, in the layer's scope. */
  static readonly layerWith = (options: { readonly interval: Duration.Input }) =>
    Layer.effect(
      OutboxRelay,
      Effect.gen(function* () {
        const store = yield* FormulaStore
        const queue = yield* MessageQueue

        // The backlog: unsettled messages after `backlogAfter` up to `backlogEnd`,
        // the newest one at start-up. Read and moved by one fiber at a time.
        const backlogEnd: OutboxPosition | undefined = yield* store.lastUnsettled
        let backlogAfter: OutboxPosition | undefined = undefined
        let backlogDrained = backlogEnd === undefined
        const backlogLock = Semaphore.makeUnsafe(1)
        const uncertain = new Map<string, { readonly message: Message; readonly since: number }>()

        /**
         * Enqueues backlog messages until the queue is full or none are left.
         * Each page asks for no more rows than the queue has room for, so a
         * slot freed now and then costs a one-row read, not a page.
         */
        const drainBacklog = backlogLock.withPermit(
          Effect.gen(function* () {
            let added = 0
            while (!backlogDrained) {
              const room = (yield* queue.stats).available
              if (room === 0) return added
              const limit = Math.min(batchSize, room)
              const batch = yield* store.unsettledMessages({ limit, after: backlogAfter, upTo: backlogEnd! })
              for (const message of batch) {
                if (message.deadLettered !== undefined) {
                  // Stored as a dead letter: listed again, not delivered until redriven.
                  if (yield* queue.restoreDeadLetter(deadLetterOf(message, message.deadLettered))) added++
                  backlogAfter = message
                  continue
                }
                const published = yield* Effect.option(queue.publish(message))
                if (published._tag === "None") return added // full: resume from here when there is room
                if (!published.value.duplicate) added++
                backlogAfter = message
              }
              if (batch.length < limit) backlogDrained = true
            }
            return added
          })
        )

        /** Follows the backlog as consumers make room, until it is drained. */
        const followBacklog = Effect.gen(function* () {
          while (!backlogDrained) {
            yield* queue.awaitRoom
            yield* drainBacklog.pipe(
              Effect.catch((error) =>
                Effect.andThen(
                  Effect.logWarning("outbox relay: database unavailable; backlog resumes later", error),
                  Effect.sleep(options.interval)
                )
              )
            )
          }
        })

        /** Enqueues the uncertain messages that did commit; forgets those that cannot have. */
        const settleUncertain = Effect.gen(function* () {
          if (uncertain.size === 0) return 0
          const now = yield* Clock.currentTimeMillis
          const committed = new Set<string>()
          for (const ids of chunks([...uncertain.keys()], batchSize)) {
            for (const id of yield* store.existingMessages(ids)) committed.add(id)
          }
          let added = 0
          for (const [id, entry] of uncertain) {
            if (committed.has(id)) {
              const published = yield* Effect.option(queue.publish(entry.message))
              if (published._tag === "None") continue // full: try again next pass
              if (!published.value.duplicate) added++
              uncertain.delete(id)
            } else if (now - entry.since > Duration.toMillis(uncertainFor)) {
              uncertain.delete(id)
            }
          }
          return added
        })

        const relay = Effect.gen(function* () {
          return (yield* drainBacklog) + (yield* settleUncertain)
        }).pipe(
          Effect.catch((error) =>
            Effect.as(Effect.logWarning("outbox relay: database unavailable; will retry", error), 0)
          ),
          Effect.withSpan("OutboxRelay.relay")
        )

        const reportUncertain = (message: Message) =>
          Effect.flatMap(Clock.currentTimeMillis, (since) =>
            Effect.sync(() => {
              uncertain.set(message.messageId, { message, since })
              if (uncertain.size > maxUncertain) uncertain.delete(uncertain.keys().next().value!)
            })
          )

        // Recovery must succeed before the service starts: a database that
        // cannot be read now fails start-up rather than serving with a hole.
        const recovered = yield* drainBacklog
        yield* Effect.logInfo(`recovered ${recovered} messages from the outbox`).pipe(
          Effect.annotateLogs({ recovered })
        )
        if (!backlogDrained) {
          yield* Effect.logInfo("outbox: the queue is full; the rest of the unsettled messages follow as it drains")
          yield* Effect.forkScoped(followBacklog)
        }
        yield* relay.pipe(Effect.delay(options.interval), Effect.forever, Effect.forkScoped)

        return OutboxRelay.of({ reportUncertain, relay })
      })
    )

  /**
   * No relay: with the queue in the database (QUEUE_BACKEND=postgres) the outbox *is* the queue, so there
   * is no copy to keep complete. An uncertain submission needs nothing either: if its transaction
   * committed, its row is already receivable; if not, there is no message.
   */
  static readonly layerOff: Layer.Layer<OutboxRelay> = Layer.succeed(
    OutboxRelay,
    OutboxRelay.of({ reportUncertain: () => Effect.void, relay: Effect.succeed(0) })
  )

  /** Interval from `OUTBOX_RELAY_INTERVAL_MS` (default 5000). */
  static readonly layer = Layer.unwrap(
    Effect.map(OutboxRelayIntervalMs.config, (interval) => OutboxRelay.layerWith({ interval }))
  )
}

const deadLetterOf = (message: UnsettledMessage, dead: NonNullable<UnsettledMessage["deadLettered"]>): DeadLetter => ({
  messageId: message.messageId,
  body: message.body,
  attempts: dead.attempts,
  lastError: dead.lastError,
  deadLetteredAt: dead.at.getTime()
})

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))
