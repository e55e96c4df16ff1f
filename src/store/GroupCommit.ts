/**
 * Group commit: concurrent callers' items are written together, one
 * transaction per batch, so the cost of a commit (a round trip and a WAL
 * flush) is shared by everyone waiting for one.
 *
 * Batches form naturally: each of `workers` fibers takes whatever is waiting
 * (at least one item, at most `maxBatch`), optionally lingers to let more
 * arrive, writes them, and answers each caller. An idle system therefore
 * writes a lone item at once — no added latency at concurrency 1 — and a busy
 * one writes large batches while earlier ones are in flight.
 *
 * Why not `RequestResolver`: it batches what is requested in one window of
 * time, and windows run independently; group commit wants the opposite —
 * batch whatever queued up *while the previous write was in flight* — which
 * is this small loop.
 */
import { Deferred, Duration, Effect, Exit, Queue } from "effect"

export interface GroupCommitOptions<A, B, E> {
  /** Items written together at most; 1 turns batching off. */
  readonly maxBatch: number
  /** How long a worker waits for more items once it has one (0: never waits). */
  readonly linger: Duration.Input
  /** Batches written at once (≤ the connection pool size). */
  readonly workers: number
  /** Writes a batch; answers one `Exit` per item, in order. Must not fail as a whole. */
  readonly write: (items: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<Exit.Exit<B, E>>>
}

interface Pending<A, B, E> {
  readonly item: A
  readonly answer: Deferred.Deferred<B, E>
}

/** Starts the workers in the current scope; returns the function callers use. */
export const make = Effect.fnUntraced(function* <A, B, E>(options: GroupCommitOptions<A, B, E>) {
  const waiting = yield* Queue.unbounded<Pending<A, B, E>>()
  const linger = Duration.fromInputUnsafe(options.linger)
  const lingers = Duration.toMillis(linger) > 0
  let closed = false

  const writeBatch = (batch: ReadonlyArray<Pending<A, B, E>>) =>
    options.write(batch.map((pending) => pending.item)).pipe(
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.sync(() => {
          for (let i = 0; i < batch.length; i++) {
            // A write that died answers everyone with the same defect.
            const answer: Exit.Exit<B, E> = Exit.isSuccess(exit) ? exit.value[i]! : Exit.failCause(exit.cause)
            Deferred.doneUnsafe(batch[i]!.answer, answer)
          }
        })
      )
    )

  // A caller that gave up (timed out, disconnected) has already had its
  // answer settled: its item is not written at all.
  const stillWanted = (batch: Iterable<Pending<A, B, E>>) =>
    Array.from(batch).filter((pending) => !Deferred.isDoneUnsafe(pending.answer))

  const worker = Effect.gen(function* () {
    while (true) {
      const first = yield* Queue.takeBetween(waiting, 1, options.maxBatch)
      // From here on the batch is ours to answer: linger and write uninterruptibly.
      yield* Effect.uninterruptible(
        Effect.gen(function* () {
          let batch = Array.from(first)
          if (lingers && batch.length < options.maxBatch) {
            yield* Effect.sleep(linger)
            batch = batch.concat(Array.from(yield* Queue.takeBetween(waiting, 0, options.maxBatch - batch.length)))
          }
          const wanted = stillWanted(batch)
          if (wanted.length > 0) yield* writeBatch(wanted)
        })
      )
    }
  })

  yield* Effect.forkScoped(
    Effect.all(
      Array.from({ length: Math.max(1, options.workers) }, () => worker),
      { concurrency: "unbounded", discard: true }
    )
  )
  // Closing: no new items; whoever still waits for a batch that will never be
  // written is told so (as an interruption) instead of waiting forever.
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      closed = true
      return Effect.flatMap(Queue.clear(waiting), (left) =>
        Effect.forEach(left, (pending) => Deferred.interrupt(pending.answer), { discard: true })
      )
    })
  )

  /**
   * Queues `item` for the next batch and waits for its own answer, at most
   * `timeout` (then `onTimeout()`). Interrupted or timed out while still
   * queued, the item is dropped unwritten; while being written, the write
   * completes and the caller just no longer hears the outcome.
   */
  return (item: A, timeout: Duration.Input, onTimeout: () => E): Effect.Effect<B, E> =>
    Effect.suspend(() => {
      if (closed) return Effect.interrupt
      const answer = Deferred.makeUnsafe<B, E>()
      Queue.offerUnsafe(waiting, { item, answer })
      return Deferred.await(answer).pipe(
        Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(onTimeout()) }),
        Effect.onExit(() => Deferred.interrupt(answer))
      )
    })
})
