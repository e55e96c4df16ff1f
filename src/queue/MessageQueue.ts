/**
 * MessageQueue: a bounded, in-memory, at-least-once message queue (SQS-like
 * visibility timeouts, JetStream-like two-phase publish), owned by one layer.
 *
 * Message states:
 *
 *   reserve           commit               receive           onAck, then ack
 *   ──────► pending ─────────► ready ─────────────► in-flight ─────────► gone
 *             │                ▲ ▲ ▲                  │  │  │
 *           abort              │ │ └─ expiry, nack, ──┘  │  │
 *             ▼                │ │    release            │  │
 *           gone               │ └── delayed ◄── nack ───┘  │
 *           (every holder)     │     (until due)   (delay)  │
 *                              │                            │
 *                           redrive ◄── dead-lettered ◄─────┘ expiry or nack when
 *                                           │                 attempts = maxDeliveries
 *                                         purge ──► gone (onPurge)
 *
 * - Capacity counts pending + ready + delayed + in-flight; dead letters do not
 *   (they no longer compete for delivery; redrive brings back only as many as fit).
 * - A message id present in any state (pending, ready, delayed, in-flight,
 *   dead-lettered) is never added twice. Reserving a pending id joins that
 *   reservation; reserving an id in any other state returns a no-op handle.
 *   Acked, aborted and purged ids are forgotten and may be published again.
 * - Each delivery gets a fresh receipt; only the latest receipt of an in-flight
 *   message is valid, so one message never has two owners.
 * - Interruption-safe: receive only waits (interruptibly) while it holds nothing.
 * - Durable when answered: with an `onAck` hook, an ack first checks the
 *   receipt (changing nothing), runs the hook (the settlement in storage),
 *   and only when it succeeded removes the message. A failed hook fails the
 *   ack and the message stays in flight under the same receipt: ack again,
 *   or it is redelivered at its deadline. Without hooks an ack is one O(1)
 *   step, as before.
 * - Dead-lettering happens at once in memory; `onDeadLetter` (and
 *   `onRedrive`) persist it afterwards, in order, from a fiber of the layer
 *   that retries each until it commits (see `persistLoop`).
 *
 * State lives in QueueCore (synchronous, private to this module); all background
 * work (visibility timeouts, nack delays) is one fiber forked in the layer's scope
 * and driven by the Clock, so TestClock controls it.
 */
import { Cause, Clock, Config, Context, Duration, Effect, Latch, Layer, Metric, Predicate } from "effect"
import {
  nackedError,
  type Counts,
  type DeadLetter,
  type Delivery,
  QueueCore,
  type Reservation,
  ReservationHandle,
  type Totals
} from "./QueueCore.ts"
import { registerCounterReading, registerGaugeReading } from "../observability/Counters.ts"
import { QueueCapacity, QueueMaxDeliveries, QueueVisibilityTimeoutMs } from "../Settings.ts"
import { AckNotRecorded, QueueFull, ReceiptInvalid } from "./QueueErrors.ts"

export type { DeadLetter, Delivery, Reservation, Totals } from "./QueueCore.ts"
export { AckNotRecorded, QueueFull, ReceiptInvalid } from "./QueueErrors.ts"

export interface Message {
  readonly messageId: string
  /** A JSON value; stored by reference, never copied. */
  readonly body: unknown
}

export interface PublishResult {
  readonly messageId: string
  /**
   * True when the id was already present and nothing was added. (If that message
   * was reserved and not yet committed, publishing it commits it.)
   */
  readonly duplicate: boolean
}

export interface ReceiveOptions {
  /** Most messages to return (default 1). */
  readonly max?: number | undefined
  /** How long the deliveries stay invisible to others (default: the queue's). */
  readonly visibilityTimeout?: Duration.Input | undefined
  /** Long poll: wait up to this long for at least one message (default 0). */
  readonly wait?: Duration.Input | undefined
}

