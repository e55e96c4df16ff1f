/**
 * HTTP submission benchmark (`npm run bench`).
 *
 *   node scripts/bench.ts [--quick] [--write | --no-write] [--levels=1,16,64] [--duration=6] [--warmup=2]
 *                         [--only=access-log | --only=webhooks | --only=postgres-queue]
 *
 * Starts the service (`node src/main.ts`) as a child process on a free port,
 * once on PostgreSQL (a fresh database `bench_<pid>`, created and dropped here)
 * and once on embedded PGlite (a fresh temporary DATA_DIR), and drives
 * `POST /formulas` with wrk at each concurrency level with
 *   (a) unique make-ups — every request a new make-up → 201;
 *   (b) duplicates — 16 known make-ups over and over → 409;
 *   (c) Idempotency-Key replays — 16 keys, each with its first body → the
 *       first response replayed; "n/a" while the service does not send
 *       `Idempotent-Replayed: true` on a repeat.
 * In the same run it measures the references: pgbench running the same SQL
 * statement, one submission per transaction, on the same database (scripts/bench/submission.pgbench.sql), and
 * a bare node:http server answering a canned 409 (scripts/bench/bare-server.ts).
 *
 * The access log's cost: two services on PGlite, one with ACCESS_LOG=true and
 * one with ACCESS_LOG=false (both LOG_FORMAT=json, what a service whose
 * output is not a terminal writes), take the duplicate load in alternating
 * runs at one concurrency (16, or the highest level below it); the ratio of
 * their throughputs (on / off, medians), and of the server's CPU time per
 * request, go between the `<!-- bench:access-log -->` markers.
 * `--only=access-log` measures that alone (needs wrk, not PostgreSQL).
 *
 * The webhook dispatcher (scripts/bench/webhooks.ts): deliveries/s to a local
 * receiver answering 204, as a ratio to a bare `fetch` loop posting the same
 * bodies at the same concurrency, and p99 from due to sent; between the
 * `<!-- bench:webhooks -->` markers. `--only=webhooks` measures that alone
 * (needs PostgreSQL and psql, not wrk).
 *
 * The queue in PostgreSQL (scripts/bench/pg-queue-submissions.ts): unique
 * submissions with QUEUE_BACKEND=postgres on one and on two instances sharing
 * a database, as ratios to pgbench at the same concurrency; between the
 * `<!-- bench:http-postgres-queue -->` markers. `--only=postgres-queue`
 * measures that alone (needs wrk, pgbench, psql and PostgreSQL).
 *
 * Prints a Markdown section; a full run writes it between the
 * `<!-- bench:http -->` markers of BENCHMARKS.md and draws BENCHMARKS-chart.svg.
 * `--quick` (a 1–1.5 minute smoke: 1 s cells) writes them under .bench/ instead unless
 * `--write` is given. Raw results always go to .bench/bench-http.json.
 *
 * The load generator, the service and PostgreSQL share the machine's cores.
 * Each run's CPU is accounted from /proc (server, PostgreSQL, load generator,
 * other); a run that another program disturbed is measured again (up to 3
 * times, within an extra-time budget) and flagged in the report if it stays
 * disturbed.
 *
 * Needs wrk (`apt-get install -y wrk`), pgbench and psql, and a PostgreSQL
 * server reachable as BENCH_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres; it must be allowed to CREATE
 * DATABASE).
 */
import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  writeFileSync
} from "node:fs"
import * as os from "node:os"
import { spawnSync } from "node:child_process"
import { join, delimiter } from "node:path"
import { distinctBodies, formulaBody } from "./bench/bodies.ts"
import { renderChart, type Series } from "./bench/chart.ts"
import {
  checkpoint,
  checkpointNote,
  createDatabase,
  type PgbenchResult,
  psql,
  redact,
  type RowCounts,
  rowCounts,
  runPgbench,
  serverFacts,
  settledRowCounts
} from "./bench/postgres.ts"
import { backgroundLoad, type CpuUse, measureCpu, setOwnDatabase } from "./bench/cpu.ts"
import { cleanup, installSignalHandlers, onCleanup, removeDir, run, runOk, tail } from "./bench/processes.ts"
import { post, repoRoot, type RunningServer, startBareServer, startService } from "./bench/servers.ts"
import { runWrk, type WrkLoad, type WrkResult, writeFixedRequests } from "./bench/wrk.ts"
import { renderWebhookSection, webhookBench, type WebhookBenchResult } from "./bench/webhooks.ts"
import * as PostgresQueueSubmissions from "./bench/pg-queue-submissions.ts"

// --- options -----------------------------------------------------------------------

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
for (const arg of argv) {
  if (
    !/^--(quick|write|no-write|levels=[\d,]+|duration=\d+|warmup=\d+|only=(access-log|webhooks|postgres-queue))$/.test(
      arg
    )
  ) {
    console.error(
      `unknown argument ${arg}\nusage: node scripts/bench.ts [--quick] [--write|--no-write] [--levels=1,16,64] [--duration=S] [--warmup=S] [--only=access-log|--only=webhooks|--only=postgres-queue]`
    )
    process.exit(2)
  }
}
const quick = flag("quick")
const onlyAccessLog = option("only") === "access-log"
const onlyWebhooks = option("only") === "webhooks"
const onlyPostgresQueue = option("only") === "postgres-queue"
const levels = (option("levels") ?? "1,16,64").split(",").map(Number)
const durationS = Number(option("duration") ?? (quick ? 1 : 6))
const warmupS = Number(option("warmup") ?? 1 + (quick ? 0 : 1))
const write = flag("write") || (!quick && !flag("no-write"))
const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const fixedSetSize = 16
const runId = `${process.pid}-${Date.now().toString(36)}`

// --- results -----------------------------------------------------------------------

type Database = "PostgreSQL" | "PGlite"
type Load = "unique" | "duplicates" | "replays"

interface Cell {
  readonly database: Database
  readonly load: Load
  readonly concurrency: number
  /** undefined: not measured (`na` says why). */
  readonly result?: WrkResult
  readonly na?: string
  readonly expectedStatus: number
  /** Measured responses that were not the expected answer, plus socket errors and timeouts. */
  readonly unexpected: number
  readonly check?: { readonly ok: boolean; readonly text: string }
  /** Cores busy with other programs just before the cell (after waiting for a quiet machine). */
  readonly background?: number | undefined
  /** Where the CPU went during the measured run. */
  readonly cpu?: CpuUse | undefined
}

interface Measured {
  readonly background: number | undefined
  readonly cpu: CpuUse | undefined
}

const cells: Array<Cell> = []
const pgbench = new Map<number, PgbenchResult & Measured & { readonly check: { ok: boolean; text: string } }>()
const bare = new Map<number, WrkResult & Measured>()
const commands = new Map<string, string>()
const notes: Array<string> = []
/** Databases on which a keyed request answered 5xx (so replays could not be measured). */
let replayFailures = 0
/** Formulas pgbench added to the PostgreSQL database (kept apart from the service's in the whole-run check). */
let pgbenchAdded = 0
const totals = new Map<Database, { created: number; inFlightBound: number; check?: { ok: boolean; text: string } }>()

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—")
const ms = (n: number) => (!Number.isFinite(n) ? "—" : n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1))
const ratio = (n: number) => `${n.toFixed(2)}×`
const log = (line: string) => console.log(line)

// --- helpers -----------------------------------------------------------------------

const onPath = (command: string) =>
  (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK)
      return true
    } catch {
      return false
    }
  })

