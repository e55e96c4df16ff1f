/**
 * Statistics benchmark (`npm run bench:stats`).
 *
 *   node scripts/bench-stats.ts [--quick] [--no-write]
 *
 * 1. Stats query time: a year (2025) of minute data — 500,000 formulas
 *    spread evenly over the year, and a `submission_stats` row for every
 *    minute — on embedded PGlite and, when BENCH_DATABASE_URL (default
 *    postgres://postgres@127.0.0.1:5432/postgres) answers, on PostgreSQL in
 *    a schema of its own (dropped afterwards). Per granularity: the longest
 *    range the API allows inside that year (minute: the last 10,000 minutes;
 *    hour: 8,760; day, week, month: the whole year), in Europe/Berlin, each
 *    bucket closed. Cold = a fresh service (empty cache); cached = the same
 *    query again. Medians of 3 (cold: each on a fresh service).
 * 2. The submit path's duplicate answer with the stats counters on vs off:
 *    in process (validate → fingerprint → cache hit → duplicate outcome, what
 *    POST /formulas runs for a repeat), alternating runs of 200,000 timed by
 *    the process's CPU time, medians of 15; ratio on / off.
 *
 * `--quick`: 50,000 formulas, 4 duplicate runs of 50,000. Writes between the
 * `<!-- bench:stats -->` markers of BENCHMARKS.md unless `--no-write`.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Result } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { performance } from "node:perf_hooks"
import { FormulaIntake } from "../src/intake/FormulaIntake.ts"
import * as Runtime from "../src/Runtime.ts"
import * as Database from "../src/store/Database.ts"
import type { Granularity } from "../src/stats/StatsSql.ts"
import { SubmissionCounters } from "../src/stats/SubmissionCounters.ts"
import { SubmissionStats } from "../src/stats/SubmissionStats.ts"

const quick = process.argv.includes("--quick")
const write = !process.argv.includes("--no-write")
const formulas = quick ? 50_000 : 500_000
const duplicateRuns = quick ? 4 : 15
const duplicatesPerRun = quick ? 50_000 : 200_000

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(0))

const year = { from: Date.parse("2025-01-01T00:00:00Z"), to: Date.parse("2026-01-01T00:00:00Z") }

const ranges: ReadonlyArray<{ granularity: Granularity; from: string; to: string; label: string }> = [
  { granularity: "minute", from: "2025-12-25T01:20", to: "2026-01-01T00:00", label: "last 10,000 minutes" },
  { granularity: "hour", from: "2025-01-01", to: "2026-01-01", label: "the year (8,760 buckets)" },
  { granularity: "day", from: "2025-01-01", to: "2026-01-01", label: "the year (365)" },
  { granularity: "week", from: "2025-01-01", to: "2026-01-01", label: "the year (53)" },
  { granularity: "month", from: "2025-01-01", to: "2026-01-01", label: "the year (12)" }
]

/** A year of data: formulas evenly spread (created_at), and one counts row per minute. */
const fill = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const step = (year.to - year.from) / formulas / 1000
  yield* sql`
    INSERT INTO formulas (id, fingerprint, name, created_at)
    SELECT gen_random_uuid(), 'bench-' || i, 'bench', ${new Date(year.from)}::timestamptz + i * (${step} * interval '1 second')
      FROM generate_series(0, ${formulas - 1}) AS i`
  yield* sql`
    INSERT INTO submission_stats (minute, duplicate, invalid)
    SELECT m, (extract(minute FROM m)::int % 3), (extract(minute FROM m)::int % 2)
      FROM generate_series(${new Date(year.from)}::timestamptz, ${new Date(year.to - 60_000)}::timestamptz, interval '1 minute') AS m`
  yield* sql`ANALYZE formulas`
  yield* sql`ANALYZE submission_stats`
})

const time = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const start = performance.now()
    const result = yield* effect
    return { ms: performance.now() - start, result }
  })

const statsServices = SubmissionStats.layer.pipe(Layer.provide(SubmissionCounters.layerOff))

interface QueryTimes {
  readonly granularity: Granularity
  readonly label: string
  readonly buckets: number
  readonly cold: number
  readonly cached: number
}

