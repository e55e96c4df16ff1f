/**
 * The real server (`node src/main.ts`) as a child process, for tests of what
 * an operator meets: start-up messages, exit codes, signals.
 */
import { assert } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<Exited>
}

export const hasExited = (running: Running) => running.child.exitCode !== null || running.child.signalCode !== null

/** The end of the server's output, on one line (reporters show only a message's first line). */
export const outputOf = (running: Running) => `server output: ${JSON.stringify(running.output().slice(-3000))}`

/** A port nobody listens on right now: bind 0, read it, close. */
export const freePort = Effect.callback<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A temporary directory, removed with the scope. */
export const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "formula-intake-process-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/**
 * `node src/main.ts` with exactly the given variables on top of the test's
 * environment (`undefined` removes one; DATABASE_URL is removed unless given);
 * killed with the scope if still running.
 */
export const spawnServer = (env: Record<string, string | undefined>) =>
  Effect.acquireRelease(
    Effect.sync((): Running => {
      const childEnv: NodeJS.ProcessEnv = { ...process.env }
      delete childEnv["DATABASE_URL"]
      for (const [name, value] of Object.entries(env)) {
        if (value === undefined) delete childEnv[name]
        else childEnv[name] = value
      }
      const child = spawn(process.execPath, ["src/main.ts"], {
        cwd: projectRoot,
        env: childEnv,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout!.on("data", (chunk) => (output += chunk))
      child.stderr!.on("data", (chunk) => (output += chunk))
      const exited = new Promise<Exited>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })))
      return { child, output: () => output, exited }
    }),
    (running) =>
      hasExited(running)
        ? Effect.void
        : Effect.promise(() => {
            running.child.kill("SIGKILL")
            return running.exited
          })
  )

/** Waits (at most `within`) for the process to exit by itself. */
export const awaitExit = (running: Running, within: Duration.Input) =>
  Effect.gen(function* () {
    const exit = yield* Effect.promise(() => running.exited).pipe(
      Effect.timeoutOrElse({ duration: within, orElse: () => Effect.succeed(undefined) })
    )
    if (exit === undefined) {
      return assert.fail(
        `the server did not exit within ${Duration.format(Duration.fromInputUnsafe(within))}; ${outputOf(running)}`
      )
    }
    return exit
  })

/** Runs the server with `env` until it exits by itself (at most `within`). */
export const runToExit = (env: Record<string, string | undefined>, within: Duration.Input = Duration.seconds(30)) =>
  Effect.gen(function* () {
    const running = yield* spawnServer(env)
    const exit = yield* awaitExit(running, within)
    return { ...exit, output: running.output() }
  })

/** The JSON log lines of an output (LOG_FORMAT=json), other lines skipped. */
export const jsonLines = (output: string): Array<{ readonly message: unknown; readonly level: string }> =>
  output.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return []
    try {
      return [JSON.parse(line)]
    } catch {
      return []
    }
  })

/** A stack trace or an Effect error dump in the output. */
export const assertNoStackTrace = (output: string) => {
  assert.notMatch(output, /\n\s+at /, `no stack trace: ${JSON.stringify(output)}`)
  assert.notInclude(output, "ConfigError", `no Effect error dump: ${JSON.stringify(output)}`)
  assert.notInclude(output, "SchemaError", `no Effect error dump: ${JSON.stringify(output)}`)
}

/**
 * A PostgreSQL database of its own on the server at `url` (a server process reads only DATABASE_URL, so a
 * schema will not do), dropped with the scope; returns its URL.
 */
export const ownDatabase = (url: string, prefix: string) =>
  Effect.gen(function* () {
    const name = `${prefix}_${process.pid}_${randomBytes(4).toString("hex")}`
    const admin = PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })
    const run = (statement: (sql: PgClient.PgClient) => Effect.Effect<unknown, unknown>) =>
      PgClient.PgClient.use(statement).pipe(Effect.provide(admin))
    yield* Effect.acquireRelease(
      run((sql) => sql`CREATE DATABASE ${sql(name)}`),
      () => run((sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`).pipe(Effect.ignore)
    )
    const target = new URL(url)
    target.pathname = `/${name}`
    return target.toString()
  })