/** Remembers the command line of a kind of step for the report, with run-specific parts generalised. */
const remember = (kind: string, command: string, concurrency: number, tmp: string) => {
  if (concurrency !== levels[levels.length - 1]) return
  commands.set(
    kind,
    command
      .replaceAll(tmp, "$TMP")
      .replaceAll(repoRoot, "")
      .replace(/127\.0\.0\.1:\d+(?![\d/])/g, "127.0.0.1:$PORT")
      .replace(/-c ?\d+/, (m) => m.replace(/\d+/, `{${levels.join(",")}}`))
      .replace(/-- unique \S+/, "-- unique <tag>")
  )
}

const cores = (n: number | undefined) => (n === undefined ? "?" : n.toFixed(2))
const cpuText = (cpu: CpuUse | undefined, background: number | undefined) =>
  cpu === undefined
    ? ""
    : `  cpu: server ${cores(cpu.server)}, postgres ${cores(cpu.postgres)}, load gen ${cores(cpu.loadGenerator)}, kernel ${cores(cpu.kernel)}, other ${cores(cpu.other)} (background before ${cores(background)})`

const describeStatuses = (result: WrkResult) => {
  const parts = Object.entries(result.statuses)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([status, n]) => `${status} × ${fmt(n)}`)
  if (result.socketErrors > 0) parts.push(`socket errors/timeouts × ${fmt(result.socketErrors)}`)
  return parts.join(", ") || "none"
}

/** Cores another program may keep busy before we call the machine quiet, and how long we wait for that. */
const quietCores = 0.2
const quietWaitMs = quick ? 5_000 : 30_000
/** Unexplained CPU during a run (cores) that makes us measure it again. */
const disturbedCores = 0.25
const maxAttempts = 3
/** Extra time the whole run may spend waiting for a quiet machine and re-measuring disturbed runs. */
let extraMsLeft = quick ? 20_000 : 150_000

/**
 * Waits (up to `quietWaitMs`, within the extra-time budget) until the machine
 * is quiet — nothing of ours is running between cells, so any CPU in use is
 * someone else's (or our server finishing the requests the last load left in
 * flight). Returns the last reading, in cores.
 */
const waitForQuiet = async () => {
  const began = performance.now()
  const deadline = began + Math.min(quietWaitMs, Math.max(0, extraMsLeft))
  let load = await backgroundLoad(400)
  while (load !== undefined && load >= quietCores && performance.now() < deadline) load = await backgroundLoad(400)
  extraMsLeft -= Math.max(0, performance.now() - began - 400)
  return load
}

/** Whether someone else's CPU use around a run makes its figures doubtful. */
const disturbed = (run: { readonly cpu?: CpuUse | undefined; readonly background?: number | undefined }) =>
  (run.background ?? 0) >= quietCores || (run.cpu?.other ?? 0) >= disturbedCores

const disturbance = (run: { readonly cpu?: CpuUse | undefined; readonly background?: number | undefined }) =>
  (run.background ?? 0) + (run.cpu?.other ?? 0)

/**
 * Runs `attempt` (a quiet-machine wait, a warm-up and a measurement) again
 * while the measurement was disturbed by another program, up to
 * `maxAttempts` times and within the extra-time budget; returns every attempt
 * and the least disturbed one.
 */
const leastDisturbed = async <
  M extends { readonly cpu?: CpuUse | undefined; readonly background?: number | undefined }
>(
  label: string,
  attempt: () => Promise<M>
) => {
  const all: Array<M> = []
  for (;;) {
    const began = performance.now()
    const m = await attempt()
    all.push(m)
    if (!disturbed(m) || all.length >= maxAttempts || extraMsLeft <= 0) break
    extraMsLeft -= performance.now() - began
    log(`    ${label}: disturbed (other ${cores(m.cpu?.other)}, before ${cores(m.background)} cores) — measuring again`)
  }
  const best = all.reduce((a, b) => (disturbance(b) < disturbance(a) ? b : a))
  return { best, all }
}

/** A wrk measurement with the CPU accounting around it. */
const measureWrk = (server: RunningServer, concurrency: number, load: WrkLoad) =>
  measureCpu(server.pid, durationS * 1000 - 300, (onSpawn) =>
    runWrk({ baseUrl: server.baseUrl, connections: concurrency, durationS, load, onSpawn })
  )

/** A quiet machine, a warm-up, then the measurement, through wrk. A failure shows the server's last log lines. */
const drive = (
  server: RunningServer,
  concurrency: number,
  load: (phase: "warmup" | "measure", attempt: number) => WrkLoad,
  tmp: string,
  kind: string,
  prepare: () => Promise<void> = async () => {}
) =>
  leastDisturbed(`${kind} c=${concurrency}`, async () => {
    await prepare()
    const background = await waitForQuiet()
    const attempt = Date.now()
    const warm = await runWrk({
      baseUrl: server.baseUrl,
      connections: concurrency,
      durationS: warmupS,
      load: load("warmup", attempt)
    })
    const { result: main, cpu } = await measureWrk(server, concurrency, load("measure", attempt))
    remember(kind, main.command, concurrency, tmp)
    return { warm, main, cpu, background }
  }).catch((error: unknown) => {
    const ended = server.exited()
    throw new Error(
      `${String(error)}\n--- the server ${ended === undefined ? "is still running" : `had ended (${ended})`}; last lines of ${server.logFile}:\n${tail(server.logFile)}`
    )
  })

const count = (result: WrkResult, status: number) => result.statuses[String(status)] ?? 0

const addCreated = (database: Database, created: number, inFlightBound: number) => {
  const total = totals.get(database) ?? { created: 0, inFlightBound: 0 }
  totals.set(database, {
    ...total,
    created: total.created + created,
    inFlightBound: total.inFlightBound + inFlightBound
  })
}

/** Rows added vs 201s counted: requests still in flight when wrk stopped may have committed unseen. */
const rowCheck = (before: RowCounts, after: RowCounts, counted: number, inFlightBound: number, what: string) => {
  const added = after.formulas - before.formulas
  const unseen = added - counted
  const ok =
    unseen >= 0 &&
    unseen <= inFlightBound &&
    after.outbox - before.outbox === added &&
    after.materials - before.materials === 3 * added
  return {
    ok,
    text:
      `${fmt(added)} formulas added = ${fmt(counted)} ${what} + ${fmt(unseen)} in flight when the load stopped (≤ ${inFlightBound} allowed); ` +
      `outbox +${fmt(after.outbox - before.outbox)}, materials +${fmt(after.materials - before.materials)}`
  }
}

// --- scenarios ---------------------------------------------------------------------

const uniqueCell = async (database: Database, server: RunningServer, c: number, tmp: string, dbUrl?: string) => {
  const before = dbUrl === undefined ? undefined : await rowCounts(dbUrl)
  const { best, all } = await drive(
    server,
    c,
    (phase, attempt) => ({ mode: "unique", tag: `${runId}-${database}-${c}-${phase}-${attempt}` }),
    tmp,
    "wrk unique",
    dbUrl === undefined ? undefined : () => checkpoint(dbUrl)
  )
  const { main, cpu, background } = best
  // Every attempt's warm-up and measurement stored make-ups; each may leave c requests in flight.
  const created = all.reduce((sum, a) => sum + count(a.warm, 201) + count(a.main, 201), 0)
  const inFlightBound = 2 * c * all.length
  addCreated(database, created, inFlightBound)
  let check: Cell["check"]
  if (dbUrl !== undefined && before !== undefined) {
    check = rowCheck(before, await settledRowCounts(dbUrl), created, inFlightBound, "201s")
  }
  const cell: Cell = {
    database,
    load: "unique",
    concurrency: c,
    result: main,
    expectedStatus: 201,
    unexpected: main.requests - count(main, 201) + main.socketErrors,
    ...(check === undefined ? {} : { check }),
    cpu,
    background
  }
  cells.push(cell)
  log(
    `  ${database} unique      c=${String(c).padStart(3)}: ${fmt(main.rate).padStart(7)}/s  p50 ${ms(main.latencyMs.p50)} ms  p99 ${ms(main.latencyMs.p99)} ms  [${describeStatuses(main)}]` +
      (check === undefined ? "" : `  rows ${check.ok ? "ok" : "MISMATCH"}`) +
      cpuText(cpu, background)
  )
}

