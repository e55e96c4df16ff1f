/**
 * The PostgreSQL queue backend (QUEUE_BACKEND=postgres) against pgbench
 * running the backend's own statements (`queue-*.pgbench.sql`, copied from
 * src/queue/PgQueueSql.ts) at the same concurrency, in the same run, on the
 * same fresh database. Part of `npm run bench:queue`.
 *
 * Two loads, each at 1, 4 and 16 concurrent consumers:
 *
 * - **cycle**: each consumer publishes a message, receives one (max 1) and
 *   acks it, over and over; messages/s = completed acks per second.
 *   pgbench: `queue-cycle.pgbench.sql` (publish; claim → `\aset` receipt; ack).
 * - **claim**: the table is filled beforehand (the same rows for both), each
 *   consumer receives one message at a time and never acks (visibility 1 h);
 *   receive latency p50/p99. pgbench: `queue-claim.pgbench.sql` (the claim
 *   statement alone), latency of each transaction from its log.
 *
 * Before every run the outbox is emptied (TRUNCATE), refilled for the claim
 * load, vacuumed and checkpointed, so neither side pays for the other's dead
 * rows. Rounds alternate which side goes first.
 *
 * The backend runs in this process (the real Runtime layer, its pool of 10
 * connections as the service has it, webhooks and statistics off); pgbench
 * is one thread with `c` connections.
 */
import { Effect, ManagedRuntime, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { MessageQueue, type MessageQueueService } from "../../src/queue/MessageQueue.ts"
import * as Runtime from "../../src/Runtime.ts"
import * as Database from "../../src/store/Database.ts"
import { backgroundLoad, type CpuUse, cpuUse, setOwnDatabase, snapshot } from "./cpu.ts"
import { checkpoint, createDatabase, psql, redact, runPgbench } from "./postgres.ts"

export const cycleScript = fileURLToPath(new URL("./queue-cycle.pgbench.sql", import.meta.url))
export const claimScript = fileURLToPath(new URL("./queue-claim.pgbench.sql", import.meta.url))

/** The body every message carries, on both sides. */
const bodyJson = '{"type":"FormulaSubmitted"}'
const body = JSON.parse(bodyJson) as unknown
const visibilityMs = 3_600_000

export type Load = "cycle" | "claim"
export type Side = "backend" | "pgbench"

export interface Run {
  readonly load: Load
  readonly side: Side
  readonly concurrency: number
  readonly round: number
  /** Completed cycles (acks) or claims. */
  readonly count: number
  readonly rate: number
  /** Per cycle (cycle load) or per receive/claim (claim load). */
  readonly latencyMs: { readonly p50: number; readonly p99: number }
  /** cycle load, backend only: the receive inside the cycle. */
  readonly receiveMs?: { readonly p50: number; readonly p99: number } | undefined
  /** Receives that found nothing (the backend's, or pgbench cycles whose claim found nothing). */
  readonly empty: number
  readonly cpu: (CpuUse & { readonly client: number }) | undefined
  readonly background: number | undefined
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

const p50p99 = (values: Array<number>) => {
  values.sort((a, b) => a - b)
  return { p50: percentile(values, 50), p99: percentile(values, 99) }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)]!
}

/** Empties the outbox and, for the claim load, fills it with `rows` ready messages; vacuum and checkpoint. */
const reset = async (url: string, rows: number) => {
  await psql(url, "TRUNCATE outbox")
  if (rows > 0) {
    await psql(
      url,
      `INSERT INTO outbox (message_id, body, created_at)
       SELECT gen_random_uuid(), '${bodyJson}'::jsonb, now() + i * interval '1 microsecond' FROM generate_series(1, ${rows}) AS i`
    )
  }
  await psql(url, "VACUUM ANALYZE outbox")
  await checkpoint(url)
}

const settledRows = async (url: string) =>
  Number(await psql(url, "SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL"))