const queryTimes = Effect.gen(function* () {
  const rows: Array<QueryTimes> = []
  for (const range of ranges) {
    const cold: Array<number> = []
    const cached: Array<number> = []
    let buckets = 0
    for (let i = 0; i < 3; i++) {
      yield* Effect.gen(function* () {
        const stats = yield* SubmissionStats
        const run = stats.submissions({
          granularity: range.granularity,
          timeZone: "Europe/Berlin",
          from: { text: range.from, hasOffset: false },
          to: { text: range.to, hasOffset: false }
        })
        const first = yield* time(run)
        const second = yield* time(run)
        buckets = first.result.buckets.length
        const total = first.result.buckets.reduce((sum, bucket) => sum + bucket.created, 0)
        // The Berlin year starts and ends an hour before the UTC year the data fills.
        if (range.granularity !== "minute" && Math.abs(total - formulas) > formulas / 1000) {
          throw new Error(`${range.granularity}: counted ${total} formulas, expected ${formulas}`)
        }
        if (JSON.stringify(second.result) !== JSON.stringify(first.result)) throw new Error("cached answer differs")
        cold.push(first.ms)
        cached.push(second.ms)
      }).pipe(Effect.provide(statsServices))
    }
    rows.push({ ...range, buckets, cold: median(cold), cached: median(cached) })
  }
  return rows
})

const benchDatabase = (name: string, database: Layer.Layer<PgClient.PgClient, unknown>) =>
  Effect.gen(function* () {
    const filled = yield* time(fill)
    const rows = yield* queryTimes
    return { name, fillMs: filled.ms, rows }
  }).pipe(Effect.provide(database))

// ---- the duplicate path, counters on vs off

const duplicateBody = {
  name: "Summer Breeze",
  materials: [
    { name: "Bergamot Oil", concentration: 15.5 },
    { name: "Lavender Absolute", concentration: 10.0 },
    { name: "Sandalwood", concentration: 5.2 }
  ]
}

/** Duplicates per second through the intake: validate, then submitOutcome (a cache hit). */
const duplicatesPerSecond = Effect.gen(function* () {
  const intake = yield* FormulaIntake
  const first = intake.validate(duplicateBody)
  if (Result.isFailure(first)) throw new Error("the body is invalid")
  yield* intake.submitOutcome(first.success) // stored once; every later one is a duplicate
  const one = Effect.suspend(() => {
    const checked = intake.validate(duplicateBody)
    return Result.isFailure(checked) ? Effect.die("invalid") : intake.submitOutcome(checked.success)
  })
  for (let i = 0; i < 5_000; i++) yield* one // warm-up
  // CPU time of this process (the loop, PGlite's thread work, GC), not wall time: on a machine shared with other
  // work, wall time mostly measures the neighbours.
  const start = process.cpuUsage()
  for (let i = 0; i < duplicatesPerRun; i++) {
    const outcome = yield* one
    if (outcome._tag !== "Duplicate") throw new Error("expected a duplicate")
  }
  const used = process.cpuUsage(start)
  return duplicatesPerRun / ((used.user + used.system) / 1e6)
})

const counterRatio = Effect.gen(function* () {
  const database = Database.migrated(Database.layerEmbedded(undefined))
  const runtime = (counters: boolean) =>
    Runtime.layerWith(database, { statsFlushInterval: counters ? "1 second" : false, cacheCapacity: 1_000 })
  const on: Array<number> = []
  const off: Array<number> = []
  // Two runtimes alive side by side, measured in alternation, so drift of the shared machine hits both alike.
  const [withCounters, withoutCounters] = yield* Effect.all([Layer.build(runtime(true)), Layer.build(runtime(false))])
  for (let i = 0; i < duplicateRuns; i++) {
    // Which goes first alternates too (the first of a pair meets more of the previous pair's garbage).
    if (i % 2 === 0) {
      on.push(yield* Effect.provide(duplicatesPerSecond, withCounters))
      off.push(yield* Effect.provide(duplicatesPerSecond, withoutCounters))
    } else {
      off.push(yield* Effect.provide(duplicatesPerSecond, withoutCounters))
      on.push(yield* Effect.provide(duplicatesPerSecond, withCounters))
    }
  }
  return { on: median(on), off: median(off), runsOn: on, runsOff: off }
}).pipe(Effect.scoped)

