/**
 * Submissions over time and the most used materials.
 *
 *   query → resolve the range and its buckets in the zone (PostgreSQL: one statement)
 *         → closed buckets from the cache; the others (and closed ones not yet cached) counted
 *           in one more statement → closed ones cached
 *
 * Buckets: every one whose start lies in [the start of the bucket holding
 * `from`, `to`), zeros included. Minutes and hours are steps of absolute time
 * from the zone's wall-clock boundary; days, weeks (starting Monday, ISO 8601)
 * and months follow the zone's calendar, so a day of a DST change has 23 or 25
 * hours. A closed bucket (Closing.ts) is computed once and kept: its answer
 * never changes. The current one, and those that ended within the closing
 * margin, are counted at every query.
 *
 * The cache holds at most `cacheCapacity` buckets (oldest entries dropped
 * first); a dropped bucket is computed again, to the same answer (Closing.ts).
 */
import { PgClient } from "@effect/sql-pg"
import { Clock, Context, Effect, Layer, Schema } from "effect"
import { type DatabaseUnavailable, unavailableOnFailure } from "../store/DatabaseUnavailable.ts"
import { isClosed } from "./Closing.ts"
import { SubmissionCounters } from "./SubmissionCounters.ts"
import { type BucketCounts, type Granularity, makeStatsSql, type QueryTime } from "./StatsSql.ts"

export const maxBuckets = 10_000

/** How far back a range goes when `from` is left out. */
export const defaultSpan: Record<Granularity, string> = {
  minute: "60 minutes",
  hour: "48 hours",
  day: "30 days",
  week: "26 weeks",
  month: "12 months"
}

/** Problems with a range, each at its JSON Pointer path into the request (`/query/to`). */
export class StatsQueryInvalid extends Schema.TaggedError<StatsQueryInvalid>()("StatsQueryInvalid", {
  errors: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String }))
}) {}

export interface SubmissionsQuery {
  readonly granularity: Granularity
  readonly timeZone: string
  /** Left out: `to` minus the granularity's default span. */
  readonly from?: QueryTime | undefined
  /** Left out: now. */
  readonly to?: QueryTime | undefined
}

export interface Bucket extends BucketCounts {
  /** The bucket's start on the zone's wall clock, with the zone's offset: `2026-03-29T00:00:00+01:00`. */
  readonly start: string
}

export interface SubmissionsAnswer {
  readonly granularity: Granularity
  readonly timeZone: string
  readonly buckets: ReadonlyArray<Bucket>
}

export interface MaterialUse {
  readonly name: string
  readonly formulas: number
  readonly medianConcentration: string
}

const offsetText = (seconds: number) => {
  const sign = seconds < 0 ? "-" : "+"
  const minutes = Math.abs(seconds) / 60
  const pad = (n: number) => String(Math.floor(n)).padStart(2, "0")
  return `${sign}${pad(minutes / 60)}:${pad(minutes % 60)}`
}

export class SubmissionStats extends Context.Service<
  SubmissionStats,
  {
    submissions(query: SubmissionsQuery): Effect.Effect<SubmissionsAnswer, StatsQueryInvalid | DatabaseUnavailable>
    materials(top: number): Effect.Effect<ReadonlyArray<MaterialUse>, DatabaseUnavailable>
    /** Buckets counted by the database since start-up (closed ones once each, while cached). */
    readonly computedBuckets: () => number
  }
>()("formula-intake/stats/SubmissionStats") {
  static readonly layerWith = (options: { readonly cacheCapacity?: number } = {}) =>
    Layer.effect(
      SubmissionStats,
      Effect.gen(function* () {
        const statsSql = makeStatsSql(yield* PgClient.PgClient)
        const { flushIntervalMs } = yield* SubmissionCounters
        const cacheCapacity = options.cacheCapacity ?? 200_000

        // Closed buckets by granularity, zone and start: immutable answers.
        const closed = new Map<string, BucketCounts>()
        const remember = (key: string, counts: BucketCounts) => {
          if (closed.size >= cacheCapacity) closed.delete(closed.keys().next().value!)
          closed.set(key, counts)
        }
        const knownZones = new Set<string>()
        let computed = 0

        const zoneKnown = (zone: string) =>
          knownZones.has(zone)
            ? Effect.succeed(true)
            : Effect.tap(unavailableOnFailure(statsSql.zoneKnown(zone)), (known) =>
                Effect.sync(() => {
                  if (known) knownZones.add(zone)
                })
              )

        const submissions = Effect.fn("SubmissionStats.submissions")(function* (query: SubmissionsQuery) {
          const { granularity, timeZone } = query
          if (!(yield* zoneKnown(timeZone))) {
            return yield* new StatsQueryInvalid({
              errors: [{ path: "/query/timeZone", message: `${timeZone} is not a time zone the database knows` }]
            })
          }
          const now = yield* Clock.currentTimeMillis
          const to = query.to ?? { text: new Date(now).toISOString(), hasOffset: true }
          const range = yield* unavailableOnFailure(
            statsSql.buckets({
              granularity,
              zone: timeZone,
              from: query.from,
              to,
              span: defaultSpan[granularity],
              limit: maxBuckets
            })
          )
          if (range.fromMs >= range.toMs) {
            return yield* new StatsQueryInvalid({
              errors: [
                {
                  path: "/query/to",
                  message: `must be after from (${new Date(range.fromMs).toISOString()}); it is ${new Date(range.toMs).toISOString()}`
                }
              ]
            })
          }
          if (range.buckets.length > maxBuckets) {
            return yield* new StatsQueryInvalid({
              errors: [
                {
                  path: "/query/from",
                  message: `the range holds more than ${maxBuckets} ${granularity} buckets; narrow it or choose a coarser granularity`
                }
              ]
            })
          }

          const keyOf = (startMs: number) => `${granularity} ${timeZone} ${startMs}`
          const answers: Array<BucketCounts | undefined> = range.buckets.map((bucket) =>
            closed.get(keyOf(bucket.startMs))
          )
          const missing = range.buckets.flatMap((_, i) => (answers[i] === undefined ? [i] : []))
          if (missing.length > 0) {
            const counted = yield* unavailableOnFailure(statsSql.counts(missing.map((i) => range.buckets[i]!)))
            computed += missing.length
            missing.forEach((i, n) => {
              const bucket = range.buckets[i]!
              answers[i] = counted[n]!
              // Closed as of `now`, read before the counts: nothing can change it any more.
              if (isClosed(bucket.endMs, now, flushIntervalMs)) remember(keyOf(bucket.startMs), counted[n]!)
            })
          }
          return {
            granularity,
            timeZone,
            buckets: range.buckets.map((bucket, i) => ({
              start: bucket.local + offsetText(bucket.offsetSeconds),
              ...answers[i]!
            }))
          }
        })

        const materials = Effect.fn("SubmissionStats.materials")(function* (top: number) {
          const rows = yield* unavailableOnFailure(statsSql.topMaterials(top))
          return rows.map((row) => ({
            name: row.name,
            formulas: Number(row.formulas),
            medianConcentration: row.median
          }))
        })

        return SubmissionStats.of({ submissions, materials, computedBuckets: () => computed })
      })
    )

  static readonly layer = SubmissionStats.layerWith()
}