export interface NackOptions {
  /** Stay invisible this long before becoming ready again (default 0). */
  readonly delay?: Duration.Input | undefined
  /** Recorded as the message's last error (shown once it is dead-lettered). */
  readonly error?: string | undefined
}

export interface AckOptions {
  /**
   * What came of the message (any JSON value), handed to the `onAck` hook to
   * be stored with the settlement. Undefined: none.
   */
  readonly result?: unknown
}

/** What the `onAck` hook is told about the message being acked. */
export interface Acked {
  readonly messageId: string
  /** The attempt number of the delivery being acked. */
  readonly attempts: number
  readonly result: unknown
}

export interface QueueStats extends Counts {
  readonly capacity: number
  /** pending + ready + delayed + inFlight: what counts against the capacity. */
  readonly size: number
  readonly available: number
  /** Receivers currently long-polling. */
  readonly waiting: number
  readonly maxDeliveries: number
  readonly visibilityTimeoutMs: number
  readonly totals: Totals
}

export interface MessageQueueSettings {
  readonly capacity: number
  readonly visibilityTimeoutMs: number
  readonly maxDeliveries: number
}

export interface MessageQueueOptions<R = never> {
  /** Default 10000. */
  readonly capacity?: number | undefined
  /** Default 30 seconds. */
  readonly visibilityTimeout?: Duration.Input | undefined
  /** Default 5. */
  readonly maxDeliveries?: number | undefined
  /** The `queue` attribute of the metrics (default "messages"). */
  readonly name?: string | undefined
  /**
   * Settles an acked message in storage (the durable half of the ack). Runs in
   * the acking fiber while the message is still in flight; only when it
   * succeeds is the message removed and the ack answered. Its failure fails the
   * ack (`AckNotRecorded`) and leaves the message in flight under the same
   * receipt. It may run more than once for one message (an ack retried after
   * an answer was lost, a redelivered message acked again): it must be
   * idempotent, keeping the first result.
   */
  readonly onAck?: ((acked: Acked) => Effect.Effect<void, unknown, R>) | undefined
  /**
   * Persists a dead-lettering. Runs in the background after the message moved
   * to the dead letters, retried with backoff until it succeeds, in order with
   * `onRedrive`; must be idempotent (a retry may follow a lost answer).
   */
  readonly onDeadLetter?: ((letter: DeadLetter) => Effect.Effect<void, unknown, R>) | undefined
  /** Persists a redrive, like `onDeadLetter` (same fiber, same order, retried until it succeeds). */
  readonly onRedrive?: ((messageIds: ReadonlyArray<string>) => Effect.Effect<void, unknown, R>) | undefined
  /** Runs after `purge` dropped dead letters, with their ids. Failures are logged. */
  readonly onPurge?: ((messageIds: ReadonlyArray<string>) => Effect.Effect<void, unknown, R>) | undefined
}

