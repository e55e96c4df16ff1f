/**
 * The real entry point, run the way a user runs it (`node src/main.ts`, no
 * DATABASE_URL, so the embedded database under DATA_DIR). Protects: the
 * README's run command works; no request hangs while the server starts;
 * SIGTERM shuts it down cleanly (exit code 0); what was stored survives a
 * restart on the same DATA_DIR.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { jsonText, summerBreeze, uniqueTag } from "../support/Formulas.ts"

const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const hasExited = (running: Running) => running.child.exitCode !== null || running.child.signalCode !== null

/** The end of the server's output, on one line (reporters show only a message's first line). */
const outputOf = (running: Running) => `server output: ${JSON.stringify(running.output().slice(-3000))}`

/** A port nobody listens on right now: bind 0, read it, close. */
const freePort = Effect.callback<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const freshDataDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "formula-intake-process-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** `node src/main.ts` with DATA_DIR and PORT and without DATABASE_URL; killed with the scope if still running. */
const launch = (dataDir: string, port: number) =>
  Effect.acquireRelease(
    Effect.sync((): Running => {
      const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: String(port) }
      delete env["DATABASE_URL"]
      const child = spawn(process.execPath, ["src/main.ts"], {
        cwd: projectRoot,
        env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout!.on("data", (chunk) => (output += chunk))
      child.stderr!.on("data", (chunk) => (output += chunk))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
      )
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

type Attempt =
  | { readonly _tag: "Answered"; readonly status: number; readonly text: string; readonly headers: Headers }
  | { readonly _tag: "Refused" }
  | { readonly _tag: "Failed"; readonly reason: string }

/** One request that cannot hang: aborted after 2 s. */
const attempt = (port: number, method: string, path: string, body?: string) =>
  Effect.promise(async (): Promise<Attempt> => {
    try {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, {
        method,
        signal: AbortSignal.timeout(2_000),
        ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } })
      })
      const text = await response.text()
      return { _tag: "Answered", status: response.status, text, headers: response.headers }
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code
      if (code === "ECONNREFUSED") return { _tag: "Refused" }
      const name = (error as { name?: string }).name
      return { _tag: "Failed", reason: name === "TimeoutError" ? "no answer within 2 s (hangs)" : String(error) }
    }
  })

/** The answer to a request the started server must give. */
const answered = (running: Running, port: number, method: string, path: string, body?: string) =>
  Effect.gen(function* () {
    const result = yield* attempt(port, method, path, body)
    if (result._tag !== "Answered") {
      return assert.fail(
        `${method} ${path}: ${result._tag === "Refused" ? "refused" : result.reason}; ${outputOf(running)}`
      )
    }
    return result
  })

/**
 * Polls /health until 200 (30 s at most). Refused connections are fine while the server starts;
 * an accepted request that does not answer within 2 s, or any other failure, is not.
 */
const awaitHealthy = (running: Running, port: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      if (hasExited(running)) {
        return assert.fail(`the server exited during start-up (code ${running.child.exitCode}); ${outputOf(running)}`)
      }
      const result = yield* attempt(port, "GET", "/health")
      if (result._tag === "Failed")
        return assert.fail(`GET /health during start-up: ${result.reason}; ${outputOf(running)}`)
      if (result._tag === "Answered" && result.status === 200) return
      yield* Effect.sleep(Duration.millis(50))
    }
    return assert.fail(`/health did not answer 200 within 30 s; ${outputOf(running)}`)
  })

/** Sends SIGTERM and waits (15 s at most) for the exit. */
const terminate = (running: Running) =>
  Effect.gen(function* () {
    running.child.kill("SIGTERM")
    const exit = yield* Effect.promise(() => running.exited).pipe(
      Effect.timeoutOrElse({
        duration: Duration.seconds(15),
        orElse: () => Effect.succeed(undefined)
      })
    )
    if (exit === undefined) return assert.fail(`the server did not exit within 15 s of SIGTERM; ${outputOf(running)}`)
    return exit
  })

describe("node src/main.ts", () => {
  it.live(
    "starts on DATA_DIR and PORT without a hanging request, stores a formula, and exits 0 within 15 s of SIGTERM",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* freshDataDir
        const port = yield* freePort
        const server = yield* launch(dataDir, port)
        yield* awaitHealthy(server, port)
        const created = yield* answered(server, port, "POST", "/formulas", jsonText(summerBreeze(uniqueTag())))
        assert.strictEqual(created.status, 201, created.text)

        const exit = yield* terminate(server)
        assert.deepStrictEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; ${outputOf(server)}`)
      }),
    120_000
  )

  it.live(
    "a formula stored before SIGTERM is served unchanged after a restart on the same DATA_DIR",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* freshDataDir
        const port = yield* freePort
        const formula = summerBreeze(uniqueTag())

        const first = yield* launch(dataDir, port)
        yield* awaitHealthy(first, port)
        const created = yield* answered(first, port, "POST", "/formulas", jsonText(formula))
        assert.strictEqual(created.status, 201, created.text)
        const location = created.headers.get("location")!
        const stored = yield* answered(first, port, "GET", location)
        assert.strictEqual(stored.status, 200, stored.text)
        // The exit code is the other test's business; here only that the process is gone.
        yield* terminate(first)

        const second = yield* launch(dataDir, port)
        yield* awaitHealthy(second, port)
        const again = yield* answered(second, port, "GET", location)
        assert.strictEqual(again.status, 200, again.text)
        assert.deepStrictEqual(JSON.parse(again.text), JSON.parse(stored.text))
        assert.deepStrictEqual(JSON.parse(again.text), JSON.parse(created.text))
        // Still the same make-up to the restarted server: a duplicate naming the stored formula.
        const duplicate = yield* answered(second, port, "POST", "/formulas", jsonText({ ...formula, name: "Other" }))
        assert.strictEqual(duplicate.status, 409, duplicate.text)
        assert.strictEqual(JSON.parse(duplicate.text).existingId, JSON.parse(stored.text).id)
      }),
    120_000
  )
})