/** CPU of this process (the backend's client side), in ticks comparable to cpu.ts's: µs. */
const ownCpuUs = () => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** Runs `body` for `durationMs` with CPU accounting (this process as "client"). */
const withCpu = async <A>(durationMs: number, run: (onSpawn: (pid: number) => void) => Promise<A>) => {
  let before: ReturnType<typeof snapshot>
  let after: ReturnType<typeof snapshot>
  let clientBefore = 0
  let clientAfter = 0
  let startedAt = 0
  let endedAt = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const onSpawn = (pid: number) => {
    before = snapshot({ loadGenerator: pid })
    clientBefore = ownCpuUs()
    startedAt = performance.now()
    timer = setTimeout(() => {
      after = snapshot({ loadGenerator: pid })
      clientAfter = ownCpuUs()
      endedAt = performance.now()
    }, durationMs - 300)
  }
  try {
    const result = await run(onSpawn)
    const use = cpuUse(before, after)
    const client = endedAt > startedAt ? (clientAfter - clientBefore) / 1000 / (endedAt - startedAt) : 0
    return {
      result,
      cpu:
        use === undefined
          ? undefined
          : // The backend side runs in this process: its CPU is the "load generator" of cpu.ts's accounting.
            { ...use, client, other: Math.max(0, use.other - (use.loadGenerator === 0 ? client : 0)) }
    }
  } finally {
    clearTimeout(timer)
  }
}

// --- the backend -------------------------------------------------------------------

/** The service's runtime on `url` with the postgres backend; only its MessageQueue is used. */
const backendRuntime = (url: string) =>
  ManagedRuntime.make(
    Runtime.layerWith(Database.migrated(Database.layerPostgres(Redacted.make(url))), {
      queueBackend: "postgres",
      queue: { capacity: 100_000_000, visibilityTimeout: visibilityMs, maxDeliveries: 5, name: "bench" },
      webhooks: false,
      statsFlushInterval: false,
      relayInterval: "1 hour"
    })
  )

interface BackendRun {
  /** Cycle load: each completed cycle's duration (ms). */
  readonly cycles?: Array<number> | undefined
  /** Each receive's duration (ms); the claim load counts only those that got a message. */
  readonly receives: Array<number>
  readonly empty: number
}

/** c fibers, each: publish → receive(1) → ack, until the deadline. */
const backendCycle = (queue: MessageQueueService, concurrency: number, durationMs: number) =>
  Effect.gen(function* (): Effect.fn.Return<BackendRun> {
    const cycles: Array<number> = []
    const receives: Array<number> = []
    let empty = 0
    const deadline = performance.now() + durationMs
    yield* Effect.forEach(
      Array.from({ length: concurrency }),
      () =>
        Effect.gen(function* () {
          while (performance.now() < deadline) {
            const began = performance.now()
            yield* queue.publish({ messageId: randomUUID(), body })
            const asked = performance.now()
            const deliveries = yield* queue.receive({ max: 1 })
            receives.push(performance.now() - asked)
            if (deliveries.length === 0) {
              empty++
              continue
            }
            yield* queue.ack(deliveries[0]!.receipt)
            cycles.push(performance.now() - began)
          }
        }).pipe(Effect.orDie),
      { concurrency, discard: true }
    )
    return { cycles, receives, empty }
  })

/** c fibers, each: receive(1) with a 1 h visibility, never acked, until the deadline. */
const backendClaims = (queue: MessageQueueService, concurrency: number, durationMs: number) =>
  Effect.gen(function* (): Effect.fn.Return<BackendRun> {
    const receives: Array<number> = []
    let empty = 0
    const deadline = performance.now() + durationMs
    yield* Effect.forEach(
      Array.from({ length: concurrency }),
      () =>
        Effect.gen(function* () {
          while (performance.now() < deadline) {
            const asked = performance.now()
            const deliveries = yield* queue.receive({ max: 1, visibilityTimeout: visibilityMs })
            if (deliveries.length === 0) empty++
            else receives.push(performance.now() - asked)
          }
        }).pipe(Effect.orDie),
      { concurrency, discard: true }
    )
    return { receives, empty }
  })

// --- pgbench -----------------------------------------------------------------------

// --- the runs ----------------------------------------------------------------------

export interface PgQueueBenchOptions {
  readonly adminUrl: string
  readonly levels: ReadonlyArray<number>
  readonly durationS: number
  readonly warmupS: number
  readonly rounds: number
  readonly tmp: string
  readonly log: (line: string) => void
}