export interface MessageQueueService {
  readonly settings: MessageQueueSettings
  /** Reserves room for a message, invisible to consumers until committed. */
  readonly reserve: (message: Message) => Effect.Effect<Reservation, QueueFull>
  /** Makes a reserved message deliverable. Idempotent; a no-op for a duplicate handle. */
  readonly commit: (reservation: Reservation) => Effect.Effect<void>
  /** Drops a reserved message. Idempotent; never touches a committed or pre-existing message. */
  readonly abort: (reservation: Reservation) => Effect.Effect<void>
  /**
   * reserve → `use` → commit when it succeeds, abort when it fails or is
   * interrupted. For "hold a reservation across a database transaction".
   */
  readonly withReservation: <A, E, R>(
    message: Message,
    use: (reservation: Reservation) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | QueueFull, R>
  /** reserve + commit in one step. */
  readonly publish: (message: Message) => Effect.Effect<PublishResult, QueueFull>
  readonly receive: (options?: ReceiveOptions) => Effect.Effect<ReadonlyArray<Delivery>>
  /**
   * The message is processed. With an `onAck` hook the ack is durable when it
   * succeeds; it fails with `AckNotRecorded` when the hook failed (the message
   * stays in flight under the same receipt). If the receipt went stale while
   * the hook ran (the visibility timeout fired), the ack still succeeds: the
   * settlement is recorded, and the message's next owner acks it as usual.
   */
  readonly ack: (receipt: string, options?: AckOptions) => Effect.Effect<void, ReceiptInvalid | AckNotRecorded>
  readonly nack: (receipt: string, options?: NackOptions) => Effect.Effect<void, ReceiptInvalid>
  /** New visibility deadline = now + `visibilityTimeout`. */
  readonly extend: (receipt: string, visibilityTimeout: Duration.Input) => Effect.Effect<void, ReceiptInvalid>
  /**
   * Gives a delivery back without counting it as an attempt (front of the ready
   * list). For consumers shutting down; a failed attempt is a `nack`.
   */
  readonly release: (receipt: string) => Effect.Effect<void, ReceiptInvalid>
  readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>>
  /** Dead letters back to ready, attempts from 1 again, as many as fit; returns how many. */
  readonly redrive: (options?: { readonly messageIds?: ReadonlyArray<string> | undefined }) => Effect.Effect<number>
  /** Drops dead letters; returns how many. */
  readonly purge: (options?: { readonly messageIds?: ReadonlyArray<string> | undefined }) => Effect.Effect<number>
  readonly stats: Effect.Effect<QueueStats>
  /** Deliveries so far of a message the queue holds, undefined when it holds none with this id. O(1). */
  readonly attemptsOf: (messageId: string) => number | undefined
  /**
   * A dead letter read back from storage at start-up: listed and redrivable,
   * never delivered until redriven; `onDeadLetter` is not called (it is stored
   * already). False when the id is already present.
   */
  readonly restoreDeadLetter: (letter: DeadLetter) => Effect.Effect<boolean>
  /**
   * Completes once every dead-lettering and redrive so far has been persisted
   * by its hook (at once without hooks). For tests and orderly shutdowns.
   */
  readonly awaitPersisted: Effect.Effect<void>
  /**
   * For a server shutting down: every receive waiting in a long poll returns
   * now with what it has (nothing), and later receives do not wait. Messages
   * are still delivered to whoever asks.
   */
  readonly stopWaiting: Effect.Effect<void>
  /**
   * Completes when the queue has room for another message: at once if it has,
   * else as soon as one stops counting against the capacity (acked, aborted,
   * dead-lettered). For whoever holds messages back while the queue is full
   * (the outbox relay's backlog), so they follow as consumers make room.
   */
  readonly awaitRoom: Effect.Effect<void>
}

/** The queue's environment variables. A bad value fails with a ConfigError naming the variable. */
export const QueueConfig = Config.all({
  capacity: QueueCapacity.config,
  visibilityTimeoutMs: QueueVisibilityTimeoutMs.config,
  maxDeliveries: QueueMaxDeliveries.config
}).pipe(
  Config.map(({ capacity, maxDeliveries, visibilityTimeoutMs }) => ({
    capacity,
    maxDeliveries,
    visibilityTimeout: visibilityTimeoutMs
  }))
)

export class MessageQueue extends Context.Service<MessageQueue, MessageQueueService>()("app/queue/MessageQueue") {
  /** Settings from QUEUE_CAPACITY, QUEUE_VISIBILITY_TIMEOUT_MS and QUEUE_MAX_DELIVERIES; no hooks. */
  static readonly layer: Layer.Layer<MessageQueue, Config.ConfigError> = Layer.effect(
    MessageQueue,
    Effect.flatMap(QueueConfig, (settings) => make(settings))
  )

  /** Settings from the environment, plus hooks (whose requirements become the layer's). */
  static readonly layerConfig = <R = never>(
    hooks: Pick<MessageQueueOptions<R>, QueueHook | "name">
  ): Layer.Layer<MessageQueue, Config.ConfigError, R> =>
    Layer.effect(
      MessageQueue,
      Effect.flatMap(QueueConfig, (settings) => make({ ...hooks, ...settings }))
    )