const fixedCell = async (
  database: Database,
  load: "duplicates" | "replays",
  server: RunningServer,
  c: number,
  file: string,
  expectedStatus: number,
  tmp: string
) => {
  const { best } = await drive(
    server,
    c,
    () => ({ mode: "fixed", file, replay: load === "replays" }),
    tmp,
    load === "replays" ? "wrk replays" : "wrk duplicates"
  )
  const { main, cpu, background } = best
  const good = load === "replays" ? Math.min(main.replayed, count(main, expectedStatus)) : count(main, expectedStatus)
  const cell: Cell = {
    database,
    load,
    concurrency: c,
    result: main,
    expectedStatus,
    unexpected: main.requests - good + main.socketErrors,
    cpu,
    background
  }
  cells.push(cell)
  log(
    `  ${database} ${load.padEnd(11)} c=${String(c).padStart(3)}: ${fmt(main.rate).padStart(7)}/s  p50 ${ms(main.latencyMs.p50)} ms  p99 ${ms(main.latencyMs.p99)} ms  [${describeStatuses(main)}${load === "replays" ? `, replayed × ${fmt(main.replayed)}` : ""}]` +
      cpuText(cpu, background)
  )
}

/** Stores the duplicate set (each make-up once, 201) and writes wrk's request file. */
const primeDuplicates = async (database: Database, server: RunningServer, tmp: string) => {
  const bodies = distinctBodies(`dup-${runId}-${database}`, fixedSetSize)
  for (const body of bodies) {
    const first = await post(server.baseUrl, body)
    if (first.status !== 201) throw new Error(`priming a duplicate make-up answered ${first.status}: ${first.body}`)
  }
  addCreated(database, bodies.length, 0)
  const file = join(tmp, `duplicates-${database}.txt`)
  writeFixedRequests(
    file,
    bodies.map((body) => ({ body }))
  )
  return file
}

/**
 * Asks whether the service replays Idempotency-Key requests: the same key and
 * body twice, the second answer must carry `Idempotent-Replayed: true`. When
 * it does, stores 16 keyed make-ups and writes wrk's request file.
 */
const primeReplays = async (database: Database, server: RunningServer, tmp: string) => {
  const probeBody = formulaBody("Bench probe", `Bergamot Oil probe-${runId}-${database}`)
  const probeKey = `bench-probe-${runId}-${database}`
  const first = await post(server.baseUrl, probeBody, probeKey)
  const second = await post(server.baseUrl, probeBody, probeKey)
  addCreated(database, first.status === 201 ? 1 : 0, 0)
  if (!second.replayed && (first.status >= 500 || second.status >= 500)) {
    const detail = (second.status >= 500 ? second.body : first.body).replace(/\s+/g, " ").slice(0, 200)
    notes.push(
      `${database}: **replays failed** — the same Idempotency-Key and body sent twice answered ${first.status} then ${second.status}${detail === "" ? "" : ` (${detail})`}; see the service's log.`
    )
    replayFailures++
    return { supported: false as const, why: `failed: ${first.status} then ${second.status}` }
  }
  if (!second.replayed) {
    notes.push(
      `${database}: replays n/a (not implemented) — the same Idempotency-Key and body sent twice answered ${first.status} then ${second.status}, the second without \`Idempotent-Replayed: true\`.`
    )
    return { supported: false as const, why: "n/a (not implemented)" }
  }
  const bodies = distinctBodies(`replay-${runId}-${database}`, fixedSetSize)
  const requests = bodies.map((body, i) => ({ key: `bench-${runId}-${database}-${i}`, body }))
  for (const request of requests) {
    const answer = await post(server.baseUrl, request.body, request.key)
    if (answer.status !== 201) throw new Error(`priming a keyed make-up answered ${answer.status}: ${answer.body}`)
  }
  addCreated(database, requests.length, 0)
  const file = join(tmp, `replays-${database}.txt`)
  writeFixedRequests(file, requests)
  return { supported: true as const, file, expectedStatus: 201 }
}

const replayCells = async (
  database: Database,
  server: RunningServer,
  c: number,
  replays: Awaited<ReturnType<typeof primeReplays>>,
  tmp: string
) => {
  if (!replays.supported) {
    cells.push({ database, load: "replays", concurrency: c, na: replays.why, expectedStatus: 201, unexpected: 0 })
    log(`  ${database} replays     c=${String(c).padStart(3)}: ${replays.why}`)
    return
  }
  await fixedCell(database, "replays", server, c, replays.file, replays.expectedStatus, tmp)
}

const stopService = async (database: Database, server: RunningServer) => {
  const stopped = await server.stop()
  const line = `${database}: the service started (first \`/health\` 200) in ${fmt(server.startMs)} ms and exited ${fmt(stopped.ms)} ms after SIGTERM${stopped.killed ? " — only after SIGKILL" : ""}.`
  notes.push(line)
  log(`  ${line}`)
}

// --- phases ------------------------------------------------------------------------

const postgresPhase = async (tmp: string) => {
  const database = "PostgreSQL" as const
  const dbName = `bench_${process.pid}`
  const url = await createDatabase(adminUrl, dbName)
  setOwnDatabase(dbName)
  log(`PostgreSQL: database ${dbName}`)
  const server = await startService({
    database: { url },
    logFile: join(tmp, "service-postgres.log"),
    shownUrl: redact(url)
  })
  commands.set("service on PostgreSQL", server.command.replaceAll(tmp, "$TMP").replace(/PORT=\d+/, "PORT=$PORT"))
  try {
    const start = await rowCounts(url)
    for (const c of levels) {
      // The database's own limit: the same transaction from pgbench at the same concurrency.
      const before = await rowCounts(url)
      let transactions = 0
      const { best } = await leastDisturbed(`pgbench c=${c}`, async () => {
        await checkpoint(url)
        const background = await waitForQuiet()
        const warm = await runPgbench({ url, clients: c, durationS: warmupS })
        const { result: main, cpu } = await measureCpu(undefined, durationS * 1000 - 300, (onSpawn) =>
          runPgbench({ url, clients: c, durationS, logPrefix: join(tmp, `pgbench-${c}`), onSpawn })
        )
        transactions += warm.transactions + main.transactions
        return { main, cpu, background }
      })
      const { main, cpu, background } = best
      remember("pgbench", main.command, c, tmp)
      const after = await settledRowCounts(url)
      pgbenchAdded += after.formulas - before.formulas
      const check = rowCheck(before, after, transactions, 0, "pgbench transactions")
      pgbench.set(c, { ...main, check, cpu, background })
      log(
        `  pgbench               c=${String(c).padStart(3)}: ${fmt(main.tps).padStart(7)}/s  p50 ${ms(main.latencyMs.p50)} ms  p99 ${ms(main.latencyMs.p99)} ms  [failed ${main.failed}]  rows ${check.ok ? "ok" : "MISMATCH"}` +
          cpuText(cpu, background)
      )
      await uniqueCell(database, server, c, tmp, url)
    }
    const connections = await psql(
      url,
      `SELECT count(*) FROM pg_stat_activity WHERE datname = '${dbName}' AND application_name = 'formula-intake'`
    )
    notes.push(`PostgreSQL: the service held ${connections} connections to the database after the unique runs.`)
    notes.push(checkpointNote())

    const bareServer = await startBareServer(join(tmp, "bare.log"))
    commands.set("bare node:http", bareServer.command.replace(/PORT=\d+/, "PORT=$PORT"))
    const duplicates = await primeDuplicates(database, server, tmp)
    const replays = await primeReplays(database, server, tmp)
    for (const c of levels) {
      // The HTTP limit: the same request answered by Node alone.
      const {
        best: { main, cpu, background }
      } = await drive(bareServer, c, () => ({ mode: "fixed", file: duplicates, replay: false }), tmp, "wrk bare")
      bare.set(c, { ...main, cpu, background })
      log(
        `  bare node:http        c=${String(c).padStart(3)}: ${fmt(main.rate).padStart(7)}/s  p50 ${ms(main.latencyMs.p50)} ms  p99 ${ms(main.latencyMs.p99)} ms  [${describeStatuses(main)}]` +
          cpuText(cpu, background)
      )
      await fixedCell(database, "duplicates", server, c, duplicates, 409, tmp)
      await replayCells(database, server, c, replays, tmp)
    }
    await bareServer.stop()
    await stopService(database, server)
    const end = await settledRowCounts(url)
    const total = totals.get(database)!
    const serviceRows = {
      formulas: end.formulas - start.formulas - pgbenchAdded,
      outbox: end.outbox - start.outbox - pgbenchAdded,
      materials: end.materials - start.materials - 3 * pgbenchAdded
    }
    const check = rowCheck(
      { formulas: 0, outbox: 0, materials: 0 },
      serviceRows,
      total.created,
      total.inFlightBound,
      "201s seen by the benchmark"
    )
    totals.set(database, { ...total, check })
  } finally {
    await server.stop()
  }
}

