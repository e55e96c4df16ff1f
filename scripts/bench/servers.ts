/**
 * The servers under test, as child processes on free ports: the service
 * (`node src/main.ts`, on PostgreSQL or on PGlite) and the bare `node:http`
 * reference (`bare-server.ts`). Both run on the Node that runs the benchmark.
 */
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort, onCleanup, type Spawned, sleep, spawnLogged, stopChild, tail } from "./processes.ts"

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))
const bareServerScript = fileURLToPath(new URL("./bare-server.ts", import.meta.url))

export interface RunningServer {
  readonly pid: number | undefined
  readonly baseUrl: string
  readonly port: number
  readonly logFile: string
  /** Milliseconds from spawn to the first good answer. */
  readonly startMs: number
  /** How the process ended, if it has (a server that dies under load says so here). */
  exited(): string | undefined
  /** The command line, with the environment it was given. */
  readonly command: string
  /** SIGTERM, then SIGKILL after the grace period; resolves with how long the exit took and whether it was forced. */
  stop(): Promise<{ readonly ms: number; readonly killed: boolean }>
}

const waitUntil = async (
  spawned: Spawned,
  logFile: string,
  what: string,
  timeoutMs: number,
  ready: () => Promise<boolean>
) => {
  let exitCode: number | null | undefined
  void spawned.exited.then((code) => (exitCode = code))
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`${what} exited (${exitCode}) before it was ready:\n${tail(logFile)}`)
    try {
      if (await ready()) return
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${tail(logFile)}`)
}

const start = async (options: {
  readonly what: string
  readonly script: string
  readonly env: Record<string, string>
  readonly dropEnv: ReadonlyArray<string>
  readonly logFile: string
  readonly graceMs: number
  readonly ready: (baseUrl: string) => Promise<boolean>
}): Promise<RunningServer> => {
  const port = await freePort()
  const baseUrl = `http://127.0.0.1:${port}`
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env, PORT: String(port) }
  for (const name of options.dropEnv) delete env[name]
  const began = performance.now()
  const spawned = spawnLogged(process.execPath, [options.script], { env, logFile: options.logFile, cwd: repoRoot })
  const stopNow = onCleanup(options.what, () => stopChild(spawned.child, options.graceMs).then(() => undefined))
  try {
    await waitUntil(spawned, options.logFile, options.what, 120_000, () => options.ready(baseUrl))
  } catch (error) {
    await stopNow()
    throw error
  }
  const startMs = performance.now() - began
  let ended: string | undefined
  void spawned.exited.then((code) => {
    ended = `exit code ${code}, signal ${spawned.child.signalCode ?? "none"}`
  })
  let stopped: { ms: number; killed: boolean } | undefined
  const stop = async () => {
    if (stopped !== undefined) return stopped
    const ms = await stopChild(spawned.child, options.graceMs)
    stopped = { ms, killed: spawned.child.signalCode === "SIGKILL" }
    await stopNow()
    return stopped
  }
  const shownEnv = Object.entries(options.env)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ")
  return {
    pid: spawned.child.pid,
    baseUrl,
    port,
    logFile: options.logFile,
    startMs,
    exited: () => ended,
    command: `${[`PORT=${port}`, shownEnv].filter((s) => s !== "").join(" ")} node ${options.script.startsWith(repoRoot) ? options.script.slice(repoRoot.length) : options.script}`,
    stop
  }
}

/**
 * The service. `QUEUE_CAPACITY` is raised so that a run's tens of thousands
 * of never-consumed FormulaSubmitted messages cannot fill the queue (the
 * default, 10,000, would turn later new make-ups into 503s).
 */
export const startService = (options: {
  readonly database: { readonly url: string } | { readonly dataDir: string }
  readonly logFile: string
  /** Shown instead of the real URL in the report. */
  readonly shownUrl?: string
  /** More settings (ACCESS_LOG, LOG_FORMAT, …). */
  readonly env?: Record<string, string>
}): Promise<RunningServer> => {
  const dbEnv: Record<string, string> =
    "url" in options.database ? { DATABASE_URL: options.database.url } : { DATA_DIR: options.database.dataDir }
  return start({
    what: "url" in options.database ? "service on PostgreSQL" : "service on PGlite",
    script: join(repoRoot, "src/main.ts"),
    env: { ...dbEnv, QUEUE_CAPACITY: "10000000", ...options.env },
    dropEnv: "url" in options.database ? ["DATA_DIR"] : ["DATABASE_URL"],
    logFile: options.logFile,
    graceMs: 20_000,
    ready: async (baseUrl) => (await fetch(`${baseUrl}/health`)).status === 200
  }).then((server) =>
    options.shownUrl === undefined || !("url" in options.database)
      ? server
      : { ...server, command: server.command.replace(options.database.url, options.shownUrl), stop: server.stop }
  )
}

export const startBareServer = (logFile: string): Promise<RunningServer> =>
  start({
    what: "bare node:http server",
    script: bareServerScript,
    env: {},
    dropEnv: [],
    logFile,
    graceMs: 5_000,
    ready: async (baseUrl) => {
      const response = await fetch(`${baseUrl}/formulas`, { method: "POST", body: "{}" })
      await response.arrayBuffer()
      return response.status === 409
    }
  })

export interface PostResult {
  readonly status: number
  readonly replayed: boolean
  readonly body: string
}

/** One `POST /formulas` (for priming and for feature detection). */
export const post = async (baseUrl: string, body: string, idempotencyKey?: string): Promise<PostResult> => {
  const headers: Record<string, string> = { "content-type": "application/json" }
  if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey
  const response = await fetch(`${baseUrl}/formulas`, { method: "POST", headers, body })
  return {
    status: response.status,
    replayed: response.headers.get("idempotent-replayed") === "true",
    body: await response.text()
  }
}