export interface PgQueueBenchResult {
  readonly runs: ReadonlyArray<Run>
  readonly commands: ReadonlyArray<string>
  readonly database: string
  readonly claimRows: number
}

export const pgQueueBench = async (options: PgQueueBenchOptions): Promise<PgQueueBenchResult> => {
  const { levels, durationS, warmupS, rounds, tmp, log } = options
  const dbName = `bench_queue_${process.pid}`
  const url = await createDatabase(options.adminUrl, dbName)
  setOwnDatabase(dbName)
  const runtime = backendRuntime(url)
  const queue = await runtime.runPromise(MessageQueue)
  const runs: Array<Run> = []
  const commands = new Set<string>()
  // Enough ready rows that no claim run finds the table empty (measured claims are far below 20k/s here).
  const claimRows = Math.max(50_000, 20_000 * (durationS + warmupS))
  try {
    const backend = async (load: Load, c: number, round: number) => {
      await reset(url, load === "claim" ? claimRows : 0)
      const background = await backgroundLoad(400)
      const run = (ms: number): Promise<BackendRun> =>
        runtime.runPromise<BackendRun, never>(
          load === "cycle" ? backendCycle(queue, c, ms) : backendClaims(queue, c, ms)
        )
      await run(warmupS * 1000)
      const { result, cpu } = await withCpu(durationS * 1000, async (onSpawn) => {
        onSpawn(process.pid)
        const began = performance.now()
        const r = await run(durationS * 1000)
        return { ...r, elapsed: performance.now() - began }
      })
      const count = result.cycles === undefined ? result.receives.length : result.cycles.length
      runs.push({
        load,
        side: "backend",
        concurrency: c,
        round,
        count,
        rate: count / (result.elapsed / 1000),
        latencyMs: p50p99(result.cycles ?? result.receives),
        receiveMs: result.cycles === undefined ? undefined : p50p99(result.receives),
        empty: result.empty,
        cpu: cpu === undefined ? undefined : { ...cpu, client: cpu.loadGenerator, loadGenerator: 0 },
        background
      })
    }
    const reference = async (load: Load, c: number, round: number) => {
      await reset(url, load === "claim" ? claimRows : 0)
      const background = await backgroundLoad(400)
      const script = load === "cycle" ? cycleScript : claimScript
      // The receipt's first value is only there for a first claim that finds nothing (see the script).
      const variables = { visibility_ms: visibilityMs, receipt: "00000000-0000-0000-0000-000000000000" }
      await runPgbench({ url, clients: c, durationS: warmupS, script, variables })
      const settledBefore = await settledRows(url)
      const prefix = join(tmp, `pgbench-queue-${load}-${c}`)
      const { result, cpu } = await withCpu(durationS * 1000, (onSpawn) =>
        runPgbench({ url, clients: c, durationS, logPrefix: prefix, onSpawn, script, variables })
      )
      // A cycle whose claim found nothing settles nothing: count the rows it settled, not its transactions.
      const settled = load === "cycle" ? (await settledRows(url)) - settledBefore : result.transactions
      commands.add(
        result.command
          .replaceAll(tmp, "$TMP")
          .replace(/-c \d+/, `-c {${levels.join(",")}}`)
          .replace(/pgbench-queue-\w+-\d+/, `pgbench-queue-${load}-C`)
          .replace(/\S*scripts\/bench\//, "scripts/bench/")
      )
      runs.push({
        load,
        side: "pgbench",
        concurrency: c,
        round,
        count: settled,
        rate: (result.tps * settled) / Math.max(1, result.transactions),
        latencyMs: result.latencyMs,
        empty: result.transactions - settled + result.failed,
        cpu: cpu === undefined ? undefined : { ...cpu, client: 0 },
        background
      })
    }
    for (const c of levels) {
      for (let round = 1; round <= rounds; round++) {
        for (const load of ["cycle", "claim"] as const) {
          const order = round % 2 === 1 ? ([reference, backend] as const) : ([backend, reference] as const)
          for (const side of order) await side(load, c, round)
          const [ours, ref] = [runs.at(-1)!, runs.at(-2)!].sort((a) => (a.side === "backend" ? -1 : 1))
          log(
            `  ${load.padEnd(5)} c=${String(c).padStart(2)} round ${round}: backend ${Math.round(ours!.rate)}/s ` +
              `p50 ${ours!.latencyMs.p50.toFixed(2)} p99 ${ours!.latencyMs.p99.toFixed(2)} ms` +
              (ours!.receiveMs === undefined
                ? ""
                : ` (receive p50 ${ours!.receiveMs.p50.toFixed(2)} p99 ${ours!.receiveMs.p99.toFixed(2)})`) +
              ` | pgbench ${Math.round(ref!.rate)}/s p50 ${ref!.latencyMs.p50.toFixed(2)} p99 ${ref!.latencyMs.p99.toFixed(2)} ms` +
              ` | client cpu ${ours!.cpu?.client.toFixed(2) ?? "?"}, postgres ${ours!.cpu?.postgres.toFixed(2) ?? "?"} vs ${ref!.cpu?.postgres.toFixed(2) ?? "?"}` +
              (ours!.empty + ref!.empty > 0 ? ` | empty ${ours!.empty} / ${ref!.empty}` : "")
          )
        }
      }
    }
  } finally {
    await runtime.dispose()
  }
  return { runs, commands: [...commands], database: redact(url), claimRows }
}

// --- the report ------------------------------------------------------------------

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—")
const ms = (n: number) => (!Number.isFinite(n) ? "—" : n < 10 ? n.toFixed(2) : n.toFixed(1))
const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : "—")

