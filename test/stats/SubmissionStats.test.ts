/**
 * Submissions over time on both databases: every bucket present, each
 * granularity, time-zone and DST boundaries, the closed-bucket cache (not
 * recomputed; a late write cannot change it), the per-minute counters and
 * their flush fiber (TestClock), bad ranges, and the top materials.
 * Formulas are placed in time by inserting them with a chosen created_at.
 */
import { assert, describe, layer } from "@effect/vitest"
import { PgClient, PgTypes } from "@effect/sql-pg"
import { Effect, Exit, Layer } from "effect"
import { TestClock } from "effect/testing"
import { parseQueryTime } from "../../src/stats/QueryTimes.ts"
import type { Granularity } from "../../src/stats/StatsSql.ts"
import { SubmissionCounters } from "../../src/stats/SubmissionCounters.ts"
import { SubmissionStats } from "../../src/stats/SubmissionStats.ts"
import { testDatabases } from "../support/Databases.ts"

const texts = (values: ReadonlyArray<string>) => {
  const parameter = PgTypes.array(values, PgTypes.OID.text)
  if (parameter._tag === "Failure") throw parameter.failure
  return parameter.success
}

/** Formulas created at these instants (no materials, no message: the stats read created_at only). */
const insertAt = (...instants: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    yield* sql`
      INSERT INTO formulas (id, fingerprint, name, created_at)
      SELECT gen_random_uuid(), gen_random_uuid()::text, 'placed', t::timestamptz
        FROM unnest(${texts(instants)}::text[]) AS t`
  }).pipe(Effect.orDie)

const time = (text: string) => {
  const parsed = parseQueryTime(text)
  if (parsed === undefined) throw new Error(`not a query time: ${text}`)
  return parsed
}

const query = (granularity: Granularity, from: string, to: string, timeZone = "UTC") =>
  SubmissionStats.use((stats) => stats.submissions({ granularity, timeZone, from: time(from), to: time(to) }))

const starts = (answer: { readonly buckets: ReadonlyArray<{ readonly start: string }> }) =>
  answer.buckets.map((bucket) => bucket.start)
const created = (answer: { readonly buckets: ReadonlyArray<{ readonly created: number }> }) =>
  answer.buckets.map((bucket) => bucket.created)

const problems = <A, E>(effect: Effect.Effect<A, E, SubmissionStats>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(effect)
    if (Exit.isSuccess(exit)) return assert.fail("expected a 400")
    const error = exit.cause.reasons[0]
    assert.strictEqual((error as any)?.error?._tag, "StatsQueryInvalid", String(exit.cause))
    return (error as any).error.errors as ReadonlyArray<{ path: string; message: string }>
  })

/** Now, for the tests that need one: well after every placed formula. */
const now = Date.parse("2027-06-01T00:00:00Z")

// The database is shared by a suite's tests (each places its formulas in a time of its own); each test has its
// own stats services (an empty cache) on its own TestClock, which the flush fiber sleeps on.
const statsServices = SubmissionStats.layer.pipe(
  Layer.provideMerge(SubmissionCounters.layerWith({ interval: "1 second" }))
)
const testClock = TestClock.layer({ warningDelay: "1 hour" })
/**
 * Runs a test with its own stats services, built at `start` on the test's clock (the flush fiber wakes every
 * second of the clock's moves, so a test starts where it needs to be rather than jumping there).
 */
const withStatsAt =
  (start: string | number = now) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    TestClock.setTime(typeof start === "number" ? start : Date.parse(start)).pipe(
      Effect.andThen(Effect.provide(effect, statsServices)),
      Effect.provide(testClock)
    )

/** Polls (in real time, briefly) for what the flush fiber does after a clock step. */
const eventually = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 500; i++) {
      if (yield* condition) return
      yield* TestClock.withLive(Effect.sleep("10 millis"))
    }
    assert.fail("condition not reached in time")
  })

const minuteRow = (minute: string) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const rows = yield* sql`SELECT 1 FROM submission_stats WHERE minute = ${minute}::timestamptz`
    return rows.length === 1
  }).pipe(Effect.orDie)

