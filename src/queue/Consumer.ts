/**
 * In-process consumers of the MessageQueue.
 *
 * `consume(handler, { concurrency })` runs `concurrency` workers in the current
 * scope. Each long-polls for one message at a time and runs the handler with it:
 * success acks, with the handler's value as the message's result (undefined:
 * none); failure (or defect) nacks with exponential backoff, carrying the error
 * text as the message's last error, so after `maxDeliveries` the queue
 * dead-letters it. While a handler runs, a heartbeat extends the visibility
 * timeout (every half timeout by default), so a slow handler is not redelivered
 * to someone else.
 *
 * Shutdown (closing the scope): workers stop taking messages; handlers still
 * running get `shutdownGracePeriod` (default 0) to finish and ack or nack; the
 * rest are interrupted and their messages released to the front of the queue
 * without counting the attempt. Nothing is dropped: every received message is
 * acked, nacked or released before the scope finishes closing.
 */
import { Cause, Duration, Effect, Exit, Fiber, Predicate, type Scope } from "effect"
import { type Delivery, MessageQueue, type MessageQueueService } from "./MessageQueue.ts"

export interface ConsumeOptions {
  /** Handlers running at once (each worker holds at most one message). */
  readonly concurrency: number
  /** Visibility timeout of each delivery; default the queue's. */
  readonly visibilityTimeout?: Duration.Input | undefined
  /** How often a running handler's delivery is extended; default half the visibility timeout. */
  readonly heartbeat?: Duration.Input | undefined
  /** Long-poll wait of an idle worker; default 20 seconds. */
  readonly pollWait?: Duration.Input | undefined
  /** Nack delay after attempt n: min(max, initial × 2^(n−1)); defaults 1 second and 5 minutes. */
  readonly backoff?:
    | {
        readonly initial?: Duration.Input | undefined
        readonly max?: Duration.Input | undefined
      }
    | undefined
  /** How long running handlers may finish when the consumer stops; default 0. */
  readonly shutdownGracePeriod?: Duration.Input | undefined
}

const millis = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Math.max(0, Duration.toMillis(input))

/** Nack delay (ms) after a failed attempt `attempt` (1-based). */
export const backoffDelay = (attempt: number, initialMs: number, maxMs: number): number =>
  Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1))

const maxErrorLength = 2_000

/** A short description of why a handler failed, kept as the message's last error. */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  let text: string
  if (error instanceof Error) {
    const tag = Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : error.name
    text = error.message === "" ? tag : `${tag}: ${error.message}`
  } else if (typeof error === "string") {
    text = error
  } else {
    try {
      text = JSON.stringify(error) ?? String(error)
    } catch {
      text = String(error)
    }
  }
  return text.length > maxErrorLength ? text.slice(0, maxErrorLength) + "…" : text
}

/** `ConsumeOptions` resolved against the queue's settings, in milliseconds. */
export interface ConsumerTimings {
  readonly concurrency: number
  readonly visibilityMs: number
  readonly heartbeatMs: number
  readonly pollWaitMs: number
  readonly initialBackoffMs: number
  readonly maxBackoffMs: number
  readonly graceMs: number
}

export const resolveTimings = (options: ConsumeOptions, queue: MessageQueueService): ConsumerTimings => {
  const visibilityMs = millis(options.visibilityTimeout, queue.settings.visibilityTimeoutMs)
  return {
    concurrency: Math.max(1, Math.floor(options.concurrency)),
    visibilityMs,
    heartbeatMs: Math.max(1, millis(options.heartbeat, Math.floor(visibilityMs / 2))),
    pollWaitMs: millis(options.pollWait, 20_000),
    initialBackoffMs: millis(options.backoff?.initial, 1_000),
    maxBackoffMs: millis(options.backoff?.max, 300_000),
    graceMs: millis(options.shutdownGracePeriod, 0)
  }
}

/** Extends the delivery every `heartbeatMs` until interrupted (or until the receipt is gone). */
export const heartbeat = (queue: MessageQueueService, timings: ConsumerTimings, receipt: string) =>
  Effect.sleep(timings.heartbeatMs).pipe(
    Effect.andThen(queue.extend(receipt, timings.visibilityMs)),
    Effect.forever,
    // Ownership is gone (e.g. the handler outlived a missed heartbeat): the
    // settle will say so; nothing more to extend.
    Effect.catchTag("ReceiptInvalid", () => Effect.void)
  )