const pgliteRowCounts = async (dataDir: string): Promise<RowCounts> => {
  const { PGlite } = await import("@electric-sql/pglite")
  const db = new PGlite(dataDir)
  try {
    const result = await db.query<{ formulas: number; materials: number; outbox: number }>(
      "SELECT (SELECT count(*) FROM formulas)::int AS formulas, (SELECT count(*) FROM formula_materials)::int AS materials, (SELECT count(*) FROM outbox)::int AS outbox"
    )
    return result.rows[0]!
  } finally {
    await db.close()
  }
}

const pglitePhase = async (tmp: string) => {
  const database = "PGlite" as const
  const dataDir = join(tmp, "pglite")
  setOwnDatabase(undefined)
  log(`PGlite: DATA_DIR ${dataDir}`)
  const server = await startService({ database: { dataDir }, logFile: join(tmp, "service-pglite.log") })
  commands.set("service on PGlite", server.command.replaceAll(tmp, "$TMP").replace(/PORT=\d+/, "PORT=$PORT"))
  try {
    const duplicates = await primeDuplicates(database, server, tmp)
    const replays = await primeReplays(database, server, tmp)
    for (const c of levels) {
      await uniqueCell(database, server, c, tmp)
      await fixedCell(database, "duplicates", server, c, duplicates, 409, tmp)
      await replayCells(database, server, c, replays, tmp)
    }
    await stopService(database, server)
  } finally {
    await server.stop()
  }
  // The service has closed the database: open it here and count what it stored.
  const total = totals.get(database)!
  try {
    const rows = await pgliteRowCounts(dataDir)
    totals.set(database, {
      ...total,
      check: rowCheck(
        { formulas: 0, outbox: 0, materials: 0 },
        rows,
        total.created,
        total.inFlightBound,
        "201s seen by the benchmark"
      )
    })
  } catch (error) {
    totals.set(database, {
      ...total,
      check: { ok: false, text: `could not open the PGlite data directory afterwards: ${String(error)}` }
    })
  }
}

// --- the access log's cost ---------------------------------------------------------

interface AccessLogRun {
  readonly accessLog: "on" | "off"
  readonly round: number
  readonly result: WrkResult
  readonly cpu: CpuUse | undefined
  readonly background: number | undefined
}

const accessLogRuns: Array<AccessLogRun> = []
const accessLogConcurrency = levels.includes(16) ? 16 : Math.max(levels[0]!, ...levels.filter((c) => c <= 16))
const accessLogRounds = quick ? 3 : 5
const accessLogOutput: Record<"on" | "off", { bytes: number; lastLine: string }> = {
  on: { bytes: 0, lastLine: "" },
  off: { bytes: 0, lastLine: "" }
}

const lineModes = ["none", "default", "consoleJson", "jsonLines"] as const
/** µs of CPU per access log line, by the loggers it went to (scripts/bench/log-line.ts), one figure per repetition. */
const lineCosts = new Map<(typeof lineModes)[number], Array<number>>()
const lineScript = join(repoRoot, "scripts/bench/log-line.ts")

