/**
 * The queue backends as the conformance suite (test/queue/QueueConformance.ts)
 * and the HTTP queue tests see them: a fresh, empty `MessageQueue` with given
 * settings, and a way to read what an ack stored as the message's result. The
 * in-memory one is here; the PostgreSQL one (it needs a database) is in
 * PgQueueBackend.ts.
 */
import { Context, type Duration, Effect, Layer, Option } from "effect"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"

/** The settings a test gives its queue; the rest are the backend's defaults. */
export interface QueueTestOptions {
  readonly capacity?: number | undefined
  readonly visibilityTimeout?: Duration.Input | undefined
  readonly maxDeliveries?: number | undefined
}

/** What an ack with a result stored for a message (`None`: no ack stored one). */
export class StoredResults extends Context.Service<
  StoredResults,
  { readonly resultOf: (messageId: string) => Effect.Effect<Option.Option<unknown>> }
>()("test/support/StoredResults") {}

export interface QueueUnderTest {
  readonly name: string
  /** A fresh, empty queue with these settings, and a way to read the results its acks stored. */
  readonly layer: (options: QueueTestOptions) => Layer.Layer<MessageQueue | StoredResults, unknown>
  /**
   * How long after a message became due by time alone (visibility timeout, nack delay) a
   * waiting receive may take to see it: 0 when the backend's timers wake waiters at once
   * (memory), its backstop poll interval when waiters learn it by polling (postgres).
   */
  readonly pollIntervalMs: number
  /** Runs of the random-interleavings property (each builds a fresh queue). */
  readonly propertyRuns: number
}

/** The in-memory queue; results are stored by an `onAck` hook that keeps the first, as the outbox does. */
export const memoryQueue: QueueUnderTest = {
  name: "memory",
  pollIntervalMs: 0,
  propertyRuns: 300,
  layer: (options) =>
    Layer.unwrap(
      Effect.sync(() => {
        const results = new Map<string, unknown>()
        return Layer.merge(
          MessageQueue.layerWith({
            ...options,
            onAck: ({ messageId, result }) =>
              Effect.sync(() => {
                if (!results.has(messageId)) results.set(messageId, result)
              })
          }),
          Layer.succeed(StoredResults, {
            resultOf: (messageId) =>
              Effect.sync(() => (results.has(messageId) ? Option.some(results.get(messageId)) : Option.none()))
          })
        )
      })
    )
}
