/**
 * The real entry point, run the way a user runs it (`node src/main.ts`, no
 * DATABASE_URL, so the embedded database under DATA_DIR). Protects: the
 * README's run command works; no request hangs while the server starts;
 * SIGTERM shuts it down cleanly (exit code 0), answering waiting long polls
 * at once and logging its lifecycle; what was stored survives a restart on
 * the same DATA_DIR, and a message in flight at shutdown is delivered again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Net from "node:net"
import { jsonText, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import {
  awaitExit,
  freePort,
  hasExited,
  jsonLines,
  outputOf,
  type Running,
  spawnServer,
  tempDir as freshDataDir
} from "./ServerProcess.ts"

/** `node src/main.ts` with DATA_DIR and PORT (and `env`) and without DATABASE_URL; killed with the scope if still running. */
const launch = (dataDir: string, port: number, env: Record<string, string> = {}) =>
  spawnServer({ ...env, DATA_DIR: dataDir, PORT: String(port) })

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
      return {
        _tag: "Failed",
        reason: name === "TimeoutError" ? "no answer within 2 s (hangs)" : `${String(error)} (${code ?? "no code"})`
      }
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
 * Polls /health until 200 (60 s at most: a first start on a loaded machine initialises the embedded database slowly). Refused connections are fine while the server starts;
 * an accepted request that does not answer within 2 s, or any other failure, is not.
 */
const awaitHealthy = (running: Running, port: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 60_000
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
    return assert.fail(`/health did not answer 200 within 60 s; ${outputOf(running)}`)
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

/**
 * POST /queue/receive over a raw keep-alive connection that the client never closes; resolves
 * with what it read once the server closes it.
 */
const keepAlivePoll = (port: number, body: string) =>
  new Promise<string>((resolve) => {
    let received = ""
    const socket = Net.connect(port, "127.0.0.1", () =>
      socket.write(
        `POST /queue/receive HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
      )
    )
    socket.on("data", (chunk) => (received += chunk))
    socket.on("error", () => {})
    socket.on("close", () => resolve(received))
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
    180_000
  )

  it.live(
    "SIGTERM with long polls waiting: they get 200 {messages: []} at once, exit 0 before the 10 s grace, lifecycle logged; the message in flight is delivered again after a restart",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* freshDataDir
        const port = yield* freePort
        const first = yield* launch(dataDir, port, { LOG_FORMAT: "json" })
        yield* awaitHealthy(first, port)
        const created = yield* answered(first, port, "POST", "/formulas", jsonText(summerBreeze(uniqueTag())))
        assert.strictEqual(created.status, 201, created.text)
        const received = yield* answered(first, port, "POST", "/queue/receive", '{ "visibilityTimeoutMs": 600000 }')
        const inFlight = JSON.parse(received.text).messages
        assert.strictEqual(inFlight.length, 1, received.text)

        // Three long polls, waiting (the queue says so) before the signal.
        const polls = Array.from({ length: 3 }, () =>
          fetch(`http://127.0.0.1:${port}/queue/receive`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ waitMs: 20_000 }),
            signal: AbortSignal.timeout(30_000)
          }).then(
            async (response) => ({ status: response.status, text: await response.text() }),
            (error) => ({ status: 0, text: String(error) })
          )
        )
        const waitingSince = Date.now()
        // And one from a client that keeps its connection open after the answer (keep-alive, never
        // closing it): the server must close it, or it would wait for it until the grace runs out.
        const keptAlive = keepAlivePoll(port, JSON.stringify({ waitMs: 20_000 }))
        while (true) {
          const stats = yield* answered(first, port, "GET", "/queue/stats")
          if (JSON.parse(stats.text).waiting === 4) break
          assert.isBelow(Date.now() - waitingSince, 15_000, `the polls never waited: ${stats.text}`)
          yield* Effect.sleep(Duration.millis(20))
        }

        const signalledAt = Date.now()
        first.child.kill("SIGTERM")
        const exit = yield* awaitExit(first, Duration.seconds(15))
        const tookMs = Date.now() - signalledAt
        assert.deepStrictEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; ${outputOf(first)}`)
        assert.isBelow(tookMs, 9_000, `exited before the 10 s grace ran out; ${outputOf(first)}`)
        const raw = yield* Effect.promise(() => keptAlive)
        assert.match(raw, /^HTTP\/1\.1 200 /, raw)
        assert.deepStrictEqual(JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4)), { messages: [] })
        for (const poll of yield* Effect.promise(() => Promise.all(polls))) {
          assert.strictEqual(poll.status, 200, poll.text)
          assert.deepStrictEqual(JSON.parse(poll.text), { messages: [] })
        }
        // All interfaces: [::], or 0.0.0.0 where there is no IPv6.
        const lifecycle = jsonLines(first.output())
          .map((line) =>
            String(line.message).replace(/^listening on http:\/\/(\[::\]|0\.0\.0\.0):/, "listening on ALL:")
          )
          .filter((message) => /^(recovered|listening|shutting down|stopped)/.test(message))
        assert.deepStrictEqual(
          lifecycle,
          ["recovered 0 messages from the outbox", `listening on ALL:${port}`, "shutting down", "stopped"],
          outputOf(first)
        )

        // The message that was in flight comes back (the outbox is the truth).
        // On another port: in the moment between the two processes, another test's server may take this one.
        const secondPort = yield* freePort
        const second = yield* launch(dataDir, secondPort, { LOG_FORMAT: "json" })
        yield* awaitHealthy(second, secondPort)
        assert.include(
          jsonLines(second.output()).map((line) => line.message),
          "recovered 1 messages from the outbox",
          outputOf(second)
        )
        const again = yield* answered(second, secondPort, "POST", "/queue/receive", "{}")
        assert.deepStrictEqual(
          JSON.parse(again.text).messages.map((message: { readonly messageId: string }) => message.messageId),
          [inFlight[0].messageId]
        )
      }),
    180_000
  )
})
