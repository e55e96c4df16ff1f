/**
 * Unique submissions (`POST /formulas`, every request a new make-up → 201)
 * with QUEUE_BACKEND=postgres, on one and on two instances of the service
 * sharing one fresh database, as ratios to pgbench running the submission
 * statement on that database at the same concurrency, in the same run (as
 * the main HTTP benchmark does for the in-memory queue). Part of
 * `npm run bench` (`--only=postgres-queue` runs it alone).
 *
 * Two instances: one wrk with two threads, each thread's connections to its
 * own instance (formulas.lua, BENCH_SPREAD_PORTS), so the concurrency is the
 * total over both and must be at least 2.
 */
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { backgroundLoad, type CpuUse, measureCpu, setOwnDatabase } from "./cpu.ts"
import {
  checkpoint,
  createDatabase,
  type PgbenchResult,
  pgbenchScript,
  redact,
  rowCounts,
  runPgbench,
  settledRowCounts
} from "./postgres.ts"
import { type RunningServer, startService } from "./servers.ts"
import { runWrk, type WrkResult } from "./wrk.ts"

/** The submission statement with the NOTIFY the postgres backend's submit path sent inside it until it announced after the commit. */
export const submissionNotifyScript = fileURLToPath(new URL("./submission-notify.pgbench.sql", import.meta.url))

export interface Options {
  readonly adminUrl: string
  readonly levels: ReadonlyArray<number>
  readonly durationS: number
  readonly warmupS: number
  readonly tmp: string
  readonly runId: string
  readonly log: (line: string) => void
}

interface Measured<A> {
  readonly main: A
  readonly cpu: CpuUse | undefined
  readonly background: number | undefined
  readonly attempts: number
}

export interface Cell {
  readonly instances: 1 | 2
  readonly concurrency: number
  readonly wrk: Measured<WrkResult>
  readonly pgbench: Measured<PgbenchResult> | undefined
  readonly pgbenchNotify: Measured<PgbenchResult> | undefined
}

export interface Result {
  readonly cells: ReadonlyArray<Cell>
  readonly pgbench: ReadonlyArray<readonly [number, Measured<PgbenchResult>]>
  readonly pgbenchNotify: ReadonlyArray<readonly [number, Measured<PgbenchResult>]>
  readonly commands: ReadonlyArray<readonly [string, string]>
  readonly check: { readonly ok: boolean; readonly text: string }
  readonly unexpected: number
}

const quietCores = 0.2
const disturbedCores = 0.25
const disturbance = (m: { cpu?: CpuUse | undefined; background?: number | undefined }) =>
  (m.background ?? 0) + (m.cpu?.other ?? 0)

/** Measures up to 3 times while another program disturbed the run; keeps the least disturbed. */
const leastDisturbed = async <A>(
  attempt: () => Promise<{ main: A; cpu: CpuUse | undefined; background: number | undefined }>
): Promise<Measured<A>> => {
  const all: Array<{ main: A; cpu: CpuUse | undefined; background: number | undefined }> = []
  for (let i = 0; i < 3; i++) {
    const m = await attempt()
    all.push(m)
    if ((m.background ?? 0) < quietCores && (m.cpu?.other ?? 0) < disturbedCores) break
  }
  const best = all.reduce((a, b) => (disturbance(b) < disturbance(a) ? b : a))
  return { ...best, attempts: all.length }
}