  /** Explicit settings, for tests and embedding. Invalid settings are a defect. */
  static readonly layerWith = <R = never>(options: MessageQueueOptions<R> = {}): Layer.Layer<MessageQueue, never, R> =>
    Layer.effect(MessageQueue, make(options))
}

/** The options that are hooks into storage (Runtime.ts sets them). */
export type QueueHook = "onAck" | "onPurge" | "onDeadLetter" | "onRedrive"

/** A duration in milliseconds (a number is milliseconds already); negative is 0, undefined the fallback. */
export const toMillis = (input: Duration.Input | undefined, fallback: number): number => {
  if (input === undefined) return fallback
  const millis = typeof input === "number" ? input : Duration.toMillis(input)
  return millis > 0 ? millis : 0
}

const metric = {
  ready: Metric.gauge("queue_messages_ready", { description: "Messages waiting for a consumer" }),
  pending: Metric.gauge("queue_messages_pending", { description: "Reserved messages not yet committed" }),
  delayed: Metric.gauge("queue_messages_delayed", { description: "Nacked messages waiting out their delay" }),
  inFlight: Metric.gauge("queue_messages_in_flight", { description: "Delivered messages not yet acked" }),
  deadLettered: Metric.gauge("queue_messages_dead_lettered", { description: "Messages in the dead-letter list" }),
  published: Metric.counter("queue_published_total", { description: "Messages committed" }),
  delivered: Metric.counter("queue_delivered_total", { description: "Deliveries (incl. redeliveries)" }),
  redelivered: Metric.counter("queue_redelivered_total", { description: "Deliveries after the first" }),
  acked: Metric.counter("queue_acked_total", { description: "Messages acknowledged" }),
  deadLetteredTotal: Metric.counter("queue_dead_lettered_total", { description: "Messages moved to dead letters" })
}

/** What a queue's metrics read when they are exported. */
export interface QueueReadings {
  readonly ready: () => number
  readonly pending: () => number
  readonly delayed: () => number
  readonly inFlight: () => number
  readonly deadLettered: () => number
  readonly published: () => number
  readonly delivered: () => number
  readonly redelivered: () => number
  readonly acked: () => number
  readonly deadLetteredTotal: () => number
}

/**
 * The metrics are read from the queue's own counters when they are exported
 * (observability/Counters.ts) instead of being pushed on every operation, which
 * would cost more than the operation itself on the hot path. Shared by every
 * backend (PgMessageQueue.ts), so the series are the same whichever one runs.
 */
export const registerQueueMetrics = (name: string, read: QueueReadings) =>
  Effect.acquireRelease(
    Effect.contextWith((context: Context.Context<never>) => {
      const attributes = { queue: name }
      const gauge = (m: Metric.Gauge<number>, get: () => number) => registerGaugeReading(m, attributes, context, get)
      const counter = (m: Metric.Counter<number>, get: () => number) =>
        registerCounterReading(m, attributes, context, get)
      return Effect.succeed([
        gauge(metric.ready, read.ready),
        gauge(metric.pending, read.pending),
        gauge(metric.delayed, read.delayed),
        gauge(metric.inFlight, read.inFlight),
        gauge(metric.deadLettered, read.deadLettered),
        counter(metric.published, read.published),
        counter(metric.delivered, read.delivered),
        counter(metric.redelivered, read.redelivered),
        counter(metric.acked, read.acked),
        counter(metric.deadLetteredTotal, read.deadLetteredTotal)
      ])
    }),
    (registrations) =>
      Effect.sync(() => {
        for (const registration of registrations) registration.remove()
      })
  )

const registerMetrics = (core: QueueCore, name: string) =>
  registerQueueMetrics(name, {
    ready: () => core.ready,
    pending: () => core.pending,
    delayed: () => core.delayed,
    inFlight: () => core.inFlight,
    deadLettered: () => core.deadLettered,
    published: () => core.published,
    delivered: () => core.delivered,
    redelivered: () => core.redelivered,
    acked: () => core.acked,
    deadLetteredTotal: () => core.deadLetteredTotal
  })

/** A dead-lettering or a redrive waiting for its hook to persist it. */
type PersistOp =
  | { readonly _tag: "deadLetter"; readonly letter: DeadLetter }
  | { readonly _tag: "redrive"; readonly messageIds: ReadonlyArray<string> }

/** A hook's failure as text for `AckNotRecorded`. */
const describeError = (error: unknown): string =>
  Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message !== ""
    ? error.message
    : String(error)

const validate = (name: string, value: number, minimum: number): number => {
  if (!Number.isInteger(value) || value < minimum) {
    throw new RangeError(`MessageQueue: ${name} must be an integer ≥ ${minimum}, got ${value}`)
  }
  return value
}

/** The settings with their defaults; an invalid one is a defect (every backend checks them alike). */
export const settingsOf = (
  options: Pick<MessageQueueOptions, "capacity" | "maxDeliveries" | "visibilityTimeout">
): Effect.Effect<MessageQueueSettings> =>
  Effect.try({
    try: () => ({
      capacity: validate("capacity", options.capacity ?? 10_000, 1),
      maxDeliveries: validate("maxDeliveries", options.maxDeliveries ?? 5, 1),
      visibilityTimeoutMs: toMillis(options.visibilityTimeout, 30_000)
    }),
    catch: (error) => error
  }).pipe(Effect.orDie)

/** Builds a queue in the current scope: its timer fiber lives as long as the scope. */
export const make = Effect.fnUntraced(function* <R = never>(options: MessageQueueOptions<R>) {
  const settings: MessageQueueSettings = yield* settingsOf(options)
  const clock = yield* Clock.Clock
  const context = yield* Effect.context<R>()
  const name = options.name ?? "messages"

  // Receivers waiting in a long poll; woken one per message that becomes ready.
  const waiters = new Set<() => void>()
  let waiting = true
  const wake = (count: number) => {
    for (const waiter of waiters) {
      if (count-- <= 0) break
      waiters.delete(waiter)
      waiter()
    }
  }

  // Fibers waiting for room (see awaitRoom); all woken when any is made.
  const roomWaiters = new Set<() => void>()

  // The timer fiber sleeps until `armedAt`; only a timer due earlier wakes it.
  // It never sleeps past the earliest timer, and keeps an armed time that is
  // still ahead even if that timer went away (acked), so the usual
  // receive → ack traffic, whose deadlines only grow, does not wake it at all.
  const timerLatch = Latch.makeUnsafe(false)
  let armedAt = Infinity

  // Dead-letterings and redrives waiting to be persisted, oldest first; the
  // head leaves only once its hook succeeded (see persistLoop).
  const onDeadLetter = options.onDeadLetter
  const onRedrive = options.onRedrive
  const toPersist: Array<PersistOp> = []
  const persistLatch = Latch.makeUnsafe(false)
  const persistedWaiters = new Set<() => void>()
  const enqueuePersist = (op: PersistOp) => {
    toPersist.push(op)
    persistLatch.openUnsafe()
  }

  const core = new QueueCore({
    capacity: settings.capacity,
    maxDeliveries: settings.maxDeliveries,
    onReady: (count) => {
      if (waiters.size > 0) wake(count)
    },
    onTimer: (dueAt) => {
      if (dueAt < armedAt) {
        armedAt = dueAt
        timerLatch.openUnsafe()
      }
    },
    onRoom: () => {
      if (roomWaiters.size === 0) return
      const woken = Array.from(roomWaiters)
      roomWaiters.clear()
      for (const waiter of woken) waiter()
    },
    onDead:
      onDeadLetter === undefined
        ? () => {}
        : (entry) =>
            enqueuePersist({
              _tag: "deadLetter",
              letter: {
                messageId: entry.messageId,
                attempts: entry.deliveries,
                lastError: entry.lastError ?? nackedError,
                body: entry.body,
                deadLetteredAt: entry.deadLetteredAt
              }
            })
  })

  const timerLoop = Effect.gen(function* () {
    while (true) {
      timerLatch.closeUnsafe()
      const now = clock.currentTimeMillisUnsafe()
      core.fireDue(now)
      armedAt = Math.min(core.nextDueAt() ?? Infinity, armedAt > now ? armedAt : Infinity)
      yield* armedAt === Infinity
        ? timerLatch.await
        : Effect.raceFirst(clock.sleep(Duration.millis(armedAt - now)), timerLatch.await)
    }
  })
  yield* timerLoop.pipe(
    Effect.annotateLogs({ module: "MessageQueue", fiber: "timers" }),
    Effect.interruptible,
    Effect.forkScoped
  )
  yield* registerMetrics(core, name)

  const runHook = (hook: string, effect: Effect.Effect<void, unknown, R>): Effect.Effect<void> =>
    effect.pipe(
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logWarning(`MessageQueue ${hook} hook failed`, cause)
      ),
      Effect.provideContext(context)
    )

  const persistOnce = (op: PersistOp): Effect.Effect<void, unknown> =>
    (op._tag === "deadLetter" ? onDeadLetter!(op.letter) : onRedrive!(op.messageIds)).pipe(
      Effect.provideContext(context)
    )

  /**
   * Persists the head of `toPersist` until it succeeds (backoff 100 ms doubling
   * to 10 s), then the next: in order, so a redrive never lands before the
   * dead-lettering it undoes. The hooks are idempotent, so an attempt whose
   * answer was lost (or that was interrupted at shutdown) may run again.
   */
  const persistLoop = Effect.gen(function* () {
    while (true) {
      persistLatch.closeUnsafe()
      const op = toPersist[0]
      if (op === undefined) {
        const waiting = Array.from(persistedWaiters)
        persistedWaiters.clear()
        for (const waiter of waiting) waiter()
        yield* persistLatch.await
        continue
      }
      let delayMs = 100
      while (true) {
        const exit = yield* Effect.exit(persistOnce(op))
        if (exit._tag === "Success") break
        yield* Effect.logWarning(`MessageQueue: persisting a ${op._tag} failed; retrying in ${delayMs} ms`, exit.cause)
        yield* clock.sleep(Duration.millis(delayMs))
        delayMs = Math.min(delayMs * 2, 10_000)
      }
      toPersist.shift()
    }
  })

  /** At shutdown: one more attempt for whatever is left, bounded; what still fails is recovered as ready at restart. */
  const persistRemaining = Effect.gen(function* () {
    while (toPersist.length > 0) {
      const exit = yield* Effect.exit(persistOnce(toPersist[0]!))
      if (exit._tag === "Failure") {
        yield* Effect.logWarning(
          `MessageQueue: ${toPersist.length} dead-letterings or redrives not persisted at shutdown`
        )
        return
      }
      toPersist.shift()
    }
  }).pipe(Effect.timeoutOption(Duration.seconds(5)), Effect.asVoid)

  if (onDeadLetter !== undefined || onRedrive !== undefined) {
    // Added before the fork, so it runs after the loop's interruption (finalizers run in reverse).
    yield* Effect.addFinalizer(() => persistRemaining)
    yield* persistLoop.pipe(
      Effect.annotateLogs({ module: "MessageQueue", fiber: "persist" }),
      Effect.interruptible,
      Effect.forkScoped
    )
  }

  const handle = (reservation: Reservation): ReservationHandle => {
    if (reservation instanceof ReservationHandle && reservation.owner === core) return reservation
    throw new TypeError(`MessageQueue: reservation for ${reservation.messageId} was not issued by this queue`)
  }

  // Hot-path operations are plain synchronous effects, untraced: a traced
  // Effect.fn costs several times the whole operation here (see BENCHMARKS.md).
  const reserve = (message: Message): Effect.Effect<Reservation, QueueFull> =>
    Effect.suspend(() => {
      const reservation = core.reserve(message.messageId, message.body)
      return reservation === undefined
        ? Effect.fail(new QueueFull({ messageId: message.messageId, capacity: core.capacity }))
        : Effect.succeed(reservation)
    })

  const commit = (reservation: Reservation): Effect.Effect<void> => Effect.sync(() => core.commit(handle(reservation)))

  const abort = (reservation: Reservation): Effect.Effect<void> => Effect.sync(() => core.abort(handle(reservation)))

  const withReservation = <A, E, R2>(
    message: Message,
    use: (reservation: Reservation) => Effect.Effect<A, E, R2>
  ): Effect.Effect<A, E | QueueFull, R2> =>
    Effect.acquireUseRelease(reserve(message), use, (reservation, exit) =>
      exit._tag === "Success" ? commit(reservation) : abort(reservation)
    )

  const publish = (message: Message): Effect.Effect<PublishResult, QueueFull> =>
    Effect.suspend(() => {
      const added = core.publish(message.messageId, message.body)
      return added === undefined
        ? Effect.fail(new QueueFull({ messageId: message.messageId, capacity: core.capacity }))
        : Effect.succeed({ messageId: message.messageId, duplicate: !added })
    })

  const awaitReady = (millis: number): Effect.Effect<void> =>
    Effect.raceFirst(
      Effect.callback<void>((resume) => {
        const waiter = () => resume(Effect.void)
        waiters.add(waiter)
        return Effect.sync(() => {
          waiters.delete(waiter)
        })
      }),
      clock.sleep(Duration.millis(millis))
    )

  // Runs uninterruptibly except while waiting, so messages taken off the ready
  // list always reach the caller.
  const receiveWaiting = (
    max: number,
    visibilityMs: number,
    deadline: number,
    restore: <A, E, R2>(effect: Effect.Effect<A, E, R2>) => Effect.Effect<A, E, R2>
  ): Effect.Effect<ReadonlyArray<Delivery>> =>
    Effect.suspend(() => {
      const now = clock.currentTimeMillisUnsafe()
      const deliveries = core.take(max, now, visibilityMs)
      if (deliveries.length > 0 || now >= deadline || !waiting) return Effect.succeed(deliveries)
      return Effect.flatMap(restore(awaitReady(deadline - now)), () =>
        receiveWaiting(max, visibilityMs, deadline, restore)
      )
    })

  const receive = (options?: ReceiveOptions): Effect.Effect<ReadonlyArray<Delivery>> =>
    Effect.suspend(() => {
      const max = Math.max(1, Math.floor(options?.max ?? 1))
      const visibilityMs = toMillis(options?.visibilityTimeout, settings.visibilityTimeoutMs)
      const waitMs = toMillis(options?.wait, 0)
      const now = clock.currentTimeMillisUnsafe()
      const deliveries = core.take(max, now, visibilityMs)
      if (deliveries.length > 0 || waitMs <= 0 || !waiting) return Effect.succeed(deliveries)
      return Effect.uninterruptibleMask((restore) => receiveWaiting(max, visibilityMs, now + waitMs, restore))
    })

  const onAck = options.onAck
  const ack = (receipt: string, ackOptions?: AckOptions): Effect.Effect<void, ReceiptInvalid | AckNotRecorded> =>
    Effect.suspend((): Effect.Effect<void, ReceiptInvalid | AckNotRecorded> => {
      if (onAck === undefined) {
        return core.ack(receipt) === undefined ? Effect.fail(new ReceiptInvalid({ receipt })) : Effect.void
      }
      const entry = core.current(receipt)
      if (entry === undefined) return Effect.fail(new ReceiptInvalid({ receipt }))
      const messageId = entry.messageId
      return onAck({ messageId, attempts: entry.deliveries, result: ackOptions?.result }).pipe(
        (effect): Effect.Effect<void, unknown> => Effect.provideContext(effect, context),
        Effect.mapError((error) => new AckNotRecorded({ messageId, message: describeError(error) })),
        Effect.andThen(
          Effect.sync(() => {
            // Stale now (its deadline passed while the hook ran): the settlement is
            // recorded all the same, so the ack succeeded; the message's new owner
            // acks it as usual (the hook keeps the first result).
            if (core.ack(receipt) === undefined) core.forgetProcessed(entry)
          })
        )
      )
    })

  const nack = (receipt: string, options?: NackOptions): Effect.Effect<void, ReceiptInvalid> =>
    Effect.suspend(() =>
      core.nack(receipt, clock.currentTimeMillisUnsafe(), toMillis(options?.delay, 0), options?.error)
        ? Effect.void
        : Effect.fail(new ReceiptInvalid({ receipt }))
    )

  const extend = (receipt: string, visibilityTimeout: Duration.Input): Effect.Effect<void, ReceiptInvalid> =>
    Effect.suspend(() =>
      core.extend(receipt, clock.currentTimeMillisUnsafe(), toMillis(visibilityTimeout, 0))
        ? Effect.void
        : Effect.fail(new ReceiptInvalid({ receipt }))
    )

  const release = (receipt: string): Effect.Effect<void, ReceiptInvalid> =>
    Effect.suspend(() => (core.release(receipt) ? Effect.void : Effect.fail(new ReceiptInvalid({ receipt }))))

  const deadLetters = Effect.sync(() => core.deadLetters()).pipe(Effect.withSpan("MessageQueue.deadLetters"))

  const redrive = Effect.fn("MessageQueue.redrive")(function* (options?: {
    readonly messageIds?: ReadonlyArray<string> | undefined
  }) {
    const redriven = core.redrive(options?.messageIds)
    if (onRedrive !== undefined && redriven.length > 0) enqueuePersist({ _tag: "redrive", messageIds: redriven })
    return redriven.length
  })

  const onPurge = options.onPurge
  const purge = Effect.fn("MessageQueue.purge")(function* (options?: {
    readonly messageIds?: ReadonlyArray<string> | undefined
  }) {
    const purged = core.purge(options?.messageIds)
    if (onPurge !== undefined && purged.length > 0) yield* runHook("onPurge", onPurge(purged))
    return purged.length
  })

  const stats = Effect.sync(
    (): QueueStats => ({
      ...core.counts(),
      capacity: core.capacity,
      size: core.size,
      available: core.capacity - core.size,
      waiting: waiters.size,
      maxDeliveries: core.maxDeliveries,
      visibilityTimeoutMs: settings.visibilityTimeoutMs,
      totals: core.totals()
    })
  )

  const attemptsOf = (messageId: string) => core.attemptsOf(messageId)

  const restoreDeadLetter = (letter: DeadLetter) => Effect.sync(() => core.restoreDead(letter))

  const awaitPersisted: Effect.Effect<void> = Effect.suspend(() =>
    toPersist.length === 0
      ? Effect.void
      : Effect.callback<void>((resume) => {
          const waiter = () => resume(Effect.void)
          persistedWaiters.add(waiter)
          return Effect.sync(() => {
            persistedWaiters.delete(waiter)
          })
        })
  )

  const stopWaiting = Effect.sync(() => {
    waiting = false
    wake(waiters.size)
  })

  const awaitRoom: Effect.Effect<void> = Effect.suspend(() =>
    core.size < core.capacity
      ? Effect.void
      : Effect.callback<void>((resume) => {
          const waiter = () => resume(Effect.void)
          roomWaiters.add(waiter)
          return Effect.sync(() => {
            roomWaiters.delete(waiter)
          })
        })
  )

  const service: MessageQueueService = {
    settings,
    reserve,
    commit,
    abort,
    withReservation,
    publish,
    receive,
    ack,
    nack,
    extend,
    release,
    deadLetters,
    redrive,
    purge,
    stats,
    attemptsOf,
    restoreDeadLetter,
    awaitPersisted,
    stopWaiting,
    awaitRoom
  }
  return service
})