/**
 * How a delivery ends, from how its processing ended: success acks (with the
 * value as the result), interruption releases, failure nacks with backoff.
 * Never fails: a receipt lost meanwhile or an ack not recorded is logged, and
 * the message comes back at its deadline.
 */
export const settle = <E>(
  queue: MessageQueueService,
  timings: ConsumerTimings,
  delivery: Delivery,
  exit: Exit.Exit<unknown, E>
) => {
  const settled = Exit.isSuccess(exit)
    ? queue.ack(delivery.receipt, { result: exit.value })
    : Cause.hasInterruptsOnly(exit.cause)
      ? queue.release(delivery.receipt)
      : queue.nack(delivery.receipt, {
          delay: backoffDelay(delivery.attempt, timings.initialBackoffMs, timings.maxBackoffMs),
          error: describeFailure(exit.cause)
        })
  return settled.pipe(
    Effect.catchTag("ReceiptInvalid", () =>
      Effect.logWarning("Consumer lost a delivery before settling it; it will be redelivered", {
        messageId: delivery.messageId,
        attempt: delivery.attempt
      })
    ),
    // The message stays in flight under its receipt: redelivered at its deadline, the work done again.
    Effect.catchTag("AckNotRecorded", (error) =>
      Effect.logWarning("Consumer could not record an ack; the message will be redelivered", {
        messageId: delivery.messageId,
        attempt: delivery.attempt,
        error: error.message
      })
    )
  )
}

/** Makes the wrapped effect interruptible again inside the worker's uninterruptible loop. */
export type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * The workers and their shutdown, for `consume` and `consumeTransactional`:
 * `timings.concurrency` fibers in the current scope, each long-polling one
 * message at a time and handing it to `process`, which must settle it (ack,
 * nack or release) and may run only what it wraps in `restore` interruptibly.
 */
export const runWorkers = Effect.fnUntraced(function* <R>(
  queue: MessageQueueService,
  timings: ConsumerTimings,
  process: (delivery: Delivery, restore: Restore) => Effect.Effect<void, never, R>,
  module: string
): Effect.fn.Return<void, never, R | Scope.Scope> {
  let stopping = false

  interface Worker {
    busy: boolean
    fiber: Fiber.Fiber<void> | undefined
  }

  // Uninterruptible except while waiting for a message and while `process`
  // restores it (the handler), so a message is always settled once taken.
  const work = (worker: Worker) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        while (!stopping) {
          const deliveries = yield* restore(
            queue.receive({ max: 1, visibilityTimeout: timings.visibilityMs, wait: timings.pollWaitMs })
          )
          for (const delivery of deliveries) {
            worker.busy = true
            yield* process(delivery, restore)
            worker.busy = false
          }
        }
      })
    )

  const workers: Array<Worker> = []
  for (let i = 0; i < timings.concurrency; i++) {
    const worker: Worker = { busy: false, fiber: undefined }
    worker.fiber = yield* Effect.forkScoped(work(worker).pipe(Effect.annotateLogs({ module, worker: i })))
    workers.push(worker)
  }

  // Added after the workers, so it runs before their interrupting finalizers.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      stopping = true
      const fibers = workers.map((worker) => worker.fiber!)
      yield* Fiber.interruptAll(workers.filter((worker) => !worker.busy).map((worker) => worker.fiber!))
      if (timings.graceMs > 0) yield* Effect.timeoutOption(Fiber.awaitAll(fibers), timings.graceMs)
      yield* Fiber.interruptAll(fibers)
    })
  )
})

export const consume = Effect.fnUntraced(function* <E, R>(
  handler: (delivery: Delivery) => Effect.Effect<unknown, E, R>,
  options: ConsumeOptions
): Effect.fn.Return<void, never, MessageQueue | R | Scope.Scope> {
  const queue = yield* MessageQueue
  const timings = resolveTimings(options, queue)
  yield* runWorkers(
    queue,
    timings,
    (delivery, restore) =>
      Effect.exit(
        restore(
          Effect.scoped(
            Effect.andThen(Effect.forkScoped(heartbeat(queue, timings, delivery.receipt)), handler(delivery))
          )
        )
      ).pipe(Effect.flatMap((exit) => settle(queue, timings, delivery, exit))),
    "Consumer"
  )
})