export const postgresQueueSubmissions = async (options: Options): Promise<Result> => {
  const { adminUrl, levels, durationS, warmupS, tmp, runId, log } = options
  const dbName = `bench_pgq_${process.pid}`
  const url = await createDatabase(adminUrl, dbName)
  setOwnDatabase(dbName)
  const commands = new Map<string, string>()
  const env = { QUEUE_BACKEND: "postgres" }
  const started: Array<RunningServer> = []
  const start = async (name: string) => {
    const server = await startService({
      database: { url },
      logFile: join(tmp, `service-postgres-queue-${name}.log`),
      shownUrl: redact(url),
      env
    })
    started.push(server)
    return server
  }
  const cells: Array<Cell> = []
  const pgbench = new Map<number, Measured<PgbenchResult>>()
  const pgbenchNotify = new Map<number, Measured<PgbenchResult>>()
  let created = 0
  let inFlightBound = 0
  let pgbenchAdded = 0
  let unexpected = 0
  const highest = levels[levels.length - 1]!
  const shown = (command: string, c: number) =>
    command
      .replaceAll(tmp, "$TMP")
      .replace(/127\.0\.0\.1:\d+(?![\d/])/g, "127.0.0.1:$PORT")
      .replace(/BENCH_SPREAD_PORTS=[\d,]+/, "BENCH_SPREAD_PORTS=$PORT_A,$PORT_B")
      .replace(/-c ?\d+/, (m) => m.replace(String(c), `{${levels.join(",")}}`))
      .replace(/-- unique \S+/, "-- unique <tag>")
      .replace(/\S*scripts\/bench\//, "scripts/bench/")

  const unique = async (servers: ReadonlyArray<RunningServer>, c: number) => {
    const spreadPorts = servers.length > 1 ? servers.map((s) => s.port) : undefined
    let attempt = 0
    const measured = await leastDisturbed(async () => {
      attempt++
      await checkpoint(url)
      const background = await backgroundLoad(400)
      const tag = (phase: string) => `${runId}-pgq${servers.length}-${c}-${phase}-${attempt}`
      const warm = await runWrk({
        baseUrl: servers[0]!.baseUrl,
        connections: c,
        durationS: warmupS,
        load: { mode: "unique", tag: tag("warmup") },
        spreadPorts
      })
      const pids = servers.flatMap((s) => (s.pid === undefined ? [] : [s.pid]))
      const { result, cpu } = await measureCpu(pids, durationS * 1000 - 300, (onSpawn) =>
        runWrk({
          baseUrl: servers[0]!.baseUrl,
          connections: c,
          durationS,
          load: { mode: "unique", tag: tag("measure") },
          onSpawn,
          spreadPorts
        })
      )
      created += (warm.statuses["201"] ?? 0) + (result.statuses["201"] ?? 0)
      inFlightBound += 2 * c
      return { main: result, cpu, background }
    })
    if (c === highest || (servers.length > 1 && !commands.has(`wrk unique, ${servers.length} instances`)))
      commands.set(
        `wrk unique, ${servers.length} instance${servers.length > 1 ? "s" : ""}`,
        shown(measured.main.command, c)
      )
    const bad = measured.main.requests - (measured.main.statuses["201"] ?? 0) + measured.main.socketErrors
    unexpected += bad
    const cell: Cell = {
      instances: servers.length as 1 | 2,
      concurrency: c,
      wrk: measured,
      pgbench: pgbench.get(c),
      pgbenchNotify: pgbenchNotify.get(c)
    }
    cells.push(cell)
    const ref = pgbench.get(c)
    log(
      `  postgres queue, ${servers.length} instance(s) c=${String(c).padStart(3)}: ${Math.round(measured.main.rate)}/s ` +
        `p50 ${measured.main.latencyMs.p50.toFixed(2)} p99 ${measured.main.latencyMs.p99.toFixed(2)} ms` +
        (ref === undefined ? "" : ` — ${(measured.main.rate / ref.main.tps).toFixed(2)}× pgbench`) +
        (bad > 0 ? ` [${bad} unexpected]` : "") +
        ` (server cpu ${measured.cpu?.server.toFixed(2) ?? "?"}, postgres ${measured.cpu?.postgres.toFixed(2) ?? "?"}, other ${measured.cpu?.other.toFixed(2) ?? "?"})`
    )
  }

  try {
    const first = await start("A")
    commands.set("service (each instance)", first.command.replace(/PORT=\d+/, "PORT=$PORT"))
    const start0 = await rowCounts(url)
    for (const c of levels) {
      // Two references: the submission statement as the in-memory backend's bench runs it (the main ratio,
      // as the HTTP table above), and with a NOTIFY inside it, as the postgres backend sent it before it
      // announced after the commit (what that cost, in the same run).
      for (const [kind, script] of [
        ["plain", pgbenchScript],
        ["notify", submissionNotifyScript]
      ] as const) {
        const before = await rowCounts(url)
        let transactions = 0
        const measured = await leastDisturbed(async () => {
          await checkpoint(url)
          const background = await backgroundLoad(400)
          const warm = await runPgbench({ url, clients: c, durationS: warmupS, script })
          const { result, cpu } = await measureCpu(undefined, durationS * 1000 - 300, (onSpawn) =>
            runPgbench({
              url,
              clients: c,
              durationS,
              logPrefix: join(tmp, `pgbench-pgq-${kind}-${c}`),
              onSpawn,
              script
            })
          )
          transactions += warm.transactions + result.transactions
          return { main: result, cpu, background }
        })
        const after = await settledRowCounts(url)
        pgbenchAdded += after.formulas - before.formulas
        if (after.formulas - before.formulas !== transactions) unexpected++
        ;(kind === "plain" ? pgbench : pgbenchNotify).set(c, measured)
        if (c === highest) commands.set(`pgbench (${kind})`, shown(measured.main.command, c))
        log(
          `  pgbench ${kind.padEnd(6)} c=${String(c).padStart(3)}: ${Math.round(measured.main.tps)}/s p50 ${measured.main.latencyMs.p50.toFixed(2)} p99 ${measured.main.latencyMs.p99.toFixed(2)} ms`
        )
      }
      await unique([first], c)
    }
    const second = await start("B")
    for (const c of levels.filter((c) => c >= 2)) await unique([first, second], c)
    for (const server of started) await server.stop()
    const end = await settledRowCounts(url)
    const added = end.formulas - start0.formulas - pgbenchAdded
    const unseen = added - created
    const ok =
      unseen >= 0 &&
      unseen <= inFlightBound &&
      end.outbox - start0.outbox - pgbenchAdded === added &&
      end.materials - start0.materials - 3 * pgbenchAdded === 3 * added
    return {
      cells,
      pgbench: [...pgbench],
      pgbenchNotify: [...pgbenchNotify],
      commands: [...commands],
      unexpected,
      check: {
        ok,
        text: `${added.toLocaleString("en-US")} formulas added by the services = ${created.toLocaleString("en-US")} 201s seen + ${unseen} in flight when a load stopped (≤ ${inFlightBound} allowed); outbox and materials agree: ${ok ? "yes" : "NO"}`
      }
    }
  } finally {
    for (const server of started) await server.stop()
  }
}

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—")
const ms = (n: number) => (!Number.isFinite(n) ? "—" : n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1))
const cores = (n: number | undefined) => (n === undefined ? "?" : n.toFixed(2))