/** Medians over the rounds of one (load, side, concurrency). */
const summarize = (runs: ReadonlyArray<Run>, load: Load, side: Side, c: number) => {
  const these = runs.filter((r) => r.load === load && r.side === side && r.concurrency === c)
  return {
    rate: median(these.map((r) => r.rate)),
    p50: median(these.map((r) => r.latencyMs.p50)),
    p99: median(these.map((r) => r.latencyMs.p99)),
    receiveP50: median(these.flatMap((r) => (r.receiveMs === undefined ? [] : [r.receiveMs.p50]))),
    receiveP99: median(these.flatMap((r) => (r.receiveMs === undefined ? [] : [r.receiveMs.p99]))),
    client: median(these.map((r) => r.cpu?.client ?? NaN)),
    postgres: median(these.map((r) => r.cpu?.postgres ?? NaN)),
    loadGenerator: median(these.map((r) => r.cpu?.loadGenerator ?? NaN)),
    other: Math.max(...these.map((r) => (r.cpu?.other ?? 0) + (r.background ?? 0))),
    empty: these.reduce((sum, r) => sum + r.empty, 0)
  }
}

/**
 * The median over rounds of each round's ratio (the two sides of a round ran back to back, so a ratio
 * within a round is less exposed to the machine's drifting load than a ratio of medians).
 */
const roundRatio = (runs: ReadonlyArray<Run>, load: Load, c: number, f: (ours: Run, ref: Run) => number) => {
  const ratios: Array<number> = []
  for (const ours of runs.filter((r) => r.load === load && r.side === "backend" && r.concurrency === c)) {
    const ref = runs.find(
      (r) => r.load === load && r.side === "pgbench" && r.concurrency === c && r.round === ours.round
    )
    if (ref !== undefined) ratios.push(f(ours, ref))
  }
  return { median: median(ratios), all: ratios }
}

