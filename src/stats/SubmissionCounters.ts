/**
 * Duplicate and invalid submissions, counted in memory on the submit path and
 * written to `submission_stats` per minute by a background fiber.
 *
 * On the submit path a count is one addition to a number in this closure:
 * no clock read, no allocation, no database. Every `interval` (1 s by default)
 * the flush fiber takes the counts and adds them to the row of the minute the
 * interval began in (so a count lands at most one interval from its true
 * minute), in one statement that adds to the row: several instances' counts
 * add up. A flush the database refused keeps its counts for the next one; a
 * flush whose counts could no longer reach their minute before it closes
 * adds them to the current minute (Closing.ts `flushTarget`).
 *
 * Losses: a crash loses at most the counts of the interval not yet flushed
 * (1 s by default); a clean shutdown flushes them (the layer's finalizer). A
 * flush whose commit was cut by a lost connection is not known to have
 * happened and is written again: counts are written at least once, so such a
 * rare outcome may count twice rather than lose.
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Context, Duration, Effect, Layer } from "effect"
import { unavailableOnFailure } from "../store/DatabaseUnavailable.ts"
import { floorMinute, flushTarget } from "./Closing.ts"
import { makeStatsSql } from "./StatsSql.ts"

interface Counts {
  duplicate: number
  invalid: number
}

export class SubmissionCounters extends Context.Service<
  SubmissionCounters,
  {
    /** Counts one duplicate submission (a 409 duplicate answer). */
    readonly duplicate: () => void
    /** Counts one invalid submission (a 400 to POST /formulas). */
    readonly invalid: () => void
    /** Writes what has been counted so far (the background fiber calls it every interval). */
    readonly flush: Effect.Effect<void>
    /** How often counts are written; the stats close buckets accordingly (Closing.ts). */
    readonly flushIntervalMs: number
  }
>()("formula-intake/stats/SubmissionCounters") {
  static readonly layerWith = (options: { readonly interval?: Duration.Input | undefined } = {}) =>
    Layer.effect(
      SubmissionCounters,
      Effect.gen(function* () {
        const statsSql = makeStatsSql(yield* PgClient.PgClient)
        const flushIntervalMs = Duration.toMillis(Duration.fromInputUnsafe(options.interval ?? Duration.seconds(1)))

        let duplicate = 0
        let invalid = 0
        let intervalStart = yield* Clock.currentTimeMillis
        // Counts taken from the submit path and not yet written, by minute.
        const owed = new Map<number, Counts>()
        const owe = (minute: number, counts: Counts) => {
          const known = owed.get(minute)
          if (known === undefined) owed.set(minute, { ...counts })
          else {
            known.duplicate += counts.duplicate
            known.invalid += counts.invalid
          }
        }

        // Uninterruptible: counts taken from the map are either written or put back.
        const flush = Effect.uninterruptible(
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            if (duplicate + invalid > 0) {
              owe(floorMinute(intervalStart), { duplicate, invalid })
              duplicate = 0
              invalid = 0
            }
            intervalStart = now
            if (owed.size === 0) return
            const taken = new Map<number, Counts>()
            for (const [minute, counts] of owed) {
              const target = flushTarget(minute, now, flushIntervalMs)
              const known = taken.get(target)
              if (known === undefined) taken.set(target, counts)
              else {
                known.duplicate += counts.duplicate
                known.invalid += counts.invalid
              }
            }
            owed.clear()
            yield* unavailableOnFailure(
              statsSql.addCounts([...taken].map(([minuteMs, counts]) => ({ minuteMs, ...counts })))
            ).pipe(
              Effect.catchCause((cause) =>
                Effect.andThen(
                  Effect.sync(() => taken.forEach((counts, minute) => owe(minute, counts))),
                  Effect.logWarning("submission stats: flush failed, kept for the next one", cause)
                )
              )
            )
          })
        )

        // Flushed once more when the scope closes (after the fiber below stops): a clean shutdown loses nothing.
        yield* Effect.addFinalizer(() => flush)
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(flushIntervalMs), flush)))

        return SubmissionCounters.of({
          duplicate: () => void duplicate++,
          invalid: () => void invalid++,
          flush,
          flushIntervalMs
        })
      })
    )

  static readonly layer = SubmissionCounters.layerWith()

  /** Counts nothing and writes nothing (benchmarks: the submit path without the counters). */
  static readonly layerOff = Layer.succeed(
    SubmissionCounters,
    SubmissionCounters.of({ duplicate: () => {}, invalid: () => {}, flush: Effect.void, flushIntervalMs: 1_000 })
  )
}