const postgresUrl = process.env["BENCH_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const schema = `bench_stats_${process.pid}`

const main = Effect.gen(function* () {
  const started = new Date()
  const results = [yield* benchDatabase("PGlite (embedded)", Database.migrated(Database.layerEmbedded(undefined)))]
  const postgres = Database.migrated(Database.layerPostgres(Redacted.make(postgresUrl), { schema }))
  const dropSchema = Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(postgresUrl), maxConnections: 1 })), Effect.ignore)
  const onPostgres = yield* benchDatabase("PostgreSQL", postgres).pipe(
    Effect.ensuring(dropSchema),
    Effect.map((result) => result as typeof result | undefined),
    Effect.catchCause((cause) => Effect.as(Effect.logWarning("PostgreSQL skipped", cause), undefined))
  )
  if (onPostgres !== undefined) results.push(onPostgres)
  const ratio = yield* counterRatio

  const cpus = os.cpus()
  const lines = [
    "## Statistics",
    "",
    `- Date: ${started.toUTCString()}`,
    `- Machine: ${cpus.length} × ${cpus[0]?.model ?? "?"}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.platform()} ${os.release()}, Node ${process.version} (shared with other work: noisy)`,
    `- Command: \`npm run bench:stats${quick ? " -- --quick" : ""}\` (scripts/bench-stats.ts)`,
    "",
    `### GET /stats/submissions on a year of data (${fmt(formulas)} formulas, ${fmt(525_600)} minute rows of counts)`,
    "",
    "In process (the service's query, no HTTP), Europe/Berlin, every bucket closed. Cold: a fresh service, empty cache; cached: the same query again (one statement for the bucket bounds, the counts from memory). Medians of 3.",
    "",
    ...results.flatMap((result) => [
      `${result.name} (filled in ${fmt(result.fillMs / 1000)} s):`,
      "",
      "| granularity | range | buckets | cold ms | cached ms | cold / cached |",
      "| --- | --- | ---: | ---: | ---: | ---: |",
      ...result.rows.map(
        (row) =>
          `| ${row.granularity} | ${row.label} | ${fmt(row.buckets)} | ${ms(row.cold)} | ${ms(row.cached)} | ${(row.cold / row.cached).toFixed(1)}× |`
      ),
      ""
    ]),
    "### Duplicate answers with the stats counters on vs off",
    "",
    `In process on PGlite: validate → fingerprint → cache hit → duplicate outcome (what POST /formulas runs for a repeat, without HTTP, where a ratio is the most sensitive), ${fmt(duplicatesPerRun)} per run, ${duplicateRuns} alternating runs each, medians; duplicates per second of the process's CPU time (user + system), so that other work on the machine counts less. The counters-on runtime also runs its flush fiber (one statement a second while there are counts).`,
    "",
    "| counters | duplicates per CPU-second (median) | runs |",
    "| --- | ---: | --- |",
    `| on | ${fmt(ratio.on)} | ${ratio.runsOn.map(fmt).join(", ")} |`,
    `| off | ${fmt(ratio.off)} | ${ratio.runsOff.map(fmt).join(", ")} |`,
    "",
    `Ratio on / off: **${(ratio.on / ratio.off).toFixed(3)}×** (target ≥ 0.97×).`
  ]
  const section = lines.join("\n")
  console.log(section)
  if (!write) return
  const path = new URL("../BENCHMARKS.md", import.meta.url)
  const start = "<!-- bench:stats -->"
  const end = "<!-- /bench:stats -->"
  const block = `${start}\n${section}\n${end}`
  let text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmarks\n"
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  if (from !== -1 && to > from) text = text.slice(0, from) + block + text.slice(to + end.length)
  else text = text.trimEnd() + "\n\n" + block + "\n"
  writeFileSync(path, text)
})

await Effect.runPromise(main)