for (const database of testDatabases) {
  describe(`submission stats on ${database.name}`, () => {
    layer(database.layer(), { excludeTestServices: true })((it) => {
      it.effect("fills gaps with zeros: every bucket of the range is present", () =>
        Effect.gen(function* () {
          yield* insertAt("2026-01-05T10:15:00Z", "2026-01-05T10:45:00Z", "2026-01-05T13:00:00Z")
          const answer = yield* query("hour", "2026-01-05T10:00:00Z", "2026-01-05T14:00:00Z")
          assert.deepStrictEqual(starts(answer), [
            "2026-01-05T10:00:00+00:00",
            "2026-01-05T11:00:00+00:00",
            "2026-01-05T12:00:00+00:00",
            "2026-01-05T13:00:00+00:00"
          ])
          assert.deepStrictEqual(created(answer), [2, 0, 0, 1])
          assert.deepStrictEqual(
            answer.buckets.map((bucket) => [bucket.duplicate, bucket.invalid]),
            [
              [0, 0],
              [0, 0],
              [0, 0],
              [0, 0]
            ]
          )
          // `from` inside a bucket starts at that bucket; `to` is exclusive.
          const inside = yield* query("hour", "2026-01-05T10:30:00Z", "2026-01-05T13:00:00Z")
          assert.deepStrictEqual(created(inside), [2, 0, 0])
        }).pipe(withStatsAt())
      )

      it.effect("answers every granularity: minute, hour, day, week (from Monday), month", () =>
        Effect.gen(function* () {
          // 2026-02-02 is a Monday.
          yield* insertAt(
            "2026-02-02T00:00:00Z",
            "2026-02-02T00:00:59.999Z",
            "2026-02-02T00:02:00Z",
            "2026-02-04T12:00:00Z",
            "2026-02-08T23:59:59Z",
            "2026-02-09T00:00:00Z",
            "2026-03-01T00:00:00Z"
          )
          const minutes = yield* query("minute", "2026-02-02T00:00:00Z", "2026-02-02T00:03:00Z")
          assert.deepStrictEqual(created(minutes), [2, 0, 1])
          const hours = yield* query("hour", "2026-02-02T00:00:00Z", "2026-02-02T02:00:00Z")
          assert.deepStrictEqual(created(hours), [3, 0])
          const days = yield* query("day", "2026-02-02", "2026-02-10")
          assert.deepStrictEqual(created(days), [3, 0, 1, 0, 0, 0, 1, 1])
          assert.strictEqual(starts(days)[7], "2026-02-09T00:00:00+00:00")
          // A week starts on Monday: from a Wednesday, the first bucket is that week's Monday.
          const weeks = yield* query("week", "2026-02-04", "2026-02-16")
          assert.deepStrictEqual(starts(weeks), ["2026-02-02T00:00:00+00:00", "2026-02-09T00:00:00+00:00"])
          assert.deepStrictEqual(created(weeks), [5, 1])
          const months = yield* query("month", "2026-02-15", "2026-04-01")
          assert.deepStrictEqual(starts(months), ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"])
          assert.deepStrictEqual(created(months), [6, 1])
        }).pipe(withStatsAt())
      )

      it.effect("follows the zone's wall clock: Europe/Berlin's DST days have 23 and 25 hours", () =>
        Effect.gen(function* () {
          // Local 2026-03-29 00:30 (+01:00) and 23:30 (+02:00): both on the short day.
          yield* insertAt("2026-03-28T23:30:00Z", "2026-03-29T21:30:00Z", "2026-03-29T22:30:00Z")
          const days = yield* query("day", "2026-03-28", "2026-03-31", "Europe/Berlin")
          assert.deepStrictEqual(starts(days), [
            "2026-03-28T00:00:00+01:00",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00"
          ])
          assert.deepStrictEqual(created(days), [0, 2, 1])
          // The same instants by UTC days.
          const utc = yield* query("day", "2026-03-28", "2026-03-31")
          assert.deepStrictEqual(created(utc), [1, 2, 0])

          const spring = yield* query("hour", "2026-03-29", "2026-03-30", "Europe/Berlin")
          assert.lengthOf(spring.buckets, 23, "the spring-forward day has 23 hours")
          assert.deepStrictEqual(starts(spring).slice(1, 3), ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"])
          const autumn = yield* query("hour", "2026-10-25", "2026-10-26", "Europe/Berlin")
          assert.lengthOf(autumn.buckets, 25, "the fall-back day has 25 hours")
          assert.deepStrictEqual(starts(autumn).slice(2, 4), ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"])
          const autumnDay = yield* query("day", "2026-10-25", "2026-10-27", "Europe/Berlin")
          assert.deepStrictEqual(starts(autumnDay), ["2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"])
        }).pipe(withStatsAt())
      )

      it.effect("follows America/New_York: DST days of 23 and 25 hours, weeks and months from local midnight", () =>
        Effect.gen(function* () {
          // Local 2026-03-08 23:30 EDT (-04:00) and 2026-03-09 00:30 EDT.
          yield* insertAt("2026-03-09T03:30:00Z", "2026-03-09T04:30:00Z")
          const days = yield* query("day", "2026-03-08", "2026-03-10", "America/New_York")
          assert.deepStrictEqual(starts(days), ["2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"])
          assert.deepStrictEqual(created(days), [1, 1])
          const spring = yield* query("hour", "2026-03-08", "2026-03-09", "America/New_York")
          assert.lengthOf(spring.buckets, 23)
          const autumn = yield* query("hour", "2026-11-01", "2026-11-02", "America/New_York")
          assert.lengthOf(autumn.buckets, 25)
          const months = yield* query("month", "2026-02-01", "2026-05-01", "America/New_York")
          assert.deepStrictEqual(starts(months), [
            "2026-02-01T00:00:00-05:00",
            "2026-03-01T00:00:00-05:00",
            "2026-04-01T00:00:00-04:00"
          ])
          // An instant with an offset is an instant whatever the zone.
          const instant = yield* query("day", "2026-03-09T04:00:00Z", "2026-03-09T05:00:00Z", "America/New_York")
          assert.deepStrictEqual(starts(instant), ["2026-03-09T00:00:00-04:00"])
        }).pipe(withStatsAt())
      )

      it.effect(
        "caches closed buckets: not recomputed, and a late write cannot change their answer; the current one is live",
        () =>
          Effect.gen(function* () {
            const stats = yield* SubmissionStats
            // Now is 2026-05-05 10:30: the 10:00 hour is current, 09:00 is closed.
            yield* insertAt("2026-05-05T09:10:00Z", "2026-05-05T10:10:00Z")
            const range = ["2026-05-05T08:00:00Z", "2026-05-05T11:00:00Z"] as const
            const first = yield* query("hour", ...range)
            assert.deepStrictEqual(created(first), [0, 1, 1])
            const computed = stats.computedBuckets()

            // Late writes into the closed hours and into the current one.
            yield* insertAt("2026-05-05T08:20:00Z", "2026-05-05T09:20:00Z", "2026-05-05T10:20:00Z")
            const second = yield* query("hour", ...range)
            assert.deepStrictEqual(
              created(second),
              [0, 1, 2],
              "closed hours keep their answer; the current one is live"
            )
            assert.strictEqual(stats.computedBuckets() - computed, 1, "only the current bucket was counted again")

            // The 10:00 hour closes once it ended more than the flush interval + 60 s ago.
            yield* TestClock.setTime(Date.parse("2026-05-05T11:00:30Z"))
            assert.deepStrictEqual(created(yield* query("hour", ...range)), [0, 1, 2], "not closed yet: counted")
            // A write committed within the margin after the hour ended (a submission stamped at 10:50) still counts.
            yield* insertAt("2026-05-05T10:50:00Z")
            assert.deepStrictEqual(created(yield* query("hour", ...range)), [0, 1, 3], "within the margin: live")
            yield* TestClock.setTime(Date.parse("2026-05-05T11:01:02Z"))
            assert.deepStrictEqual(created(yield* query("hour", ...range)), [0, 1, 3])
            const settled = stats.computedBuckets()
            yield* insertAt("2026-05-05T10:40:00Z")
            assert.deepStrictEqual(created(yield* query("hour", ...range)), [0, 1, 3], "closed now: cached")
            assert.strictEqual(stats.computedBuckets(), settled, "nothing recomputed")
            // Other granularities and zones are buckets of their own, computed once.
            assert.deepStrictEqual(created(yield* query("day", "2026-05-04", "2026-05-05")), [0])
          }).pipe(withStatsAt("2026-05-05T10:30:00Z"))
      )

      it.effect("counts duplicates and invalids in memory; the flush fiber writes them per minute (TestClock)", () =>
        Effect.gen(function* () {
          const counters = yield* SubmissionCounters
          const sql = yield* PgClient.PgClient
          counters.duplicate()
          counters.duplicate()
          counters.invalid()
          assert.isFalse(yield* minuteRow("2026-06-01T12:00:00Z"), "nothing written on the submit path")
          // One flush interval later the fiber writes them to the 12:00 minute.
          yield* TestClock.adjust(1_000)
          yield* eventually(minuteRow("2026-06-01T12:00:00Z"))
          // Another instance's counts of the same minute add up.
          yield* sql`
            INSERT INTO submission_stats (minute, duplicate, invalid) VALUES ('2026-06-01T12:00:00Z', 5, 0)
            ON CONFLICT (minute) DO UPDATE SET duplicate = submission_stats.duplicate + excluded.duplicate`
          const answer = yield* query("minute", "2026-06-01T11:59:00Z", "2026-06-01T12:02:00Z")
          assert.deepStrictEqual(
            answer.buckets.map((bucket) => [bucket.duplicate, bucket.invalid]),
            [
              [0, 0],
              [7, 1],
              [0, 0]
            ]
          )
        }).pipe(withStatsAt("2026-06-01T12:00:10Z"))
      )

      it.effect(
        "a flush too late for its minute adds to the current one: a closed bucket's answer is the same cached or fresh",
        () =>
          Effect.gen(function* () {
            const counters = yield* SubmissionCounters
            const sql = yield* PgClient.PgClient
            counters.duplicate()
            // The database refuses the flushes (the table is away) until 08:02:05: by then the 08:00 minute has closed
            // (it ended more than the interval + 60 s ago), so its count goes to the open minute of the next flush.
            yield* sql`ALTER TABLE submission_stats RENAME TO submission_stats_away`
            yield* TestClock.setTime(Date.parse("2026-07-01T08:02:05Z"))
            yield* sql`ALTER TABLE submission_stats_away RENAME TO submission_stats`
            yield* TestClock.adjust(1_000)
            yield* eventually(minuteRow("2026-07-01T08:02:00Z"))
            const range = ["2026-07-01T08:00:00Z", "2026-07-01T08:03:00Z"] as const
            const cached = yield* query("minute", ...range)
            assert.deepStrictEqual(
              cached.buckets.map((bucket) => bucket.duplicate),
              [0, 0, 1]
            )
            // Computed afresh (another instance, or after the cache dropped it): the same answer.
            const fresh = yield* query("minute", ...range).pipe(Effect.provide(SubmissionStats.layer))
            assert.deepStrictEqual(fresh.buckets, cached.buckets)
          }).pipe(withStatsAt("2026-07-01T08:00:30Z"))
      )

      it.effect(
        "rejects bad ranges: to not after from, more than 10 000 buckets, a zone the database does not know",
        () =>
          Effect.gen(function* () {
            const backwards = yield* problems(query("hour", "2026-01-02", "2026-01-01"))
            assert.deepStrictEqual(
              backwards.map((problem) => problem.path),
              ["/query/to"]
            )
            const empty = yield* problems(query("hour", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
            assert.deepStrictEqual(
              empty.map((problem) => problem.path),
              ["/query/to"]
            )
            const long = yield* problems(query("minute", "2026-01-01", "2026-01-08"))
            assert.deepStrictEqual(
              long.map((problem) => problem.path),
              ["/query/from"]
            )
            assert.include(long[0]!.message, "10000")
            // 10 000 buckets exactly are fine: 10 000 minutes.
            const most = yield* query("minute", "2026-01-01T00:00:00Z", "2026-01-07T22:40:00Z")
            assert.lengthOf(most.buckets, 10_000)
            const zone = yield* problems(query("hour", "2026-01-01", "2026-01-02", "Mars/Olympus_Mons"))
            assert.deepStrictEqual(
              zone.map((problem) => problem.path),
              ["/query/timeZone"]
            )
          }).pipe(withStatsAt())
      )

      it.effect("lists the materials used by the most formulas, with exact median concentrations", () =>
        Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          const ids = Array.from({ length: 5 }, () => crypto.randomUUID())
          for (const [i, id] of ids.entries()) {
            yield* sql`INSERT INTO formulas (id, fingerprint, name) VALUES (${id}, ${"m" + id}, ${"F" + i})`
          }
          const use = (id: string, position: number, name: string, concentration: string) =>
            sql`INSERT INTO formula_materials (formula_id, position, name, concentration)
                VALUES (${id}, ${position}, ${name}, ${concentration}::numeric)`
          // Musk in 4 formulas (medians of 1.1, 2.000001, 3.5, 40: the lower is 2.000001), Rose in 3, Iris in 1.
          yield* use(ids[0]!, 0, "Musk", "3.5")
          yield* use(ids[1]!, 0, "Musk", "1.1")
          yield* use(ids[2]!, 0, "Musk", "40")
          yield* use(ids[3]!, 0, "Musk", "2.000001")
          yield* use(ids[0]!, 1, "Rose", "12.25")
          yield* use(ids[1]!, 1, "Rose", "0.333333")
          yield* use(ids[4]!, 0, "Rose", "99")
          yield* use(ids[4]!, 1, "Iris", "7")
          const stats = yield* SubmissionStats
          const top = yield* stats.materials(2)
          assert.deepStrictEqual(top, [
            { name: "Musk", formulas: 4, medianConcentration: "2.000001" },
            { name: "Rose", formulas: 3, medianConcentration: "12.25" }
          ])
          assert.lengthOf(yield* stats.materials(100), 3)
        }).pipe(withStatsAt())
      )
    })
  })
}
