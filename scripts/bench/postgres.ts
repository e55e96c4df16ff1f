/**
 * PostgreSQL side of the benchmark: a fresh database per run (created and
 * dropped here), row counts for the sanity checks, server facts for the
 * report, and pgbench running `submission.pgbench.sql`.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { onCleanup, runOk } from "./processes.ts"

export const pgbenchScript = fileURLToPath(new URL("./submission.pgbench.sql", import.meta.url))

/** `url` with another database name. */
export const withDatabase = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** A URL with any password hidden, for the report. */
export const redact = (url: string): string => {
  const parsed = new URL(url)
  if (parsed.password !== "") parsed.password = "***"
  return parsed.toString()
}

export const psql = (url: string, sql: string): Promise<string> =>
  runOk("psql", ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]).then((out) => out.trim())

let checkpointRefused = false

/**
 * Flushes PostgreSQL's dirty pages before a measured cell, so that no cell
 * pays for the checkpoint its predecessor's writes made due (pgbench and the
 * service alike start clean). Needs superuser or `pg_checkpoint`; without it
 * the cells run as they come, and `checkpointNote()` says so.
 */
export const checkpoint = async (url: string): Promise<void> => {
  if (checkpointRefused) return
  await psql(url, "CHECKPOINT").catch(() => {
    checkpointRefused = true
  })
}

export const checkpointNote = (): string =>
  checkpointRefused
    ? "PostgreSQL refused CHECKPOINT (not superuser): cells were not started from a fresh checkpoint."
    : "Every PostgreSQL cell (pgbench and the service's unique load) started right after a CHECKPOINT."

/** Creates `database` through `adminUrl` and registers its DROP for clean-up; returns its URL. */
export const createDatabase = async (adminUrl: string, database: string): Promise<string> => {
  await psql(adminUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  await psql(adminUrl, `CREATE DATABASE ${database}`)
  onCleanup(`database ${database}`, async () => {
    await psql(adminUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  })
  return withDatabase(adminUrl, database)
}

export interface RowCounts {
  readonly formulas: number
  readonly materials: number
  readonly outbox: number
}

export const rowCounts = async (url: string): Promise<RowCounts> => {
  const out = await psql(
    url,
    "SELECT (SELECT count(*) FROM formulas), (SELECT count(*) FROM formula_materials), (SELECT count(*) FROM outbox)"
  )
  const [formulas, materials, outbox] = out.split("|").map(Number)
  return { formulas: formulas!, materials: materials!, outbox: outbox! }
}

/** Row counts once they stop changing (requests in flight when the load generator stopped may still commit). */
export const settledRowCounts = async (url: string): Promise<RowCounts> => {
  let previous = await rowCounts(url)
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    const next = await rowCounts(url)
    if (next.formulas === previous.formulas && next.outbox === previous.outbox) return next
    previous = next
  }
  return previous
}

export const serverFacts = async (url: string) => {
  const setting = (name: string) => psql(url, `SELECT current_setting('${name}')`)
  return {
    version: await setting("server_version"),
    synchronousCommit: await setting("synchronous_commit"),
    fsync: await setting("fsync"),
    sharedBuffers: await setting("shared_buffers"),
    maxConnections: await setting("max_connections")
  }
}

export interface PgbenchResult {
  readonly tps: number
  readonly transactions: number
  readonly failed: number
  readonly latencyMs: { readonly p50: number; readonly p99: number }
  readonly command: string
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

/**
 * pgbench, one thread, `clients` connections, for `durationS` seconds, logging
 * every transaction (under `logPrefix`) to get p50/p99 latency. `script`
 * defaults to the submission statement; `variables` are passed with `-D`.
 */
export const runPgbench = async (options: {
  readonly url: string
  readonly clients: number
  readonly durationS: number
  readonly logPrefix?: string | undefined
  readonly onSpawn?: (pid: number) => void
  readonly script?: string | undefined
  readonly variables?: Readonly<Record<string, string | number>> | undefined
}): Promise<PgbenchResult> => {
  const args = [
    "-n",
    "-M",
    "prepared",
    "-j",
    "1",
    "-c",
    String(options.clients),
    "-T",
    String(options.durationS),
    ...(options.logPrefix === undefined ? [] : ["-l", `--log-prefix=${options.logPrefix}`]),
    ...Object.entries(options.variables ?? {}).flatMap(([name, value]) => ["-D", `${name}=${value}`]),
    "-f",
    options.script ?? pgbenchScript,
    options.url
  ]
  const stdout = await runOk("pgbench", args, options.onSpawn === undefined ? {} : { onSpawn: options.onSpawn })
  const number = (pattern: RegExp) => {
    const match = stdout.match(pattern)
    if (match === null) throw new Error(`pgbench output has no ${pattern}:\n${stdout}`)
    return Number(match[1])
  }
  const tps = number(/tps = ([\d.]+) \(without initial connection time\)/)
  const transactions = number(/number of transactions actually processed: (\d+)/)
  const failedMatch = stdout.match(/number of failed transactions: (\d+)/)
  let latencies: Array<number> = []
  if (options.logPrefix !== undefined) {
    const dir = dirname(options.logPrefix)
    const prefix = basename(options.logPrefix) + "."
    for (const file of readdirSync(dir).filter((f) => f.startsWith(prefix))) {
      const path = join(dir, file)
      for (const line of readFileSync(path, "utf8").split("\n")) {
        // client_id transaction_no time(µs) script_no time_epoch time_us
        const fields = line.split(" ")
        if (fields.length >= 3 && fields[2] !== "failed" && fields[2] !== "skipped") latencies.push(Number(fields[2]))
      }
      rmSync(path)
    }
    latencies = latencies.filter(Number.isFinite).sort((a, b) => a - b)
  }
  return {
    tps,
    transactions,
    failed: failedMatch === null ? 0 : Number(failedMatch[1]),
    latencyMs: { p50: percentile(latencies, 50) / 1000, p99: percentile(latencies, 99) / 1000 },
    command: `pgbench ${args.map((a) => (a === options.url ? redact(a) : a)).join(" ")}`
  }
}