export const renderSection = (
  result: Result,
  m: { readonly date: string; readonly revision: string; readonly machine: string },
  options: {
    readonly command: string
    readonly durationS: number
    readonly warmupS: number
    readonly levels: ReadonlyArray<number>
  }
) => {
  const out: Array<string> = []
  out.push("## HTTP submissions with the queue in PostgreSQL (`QUEUE_BACKEND=postgres`), one and two instances")
  out.push("")
  out.push(`- Date: ${m.date}`)
  out.push(`- Service: ${m.revision}`)
  out.push(`- Machine: ${m.machine}`)
  out.push(
    `- Command: \`${options.command}\`: ${options.durationS} s measured per cell after a ${options.warmupS} s warm-up; a cell another program disturbed (≥ ${quietCores} cores busy before it, or ≥ ${disturbedCores} unexplained cores during it) is measured again, up to 3 times, keeping the least disturbed.`
  )
  for (const [kind, command] of result.commands) out.push(`  - ${kind}: \`${command}\``)
  out.push(
    "- Load: wrk's unique make-ups (every request a new formula → 201). Two instances: one wrk, two threads, each thread's connections to its own instance (concurrency is the total). References, on the same database at the same concurrency, in the same run: **pgbench** running the submission statement, one submission per transaction, as the in-memory backend's table above does (`scripts/bench/submission.pgbench.sql`: the ratio), and **pgbench + NOTIFY**, the same statement with a `pg_notify` inside it (`scripts/bench/submission-notify.pgbench.sql`), as the postgres backend sent it before it announced each submission after its commit instead (one coalesced `pg_notify` statement at a time per instance): what that in-statement NOTIFY cost. Both instances and PostgreSQL share the machine's cores with wrk."
  )
  out.push("")
  out.push(
    "| instances | concurrency | submissions/s | p50 ms | p99 ms | pgbench /s | ratio | pgbench + NOTIFY /s | ratio | servers' CPU | postgres CPU | other |"
  )
  out.push("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for (const cell of result.cells) {
    const ref = cell.pgbench?.main.tps ?? NaN
    const notify = cell.pgbenchNotify?.main.tps ?? NaN
    out.push(
      `| ${cell.instances} | ${cell.concurrency} | ${fmt(cell.wrk.main.rate)} | ${ms(cell.wrk.main.latencyMs.p50)} | ${ms(cell.wrk.main.latencyMs.p99)} | ${fmt(ref)} | **${(cell.wrk.main.rate / ref).toFixed(2)}×** | ${fmt(notify)} | ${(cell.wrk.main.rate / notify).toFixed(2)}× | ${cores(cell.wrk.cpu?.server)} | ${cores(cell.wrk.cpu?.postgres)} | ${cores(Math.max(cell.wrk.cpu?.other ?? 0, cell.wrk.background ?? 0))} |`
    )
  }
  out.push("")
  out.push("| pgbench | concurrency | transactions/s | p50 ms | p99 ms | postgres CPU | other |")
  out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
  const references = [
    ...result.pgbench.map(([c, r]) => ["plain", c, r] as const),
    ...result.pgbenchNotify.map(([c, r]) => ["+ NOTIFY", c, r] as const)
  ]
  for (const [kind, c, r] of references) {
    out.push(
      `| ${kind} | ${c} | ${fmt(r.main.tps)} | ${ms(r.main.latencyMs.p50)} | ${ms(r.main.latencyMs.p99)} | ${cores(r.cpu?.postgres)} | ${cores(Math.max(r.cpu?.other ?? 0, r.background ?? 0))} |`
    )
  }
  out.push("")
  out.push(`- Rows: ${result.check.ok ? "ok" : "**MISMATCH**"} — ${result.check.text}.`)
  out.push(`- Unexpected answers (not 201, socket errors, timeouts) or pgbench row mismatches: ${result.unexpected}.`)
  return out.join("\n")
}