export const renderPgQueueSection = (
  result: PgQueueBenchResult,
  options: {
    readonly levels: ReadonlyArray<number>
    readonly durationS: number
    readonly warmupS: number
    readonly rounds: number
  }
): ReadonlyArray<string> => {
  const { runs } = result
  const target = 0.7
  const rows: Array<string> = []
  const ratios: Array<number> = []
  for (const c of options.levels) {
    const ours = summarize(runs, "cycle", "backend", c)
    const ref = summarize(runs, "cycle", "pgbench", c)
    const { median: ratio, all } = roundRatio(runs, "cycle", c, (o, r) => o.rate / r.rate)
    ratios.push(ratio)
    rows.push(
      `| publish → receive → ack | ${c} | ${fmt(ours.rate)} msgs/s | ${fmt(ref.rate)} /s | **${x(ratio)}** | ${all.map((r) => r.toFixed(2)).join(", ")} | ${ms(ours.p50)} / ${ms(ours.p99)} | ${ms(ref.p50)} / ${ms(ref.p99)} |`
    )
  }
  const latencyRows: Array<string> = []
  for (const c of options.levels) {
    const ours = summarize(runs, "claim", "backend", c)
    const ref = summarize(runs, "claim", "pgbench", c)
    const p50 = roundRatio(runs, "claim", c, (o, r) => r.latencyMs.p50 / o.latencyMs.p50).median
    const p99 = roundRatio(runs, "claim", c, (o, r) => r.latencyMs.p99 / o.latencyMs.p99).median
    ratios.push(p50, p99)
    latencyRows.push(
      `| ${c} | ${ms(ours.p50)} | ${ms(ref.p50)} | **${x(p50)}** | ${ms(ours.p99)} | ${ms(ref.p99)} | **${x(p99)}** | ${fmt(ours.rate)} | ${fmt(ref.rate)} |`
    )
  }
  const cpuRows: Array<string> = []
  for (const load of ["cycle", "claim"] as const) {
    for (const c of options.levels) {
      const ours = summarize(runs, load, "backend", c)
      const ref = summarize(runs, load, "pgbench", c)
      cpuRows.push(
        `| ${load} | ${c} | ${ours.client.toFixed(2)} | ${ours.postgres.toFixed(2)} | ${ref.loadGenerator.toFixed(2)} | ${ref.postgres.toFixed(2)} | ${Math.max(ours.other, ref.other).toFixed(2)} |`
      )
    }
  }
  const inCycle = options.levels.map((c) => {
    const ours = summarize(runs, "cycle", "backend", c)
    return `${c}: ${ms(ours.receiveP50)} / ${ms(ours.receiveP99)} ms`
  })
  const met = ratios.filter((r) => r >= target).length
  return [
    "### PostgreSQL backend (QUEUE_BACKEND=postgres) against pgbench",
    "",
    `The backend (src/queue/PgMessageQueue.ts, through the real Runtime layer: pool of 10 connections, LISTEN connection, ` +
      `webhooks and statistics off) in this process, against \`pgbench\` running the backend's own statements ` +
      `(scripts/bench/queue-*.pgbench.sql, the SQL of src/queue/PgQueueSql.ts) with as many connections as the backend has consumers, ` +
      `on one fresh database, in the same run. ${options.durationS} s measured after ${options.warmupS} s warm-up, ` +
      `${options.rounds} rounds (the order of the two sides alternating), medians. The outbox is emptied (and for the claim load ` +
      `refilled with ${fmt(result.claimRows)} ready rows), vacuumed and checkpointed before every run.`,
    "",
    ...result.commands.map((command) => `- \`${command}\``),
    "",
    "**Throughput**: each consumer publishes one message, receives one (max 1) and acks it, in a loop; pgbench's transaction is the same three statements (publish; claim, its receipt kept with `\\aset`; ack).",
    "",
    "| load | consumers | backend | pgbench | ratio | each round's ratio | backend cycle p50 / p99 ms | pgbench p50 / p99 ms |",
    "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ...rows,
    "",
    `**Receive latency**: the table holds ready messages; each consumer receives one at a time and never acks (visibility 1 h); pgbench runs the claim statement alone. Ratio = pgbench's latency / the backend's (higher is better, 1 = as fast as pgbench). Rates and latencies are medians over the rounds; every ratio is the median of the rounds' ratios (the two sides of a round ran back to back).`,
    "",
    "| consumers | backend p50 ms | pgbench p50 ms | p50 ratio | backend p99 ms | pgbench p99 ms | p99 ratio | backend receives/s | pgbench claims/s |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...latencyRows,
    "",
    `The backend's receive inside the throughput cycle, p50 / p99: ${inCycle.join("; ")}.`,
    "",
    `Target ≥ ${target}×: ${met === ratios.length ? "met in every cell" : `met in ${met} of ${ratios.length} cells`}.`,
    "",
    "CPU in cores (of the machine's), medians: **client** is this Node process running the backend; **postgres** PostgreSQL's processes for the benchmark's database; **other** the most any run saw of other programs (during + just before).",
    "",
    "| load | consumers | backend: client | backend: postgres | pgbench: pgbench | pgbench: postgres | other (max) |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...cpuRows
  ]
}