/** One run of scripts/bench/log-line.ts, its lines written to a file in `tmp` (as a service's would be). */
const measureLine = (mode: (typeof lineModes)[number], tmp: string) => {
  const fd = openSync(join(tmp, `log-line-${mode}.log`), "w")
  try {
    const child = spawnSync(process.execPath, [lineScript, mode, "50000"], {
      cwd: repoRoot,
      stdio: ["ignore", fd, "pipe"],
      encoding: "utf8"
    })
    const last = child.stderr.trim().split("\n").at(-1) ?? ""
    if (child.status !== 0) throw new Error(`log-line.ts ${mode} failed: ${child.stderr}`)
    return (JSON.parse(last) as { cpuUs: number }).cpuUs
  } finally {
    closeSync(fd)
  }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The server's CPU time per answered request, in µs. */
const cpuPerRequestUs = (run: AccessLogRun) => (run.cpu === undefined ? NaN : (run.cpu.server * 1e6) / run.result.rate)

/** The size of a log file and its last complete line (without reading it whole: it can be large). */
const lastLogLine = (file: string) => {
  const fd = openSync(file, "r")
  try {
    const bytes = fstatSync(fd).size
    const buffer = Buffer.alloc(Math.min(bytes, 4096))
    readSync(fd, buffer, 0, buffer.length, bytes - buffer.length)
    return { bytes, lastLine: buffer.toString("utf8").trimEnd().split("\n").at(-1) ?? "" }
  } finally {
    closeSync(fd)
  }
}

const accessLogSummary = () => {
  const rates = (mode: "on" | "off") => accessLogRuns.filter((r) => r.accessLog === mode).map((r) => r.result.rate)
  const cpus = (mode: "on" | "off") =>
    accessLogRuns.filter((r) => r.accessLog === mode && r.cpu !== undefined).map(cpuPerRequestUs)
  const on = median(rates("on"))
  const off = median(rates("off"))
  const cpuOn = median(cpus("on"))
  const cpuOff = median(cpus("off"))
  return { on, off, ratio: on / off, cpuOn, cpuOff, cpuRatio: cpuOn / cpuOff }
}

/**
 * Two services on PGlite, access log on and off, both writing JSON lines to a
 * file as a service run by a supervisor would; the duplicate load on each in
 * turn, the order alternating by round so that drift in the machine's speed
 * falls on both alike.
 */
const accessLogPhase = async (tmp: string) => {
  const c = accessLogConcurrency
  setOwnDatabase(undefined)
  log(`Access log: ACCESS_LOG=true vs false, duplicates at concurrency ${c}, ${accessLogRounds} rounds`)
  const servers: Partial<Record<"on" | "off", RunningServer>> = {}
  try {
    for (const mode of ["on", "off"] as const) {
      const server = await startService({
        database: { dataDir: join(tmp, `pglite-access-log-${mode}`) },
        logFile: join(tmp, `service-access-log-${mode}.log`),
        env: { ACCESS_LOG: mode === "on" ? "true" : "false", LOG_FORMAT: "json" }
      })
      servers[mode] = server
      commands.set(
        `service, access log ${mode}`,
        server.command.replaceAll(tmp, "$TMP").replace(/PORT=\d+/, "PORT=$PORT")
      )
    }
    const files: Partial<Record<"on" | "off", string>> = {}
    for (const mode of ["on", "off"] as const) {
      const bodies = distinctBodies(`access-log-${mode}-${runId}`, fixedSetSize)
      for (const body of bodies) {
        const first = await post(servers[mode]!.baseUrl, body)
        if (first.status !== 201) throw new Error(`priming a duplicate make-up answered ${first.status}: ${first.body}`)
      }
      files[mode] = join(tmp, `duplicates-access-log-${mode}.txt`)
      writeFixedRequests(
        files[mode],
        bodies.map((body) => ({ body }))
      )
    }
    for (let round = 1; round <= accessLogRounds; round++) {
      const order = round % 2 === 1 ? (["on", "off"] as const) : (["off", "on"] as const)
      for (const mode of order) {
        const server = servers[mode]!
        const {
          best: { main, cpu, background }
        } = await drive(
          server,
          c,
          () => ({ mode: "fixed", file: files[mode]!, replay: false }),
          tmp,
          `wrk duplicates, access log ${mode}`
        )
        const run: AccessLogRun = { accessLog: mode, round, result: main, cpu, background }
        accessLogRuns.push(run)
        log(
          `  access log ${mode.padEnd(3)} round ${round} c=${String(c).padStart(3)}: ${fmt(main.rate).padStart(7)}/s  p99 ${ms(main.latencyMs.p99)} ms  server ${cpuPerRequestUs(run).toFixed(1)} µs/request  [${describeStatuses(main)}]` +
            cpuText(cpu, background)
        )
      }
    }
  } finally {
    for (const mode of ["on", "off"] as const) {
      const server = servers[mode]
      if (server === undefined) continue
      await server.stop()
      accessLogOutput[mode] = lastLogLine(server.logFile)
    }
  }
  for (let repetition = 0; repetition < 3; repetition++) {
    for (const mode of lineModes) lineCosts.set(mode, [...(lineCosts.get(mode) ?? []), measureLine(mode, tmp)])
  }
  commands.set(
    "one line's CPU",
    `node scripts/bench/log-line.ts {${lineModes.join(",")}} 50000 > $TMP/log-line-MODE.log`
  )
  log(
    `  one access log line, µs of CPU (median of 3): ${lineModes.map((mode) => `${mode} ${median(lineCosts.get(mode)!).toFixed(2)}`).join(", ")}`
  )
  const summary = accessLogSummary()
  log(
    `  access log on / off: throughput ${ratio(summary.ratio)}, server CPU per request ${ratio(summary.cpuRatio)} (${summary.cpuOn.toFixed(1)} vs ${summary.cpuOff.toFixed(1)} µs)`
  )
}

const renderAccessLogSection = (m: Awaited<ReturnType<typeof basicMachine>>) => {
  const summary = accessLogSummary()
  const c = accessLogConcurrency
  const args = process.argv.slice(2).join(" ")
  const out: Array<string> = []
  out.push("<!-- bench:access-log -->")
  out.push("## Access log cost (duplicates, `POST /formulas` → 409)")
  out.push("")
  out.push(`- Date: ${m.date}`)
  out.push(`- Service: ${m.revision}`)
  out.push(`- Machine: ${m.cores} × ${m.cpu}, ${m.ramGiB.toFixed(1)} GiB, ${m.kernel}, Node ${m.node}, ${m.wrkVersion}`)
  out.push(`- Command: \`npm run bench${args === "" ? "" : ` -- ${args}`}\` (\`node scripts/bench.ts\`)`)
  out.push(
    `- Two services on PGlite from the same tree, started alike but for \`ACCESS_LOG=true\` / \`ACCESS_LOG=false\`, both \`LOG_FORMAT=json\` with their output going to a file ` +
      `(what a supervised service does); wrk sends the duplicate load (${fixedSetSize} stored make-ups round-robin, every answer a 409) at concurrency ${c}, ` +
      `${durationS} s measured after a ${warmupS} s warm-up, to each in turn, ${accessLogRounds} rounds, the order alternating by round.`
  )
  for (const [kind, command] of commands) {
    if (
      kind.startsWith("service, access log") ||
      kind.startsWith("wrk duplicates, access log") ||
      kind === "one line's CPU"
    )
      out.push(`  - ${kind}: \`${command}\``)
  }
  out.push("")
  out.push("| round | access log | submissions/s | p50 ms | p99 ms | server CPU µs/request | other cores | before |")
  out.push("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
  for (const run of accessLogRuns) {
    out.push(
      `| ${run.round} | ${run.accessLog} | ${fmt(run.result.rate)} | ${ms(run.result.latencyMs.p50)} | ${ms(run.result.latencyMs.p99)} | ${cpuPerRequestUs(run).toFixed(1)} | ${cores(run.cpu?.other)} | ${cores(run.background)} |`
    )
  }
  out.push("")
  const disturbedRuns = accessLogRuns
    .filter((run) => disturbed(run))
    .map((run) => `round ${run.round} ${run.accessLog}`)
  const verdict =
    disturbedRuns.length > 0
      ? "**not established**: another program was using the machine (below)"
      : `**${summary.ratio >= 0.95 ? "met" : "not met"}**`
  out.push(
    `Medians: **${fmt(summary.on)}/s with the access log, ${fmt(summary.off)}/s without: ${ratio(summary.ratio)}** (target ≥ 0.95×: ${verdict}); ` +
      `the server's CPU time per request ${summary.cpuOn.toFixed(1)} µs vs ${summary.cpuOff.toFixed(1)} µs (${ratio(summary.cpuRatio)}).`
  )
  out.push("")
  if (disturbedRuns.length > 0) {
    out.push(
      `**Disturbed**: another program was using the machine around ${disturbedRuns.join(", ")} (**other** and **before**, in cores of ${m.cores}); ` +
        `those figures, and their ratio, say little about the access log.`
    )
    out.push("")
  }
  if (lineCosts.size > 0) {
    const cost = (mode: (typeof lineModes)[number]) => median(lineCosts.get(mode)!)
    out.push(
      `One line's CPU time, in a loop in one process (\`scripts/bench/log-line.ts\`, 50,000 lines to a file, median of 3), by the loggers it goes to — ` +
        `against the service's CPU time per duplicate answered without the access log, ${summary.cpuOff.toFixed(1)} µs in this run:`
    )
    out.push("")
    out.push("| loggers | µs per line | share of a duplicate's CPU |")
    out.push("| --- | ---: | ---: |")
    const names = {
      none: "none (making the line and calling the loggers)",
      default: "Effect's default logger",
      consoleJson: "`Logger.consoleJson`",
      jsonLines: "`JsonLines` (the service's `LOG_FORMAT=json`)"
    } as const
    for (const mode of lineModes) {
      out.push(`| ${names[mode]} | ${cost(mode).toFixed(2)} | ${((100 * cost(mode)) / summary.cpuOff).toFixed(1)} % |`)
    }
    out.push("")
  }
  out.push(
    `Output: the service with the access log wrote ${(accessLogOutput.on.bytes / 1024 ** 2).toFixed(1)} MiB, its last line \`${accessLogOutput.on.lastLine.slice(0, 300).replaceAll("`", "'")}\`; ` +
      `the one without wrote ${(accessLogOutput.off.bytes / 1024 ** 2).toFixed(1)} MiB.`
  )
  out.push("<!-- /bench:access-log -->")
  return out.join("\n")
}

// --- report ------------------------------------------------------------------------

const basicMachine = async () => {
  const cpus = os.cpus()
  // wrk --version prints its version line and exits 1.
  const wrkVersion = (await run("wrk", ["--version"])).stdout
    .split("\n")[0]!
    .replace(/ Copyright.*/, "")
    .trim()
  // The service measured is the working tree as it is, committed or not.
  const git = await run("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"])
  const dirty = await run("git", ["-C", repoRoot, "status", "--porcelain", "--", "src"])
  const changed = dirty.stdout.split("\n").filter((l) => l.trim() !== "").length
  const revision =
    git.code !== 0
      ? "unknown revision"
      : `commit ${git.stdout.trim()}${changed > 0 ? ` plus ${changed} uncommitted change(s) under src/` : ""}`
  return {
    revision,
    date: (await runOk("date", ["-u"])).trim(),
    cores: cpus.length,
    cpu: cpus[0]?.model ?? "unknown CPU",
    ramGiB: os.totalmem() / 1024 ** 3,
    kernel: `${os.platform()} ${os.release()}`,
    node: process.version,
    wrkVersion
  }
}

const machine = async () => ({
  ...(await basicMachine()),
  pg: await serverFacts(adminUrl),
  pgbenchVersion: (await runOk("pgbench", ["--version"])).trim()
})

const refFor = (cell: Cell) => {
  if (cell.result === undefined) return undefined
  if (cell.load === "unique" && cell.database === "PostgreSQL") {
    const ref = pgbench.get(cell.concurrency)
    return ref === undefined ? undefined : { name: "pgbench", rate: ref.tps, target: 1.0 }
  }
  if (cell.load === "duplicates") {
    const ref = bare.get(cell.concurrency)
    return ref === undefined ? undefined : { name: "node:http", rate: ref.rate, target: 0.5 }
  }
  if (cell.load === "replays") {
    const ref = bare.get(cell.concurrency)
    return ref === undefined ? undefined : { name: "node:http", rate: ref.rate, target: undefined }
  }
  return undefined
}

const targetSummary = () => {
  const lines: Array<string> = []
  const uniqueAt = [16, 64].filter((c) => levels.includes(c))
  if (uniqueAt.length > 0) {
    const parts = uniqueAt.map((c) => {
      const cell = cells.find((x) => x.database === "PostgreSQL" && x.load === "unique" && x.concurrency === c)
      const ref = cell === undefined ? undefined : refFor(cell)
      return cell?.result === undefined || ref === undefined ? { c, r: NaN } : { c, r: cell.result.rate / ref.rate }
    })
    const met = parts.every((p) => p.r >= 1.0)
    lines.push(
      `- Unique make-ups on PostgreSQL ≥ 1.0× pgbench at concurrency ${uniqueAt.join(" and ")}: **${met ? "met" : "not met"}** (${parts.map((p) => `${ratio(p.r)} at ${p.c}`).join(", ")}).`
    )
  }
  for (const database of ["PostgreSQL", "PGlite"] as const) {
    const parts = cells
      .filter((x) => x.database === database && x.load === "duplicates" && x.result !== undefined)
      .map((cell) => ({ c: cell.concurrency, r: cell.result!.rate / (refFor(cell)?.rate ?? NaN) }))
    if (parts.length === 0) continue
    const met = parts.every((p) => p.r >= 0.5)
    lines.push(
      `- Duplicates on ${database} ≥ 0.5× bare node:http: **${met ? "met" : "not met"}** (${parts.map((p) => `${ratio(p.r)} at ${p.c}`).join(", ")}).`
    )
  }
  return lines
}

const renderSection = (m: Awaited<ReturnType<typeof machine>>, totalS: number) => {
  const out: Array<string> = []
  out.push("<!-- bench:http -->")
  out.push("## HTTP submissions (`POST /formulas`)")
  out.push("")
  out.push(`- Date: ${m.date}`)
  out.push(`- Service: ${m.revision}`)
  out.push(
    `- Machine: ${m.cores} × ${m.cpu}, ${m.ramGiB.toFixed(1)} GiB, ${m.kernel}, Node ${m.node}, PostgreSQL ${m.pg.version} ` +
      `(synchronous_commit=${m.pg.synchronousCommit}, fsync=${m.pg.fsync}, shared_buffers=${m.pg.sharedBuffers}), ${m.wrkVersion}, ${m.pgbenchVersion}`
  )
  out.push(
    `- Everything shares the ${m.cores} cores: wrk (one thread), the service (one Node process), PostgreSQL's backends, pgbench. ` +
      `Closed loop: each connection sends its next request when the previous answer arrives.`
  )
  out.push(
    `- Command: \`npm run bench${quick ? " -- --quick" : ""}\` (\`node scripts/bench.ts\`): ${durationS} s measured per cell after a ${warmupS} s warm-up, concurrency ${levels.join(", ")}; ${Math.round(totalS)} s in all.`
  )
  out.push("- Commands it ran (`$TMP` is the run's temporary directory, `<tag>` differs per run and phase):")
  for (const [kind, command] of commands) out.push(`  - ${kind}: \`${command}\``)
  out.push(
    `- Loads: **unique** — every request a new make-up (expects 201); **duplicates** — ${fixedSetSize} stored make-ups round-robin (expects 409); ` +
      `**replays** — ${fixedSetSize} Idempotency-Keys, each with the body it was first sent with (expects the first 201 replayed, \`Idempotent-Replayed: true\`). ` +
      `References, same run: **pgbench** runs the service's statement for one new make-up, one submission per transaction (the formula, its 3 materials and its outbox row in one statement of data-modifying CTEs, as \`FormulaSql.insertNewFormulas\` sends it — \`scripts/bench/submission.pgbench.sql\`) on the same database; ` +
      `**bare node:http** reads the same duplicate requests and answers a canned 409 problem+json.`
  )
  out.push("")
  out.push(
    "| database | load | concurrency | submissions/s | p50 ms | p99 ms | measured responses | reference /s | ratio | target |"
  )
  out.push("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
  const order: Array<Load> = ["unique", "duplicates", "replays"]
  for (const database of ["PostgreSQL", "PGlite"] as const) {
    for (const load of order) {
      for (const cell of cells.filter((x) => x.database === database && x.load === load)) {
        if (cell.result === undefined) {
          out.push(`| ${database} | ${load} | ${cell.concurrency} | ${cell.na ?? "n/a"} | | | | | | |`)
          continue
        }
        const r = cell.result
        const ref = refFor(cell)
        const value = ref === undefined ? NaN : r.rate / ref.rate
        const target =
          ref?.target === undefined
            ? database === "PGlite" && load === "unique"
              ? "none"
              : "—"
            : `≥ ${ref.target.toFixed(1)}×: ${value >= ref.target ? "met" : "not met"}`
        const responses = describeStatuses(r) + (cell.unexpected > 0 ? ` (**${fmt(cell.unexpected)} unexpected**)` : "")
        out.push(
          `| ${database} | ${load} | ${cell.concurrency} | ${fmt(r.rate)} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p99)} | ${responses} | ` +
            `${ref === undefined ? "—" : `${fmt(ref.rate)} (${ref.name})`} | ${ref === undefined ? "—" : ratio(value)} | ${target} |`
        )
      }
    }
  }
  out.push("")
  out.push("References:")
  out.push("")
  out.push("| reference | concurrency | per s | p50 ms | p99 ms | notes |")
  out.push("| --- | ---: | ---: | ---: | ---: | --- |")
  for (const [c, r] of pgbench) {
    out.push(
      `| pgbench (same SQL, \`-M prepared\`) | ${c} | ${fmt(r.tps)} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p99)} | ${fmt(r.transactions)} transactions, ${r.failed} failed |`
    )
  }
  for (const [c, r] of bare) {
    out.push(
      `| bare node:http, canned 409 | ${c} | ${fmt(r.rate)} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p99)} | ${describeStatuses(r)} |`
    )
  }
  out.push("")
  out.push(
    `Where the CPU went in each measured run, in cores of ${m.cores} (from /proc): **server** is the Node process under test (the service, with PGlite inside it, or the bare server); ` +
      `**postgres** PostgreSQL's shared processes and the backends of the benchmark's database (the service's pool, or pgbench's connections); ` +
      `**load gen** wrk or pgbench; **kernel** interrupts, softirqs (loopback TCP) and kernel threads (disk flushes); **other** everything else — another program, or PostgreSQL serving another database ` +
      `(approximate: the kernel may also charge some interrupt time to the process it interrupted). ` +
      `**before** is what the machine was busy with just before the cell while nothing of the benchmark ran. ` +
      `The benchmark waits up to ${quietWaitMs / 1000} s for that to drop below ${quietCores} cores, and measures a cell again (up to ${maxAttempts} times in all, keeping the least disturbed) ` +
      `when **before** ≥ ${quietCores} or **other** ≥ ${disturbedCores} cores, within ${Math.round((quick ? 20_000 : 150_000) / 1000)} s of extra time per run.`
  )
  out.push("")
  out.push("| run | concurrency | server | postgres | load gen | kernel | other | before |")
  out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  const cpuRow = (name: string, c: number, cpu: CpuUse | undefined, background: number | undefined) =>
    cpu === undefined
      ? `| ${name} | ${c} | ? | ? | ? | ? | ? | ${cores(background)} |`
      : `| ${name} | ${c} | ${cores(cpu.server)} | ${cores(cpu.postgres)} | ${cores(cpu.loadGenerator)} | ${cores(cpu.kernel)} | ${cores(cpu.other)} | ${cores(background)} |`
  for (const [c, r] of pgbench) out.push(cpuRow("pgbench", c, r.cpu, r.background))
  for (const [c, r] of bare) out.push(cpuRow("bare node:http", c, r.cpu, r.background))
  for (const cell of cells) {
    if (cell.result !== undefined)
      out.push(cpuRow(`${cell.database} ${cell.load}`, cell.concurrency, cell.cpu, cell.background))
  }
  const suspects = [
    ...cells
      .filter((cell) => cell.result !== undefined && disturbed(cell))
      .map((cell) => `${cell.database} ${cell.load} at ${cell.concurrency}`),
    ...[...pgbench].filter(([, r]) => disturbed(r)).map(([c]) => `pgbench at ${c}`),
    ...[...bare].filter(([, r]) => disturbed(r)).map(([c]) => `bare node:http at ${c}`)
  ]
  out.push("")
  out.push(
    suspects.length === 0
      ? "No other program was seen using the machine around the measured runs."
      : `**Disturbed**: another program was using the machine around ${suspects.join(", ")} (≥ ${quietCores} cores before the cell, or ≥ ${disturbedCores} unexplained cores during it, even at the last attempt); those figures are low by an unknown amount.`
  )
  out.push("")
  out.push("![HTTP submissions: throughput and p99 latency against concurrency](BENCHMARKS-chart.svg)")
  out.push("")
  out.push("Targets:")
  out.push("")
  out.push(...targetSummary())
  out.push("")
  out.push("Checks (rows counted in the database after the load vs 201 answers seen):")
  out.push("")
  for (const cell of cells) {
    if (cell.check !== undefined) {
      out.push(
        `- ${cell.database} unique, concurrency ${cell.concurrency}: ${cell.check.ok ? "ok" : "**MISMATCH**"} — ${cell.check.text}.`
      )
    }
  }
  for (const [c, r] of pgbench)
    out.push(`- pgbench, concurrency ${c}: ${r.check.ok ? "ok" : "**MISMATCH**"} — ${r.check.text}.`)
  for (const [database, total] of totals) {
    if (total.check !== undefined) {
      out.push(
        `- ${database}, whole run (service rows only): ${total.check.ok ? "ok" : "**MISMATCH**"} — ${total.check.text}.`
      )
    }
  }
  const unexpected = cells.reduce((sum, cell) => sum + cell.unexpected, 0)
  out.push(
    `- Unexpected answers (anything but the expected status, socket errors, timeouts) in measured runs: ${fmt(unexpected)}.`
  )
  for (const note of notes) out.push(`- ${note}`)
  out.push("<!-- /bench:http -->")
  return out.join("\n")
}

const chart = () => {
  const series: Array<Series> = []
  const pick = (database: Database, load: Load) =>
    cells
      .filter((x) => x.database === database && x.load === load && x.result !== undefined)
      .map((x) => ({ concurrency: x.concurrency, rate: x.result!.rate, p99Ms: x.result!.latencyMs.p99 }))
  series.push({ name: "PostgreSQL: unique", color: "#1f77b4", points: pick("PostgreSQL", "unique") })
  series.push({
    name: "pgbench, same SQL (reference)",
    color: "#1f77b4",
    dashed: true,
    points: [...pgbench].map(([c, r]) => ({ concurrency: c, rate: r.tps, p99Ms: r.latencyMs.p99 }))
  })
  series.push({ name: "PostgreSQL: duplicates", color: "#ff7f0e", points: pick("PostgreSQL", "duplicates") })
  series.push({
    name: "bare node:http, canned 409 (reference)",
    color: "#7f7f7f",
    dashed: true,
    points: [...bare].map(([c, r]) => ({ concurrency: c, rate: r.rate, p99Ms: r.latencyMs.p99 }))
  })
  series.push({ name: "PGlite: unique", color: "#2ca02c", points: pick("PGlite", "unique") })
  series.push({ name: "PGlite: duplicates", color: "#9467bd", points: pick("PGlite", "duplicates") })
  const pgReplays = pick("PostgreSQL", "replays")
  if (pgReplays.length > 0) series.push({ name: "PostgreSQL: replays", color: "#d62728", points: pgReplays })
  const liteReplays = pick("PGlite", "replays")
  if (liteReplays.length > 0) series.push({ name: "PGlite: replays", color: "#8c564b", points: liteReplays })
  return renderChart({ title: "POST /formulas — closed loop, wrk, 2 cores shared", levels, series })
}

/** Writes `section` between its `<!-- bench:NAME -->` markers in `file` (appended if they are not there). */
const writeSection = (file: string, name: string, section: string) => {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch {
    text = "# Benchmarks\n"
  }
  const start = text.indexOf(`<!-- bench:${name} -->`)
  const endMarker = `<!-- /bench:${name} -->`
  const end = text.indexOf(endMarker)
  const next =
    start !== -1 && end > start
      ? text.slice(0, start) + section + text.slice(end + endMarker.length)
      : text.trimEnd() + "\n\n" + section + "\n"
  writeFileSync(file, next)
}

// --- main --------------------------------------------------------------------------

/** `--only=access-log`: the access log's cost alone. */
const accessLogOnly = async (tmp: string) => {
  const m = await basicMachine()
  log(`bench: the access log's cost; ${m.cores} × ${m.cpu}, Node ${m.node}`)
  await accessLogPhase(tmp)
  const section = renderAccessLogSection(m)
  const scratch = join(repoRoot, ".bench")
  mkdirSync(scratch, { recursive: true })
  writeFileSync(join(scratch, "bench-access-log.json"), JSON.stringify({ machine: m, runs: accessLogRuns }, null, 2))
  log("")
  log(section)
  if (write) {
    writeSection(join(repoRoot, "BENCHMARKS.md"), "access-log", section)
    log("\nwrote BENCHMARKS.md (bench:access-log section)")
  } else {
    writeFileSync(join(scratch, "bench-access-log.md"), section + "\n")
    log("\nwrote .bench/bench-access-log.md (BENCHMARKS.md untouched; --write to update it)")
  }
}

/** The webhook dispatcher's section: measured, printed, written (BENCHMARKS.md with --write or a full run). */
const webhooksPhase = async (tmp: string, m: Awaited<ReturnType<typeof basicMachine>>) => {
  setOwnDatabase(undefined)
  const result: WebhookBenchResult = await webhookBench({ adminUrl, runId, tmp, quick, log })
  const section = renderWebhookSection(m, result, process.argv.slice(2).join(" "))
  const scratch = join(repoRoot, ".bench")
  mkdirSync(scratch, { recursive: true })
  writeFileSync(join(scratch, "bench-webhooks.json"), JSON.stringify({ machine: m, result }, null, 2))
  return section
}

/** `--only=webhooks`: the webhook dispatcher alone. */
const webhooksOnly = async (tmp: string) => {
  const m = await basicMachine()
  log(`bench: the webhook dispatcher; ${m.cores} × ${m.cpu}, Node ${m.node}`)
  const section = await webhooksPhase(tmp, m)
  log("")
  log(section)
  if (write) {
    writeSection(join(repoRoot, "BENCHMARKS.md"), "webhooks", section)
    log("\nwrote BENCHMARKS.md (bench:webhooks section)")
  } else {
    writeFileSync(join(repoRoot, ".bench", "bench-webhooks.md"), section + "\n")
    log("\nwrote .bench/bench-webhooks.md (BENCHMARKS.md untouched; --write to update it)")
  }
}

/** Unique submissions with QUEUE_BACKEND=postgres on one and two instances: its section, measured and rendered. */
const postgresQueuePhase = async (tmp: string, m: Awaited<ReturnType<typeof machine>>) => {
  log("PostgreSQL queue backend: unique submissions on 1 and 2 instances")
  const result = await PostgresQueueSubmissions.postgresQueueSubmissions({
    adminUrl,
    levels,
    durationS,
    warmupS,
    tmp,
    runId,
    log
  })
  const scratch = join(repoRoot, ".bench")
  mkdirSync(scratch, { recursive: true })
  writeFileSync(join(scratch, "bench-postgres-queue.json"), JSON.stringify({ machine: m, result }, null, 2))
  const section = PostgresQueueSubmissions.renderSection(
    result,
    {
      date: m.date,
      revision: m.revision,
      machine: `${m.cores} × ${m.cpu}, ${m.ramGiB.toFixed(1)} GiB, ${m.kernel}, Node ${m.node}, PostgreSQL ${m.pg.version} (synchronous_commit=${m.pg.synchronousCommit}, fsync=${m.pg.fsync}), ${m.wrkVersion}, ${m.pgbenchVersion}`
    },
    { command: `npm run bench${argv.length === 0 ? "" : ` -- ${argv.join(" ")}`}`, durationS, warmupS, levels }
  )
  if (!result.check.ok) process.exitCode = 1
  return `<!-- bench:http-postgres-queue -->\n${section}\n<!-- /bench:http-postgres-queue -->`
}

/** `--only=postgres-queue`: the postgres queue backend's submissions alone. */
const postgresQueueOnly = async (tmp: string) => {
  const m = await machine()
  const section = await postgresQueuePhase(tmp, m)
  log("")
  log(section)
  if (write) {
    writeSection(join(repoRoot, "BENCHMARKS.md"), "http-postgres-queue", section)
    log("\nwrote BENCHMARKS.md (bench:http-postgres-queue section)")
  } else {
    writeFileSync(join(repoRoot, ".bench", "bench-postgres-queue.md"), section + "\n")
    log("\nwrote .bench/bench-postgres-queue.md (BENCHMARKS.md untouched; --write to update it)")
  }
}

const main = async () => {
  const major = Number(process.versions.node.split(".")[0])
  if (major < 24)
    throw new Error(`Node ${process.version}: run through \`npm run bench\` so the project's Node 24 is used`)
  const missing = (onlyAccessLog ? ["wrk"] : onlyWebhooks ? ["psql"] : ["wrk", "pgbench", "psql"]).filter(
    (c) => !onPath(c)
  )
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.join(", ")} on PATH (Debian: apt-get install -y ${missing.includes("wrk") ? "wrk " : ""}${missing.some((c) => c !== "wrk") ? "postgresql-client" : ""})`
    )
  }
  installSignalHandlers()
  const began = performance.now()
  const tmp = mkdtempSync(join(os.tmpdir(), "formula-bench-"))
  onCleanup(`temporary directory ${tmp}`, () => removeDir(tmp))
  if (onlyAccessLog) {
    await accessLogOnly(tmp)
    return
  }
  if (onlyWebhooks) {
    await webhooksOnly(tmp)
    return
  }
  if (onlyPostgresQueue) {
    await postgresQueueOnly(tmp)
    return
  }
  const m = await machine()
  log(
    `bench: ${durationS} s per cell after ${warmupS} s warm-up, concurrency ${levels.join(", ")}; ${m.cores} × ${m.cpu}, Node ${m.node}, PostgreSQL ${m.pg.version}`
  )
  await postgresPhase(tmp)
  const postgresQueueSection = await postgresQueuePhase(tmp, m)
  await pglitePhase(tmp)
  await accessLogPhase(tmp)
  const webhooksSection = await webhooksPhase(tmp, m)
  const totalS = (performance.now() - began) / 1000
  const section = renderSection(m, totalS)
  const accessLogSection = renderAccessLogSection(m)
  const svg = chart()
  const scratch = join(repoRoot, ".bench")
  mkdirSync(scratch, { recursive: true })
  writeFileSync(
    join(scratch, "bench-http.json"),
    JSON.stringify(
      {
        machine: m,
        levels,
        durationS,
        warmupS,
        cells,
        pgbench: [...pgbench],
        bare: [...bare],
        totals: [...totals],
        notes,
        accessLog: accessLogRuns
      },
      null,
      2
    )
  )
  log("")
  log(section)
  log("")
  log(accessLogSection)
  log("")
  log(webhooksSection)
  log("")
  log(postgresQueueSection)
  if (write) {
    writeSection(join(repoRoot, "BENCHMARKS.md"), "http-postgres-queue", postgresQueueSection)
    writeSection(join(repoRoot, "BENCHMARKS.md"), "http", section)
    writeSection(join(repoRoot, "BENCHMARKS.md"), "access-log", accessLogSection)
    writeSection(join(repoRoot, "BENCHMARKS.md"), "webhooks", webhooksSection)
    writeFileSync(join(repoRoot, "BENCHMARKS-chart.svg"), svg)
    log("\nwrote BENCHMARKS.md (bench:http and bench:access-log sections) and BENCHMARKS-chart.svg")
  } else {
    writeFileSync(
      join(scratch, "bench-http.md"),
      section + "\n\n" + accessLogSection + "\n\n" + webhooksSection + "\n\n" + postgresQueueSection + "\n"
    )
    writeFileSync(join(scratch, "BENCHMARKS-chart.svg"), svg)
    log(`\nwrote .bench/bench-http.md and .bench/BENCHMARKS-chart.svg (BENCHMARKS.md untouched; --write to update it)`)
  }
  const mismatches =
    [...totals.values()].filter((t) => t.check?.ok === false).length +
    cells.filter((c) => c.check?.ok === false).length +
    [...pgbench.values()].filter((r) => !r.check.ok).length
  const problems = cells.filter((c) => c.unexpected > 0).length + mismatches + replayFailures
  // Lost or extra rows are a correctness failure, not a slow figure: say so in the exit code.
  if (mismatches > 0) process.exitCode = 1
  if (problems > 0) log(`\n${problems} cell(s) or check(s) with unexpected answers or mismatched rows: see the table`)
}

try {
  await main()
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error)
  process.exitCode = 1
} finally {
  await cleanup()
}
