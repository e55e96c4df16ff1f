/**
 * What an operator meets when the server cannot start, run as they run it
 * (`node src/main.ts`). Protects: every bad variable is listed in one plain
 * message and nothing is opened; an unreachable database is waited for
 * (DATABASE_WAIT_MS), each attempt logged, then named with its password
 * hidden; a port in use is named before the database is opened; HOST chooses
 * the interface; a DATA_DIR under /proc fails instead of hanging.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { existsSync } from "node:fs"
import { writeFile } from "node:fs/promises"
import * as Net from "node:net"
import { networkInterfaces } from "node:os"
import { join } from "node:path"
import { definitions } from "../../src/Settings.ts"
import {
  assertNoStackTrace,
  awaitExit,
  freePort,
  jsonLines,
  outputOf,
  runToExit,
  spawnServer,
  tempDir
} from "./ServerProcess.ts"

/** A bad value for every variable the service reads (the test fails if a setting is added without one). */
const badValues: Record<string, string> = {
  PORT: "abc",
  HOST: "not a host",
  DATABASE_URL: "mysql://formula:s3cret@db.example/intake",
  DATA_DIR: "/proc/formula-intake/data",
  DATABASE_WAIT_MS: "-1",
  LOG_LEVEL: "loud",
  LOG_FORMAT: "xml",
  ACCESS_LOG: "maybe",
  QUEUE_CAPACITY: "0",
  QUEUE_VISIBILITY_TIMEOUT_MS: "soon",
  QUEUE_MAX_DELIVERIES: "1.5",
  QUEUE_BACKEND: "redis",
  QUEUE_POLL_INTERVAL_MS: "5",
  INSTANCE_LOCK_WAIT_MS: "-5",
  FINGERPRINT_CACHE_SIZE: "-1",
  OUTBOX_RELAY_INTERVAL_MS: "1",
  IDEMPOTENCY_KEY_TTL_HOURS: "0",
  GROUP_COMMIT_MAX_BATCH: "0",
  GROUP_COMMIT_LINGER_MS: "5000",
  GROUP_COMMIT_WORKERS: "many",
  WEBHOOK_RETRY_SCHEDULE: "0,5x",
  WEBHOOK_CONCURRENCY: "0",
  WEBHOOK_DISABLE_AFTER_HOURS: "forever",
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: "sometimes"
}

/** Listens on 127.0.0.1:`port` for as long as the scope lasts. */
const occupy = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<Net.Server>((resume) => {
      const server = Net.createServer((socket) => socket.destroy())
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )

const errorLines = (output: string) =>
  jsonLines(output)
    .filter((line) => line.level === "ERROR")
    .map((line) => String(line.message))

describe("start-up of node src/main.ts", () => {
  it.live(
    "every bad variable is listed in one plain message (variable, value, what is expected), exit 1, secrets redacted",
    () =>
      Effect.gen(function* () {
        assert.deepStrictEqual(
          Object.keys(badValues).sort(),
          Object.values(definitions)
            .map((definition) => definition.variable)
            .sort(),
          "a bad value for every setting"
        )
        const { code, output } = yield* runToExit(badValues)
        assert.strictEqual(code, 1, output)
        assertNoStackTrace(output)
        assert.include(output, `invalid configuration, nothing was started (${Object.keys(badValues).length} bad`)
        for (const [variable, value] of Object.entries(badValues)) {
          const shown = variable === "DATABASE_URL" ? "mysql://formula:***@db.example/intake" : value
          assert.include(output, `${variable}=${JSON.stringify(shown)}: expected `, output)
        }
        assert.notInclude(output, "s3cret")
        // One message: its header once, one line per variable, nothing else.
        assert.strictEqual(output.trim().split("\n").length, 1 + Object.keys(badValues).length, output)
      }),
    60_000
  )

  it.live(
    "a bad variable opens nothing: DATA_DIR is not created",
    () =>
      Effect.gen(function* () {
        const dataDir = join(yield* tempDir, "data")
        const { code, output } = yield* runToExit({ DATA_DIR: dataDir, PORT: "99999" })
        assert.strictEqual(code, 1, output)
        assert.include(output, 'PORT="99999": expected a whole number from 0 to 65535')
        assert.isFalse(existsSync(dataDir), "DATA_DIR was created")
      }),
    60_000
  )

  it.live(
    "DATA_DIR under /proc: a message naming DATA_DIR and exit 1, no hang",
    () =>
      Effect.gen(function* () {
        const { code, output } = yield* runToExit({ DATA_DIR: "/proc/formula-intake", PORT: "0" })
        assert.strictEqual(code, 1, output)
        assert.include(output, 'DATA_DIR="/proc/formula-intake": expected a directory path on a real filesystem')
        assertNoStackTrace(output)
      }),
    60_000
  )

  it.live(
    "DATA_DIR that cannot be a directory (a file's child): a message naming DATA_DIR and exit 1",
    () =>
      Effect.gen(function* () {
        const file = join(yield* tempDir, "a-file")
        yield* Effect.promise(() => writeFile(file, ""))
        const { code, output } = yield* runToExit({ DATA_DIR: join(file, "data"), PORT: "0", LOG_FORMAT: "json" })
        assert.strictEqual(code, 1, output)
        const errors = errorLines(output)
        assert.strictEqual(errors.length, 1, output)
        assert.include(errors[0]!, `DATA_DIR=${JSON.stringify(join(file, "data"))} is not a writable directory`)
        assertNoStackTrace(output)
      }),
    60_000
  )

  it.live(
    "an unreachable database is retried for DATABASE_WAIT_MS, each attempt logged, then named (password redacted), exit 1",
    () =>
      Effect.gen(function* () {
        const closedPort = yield* freePort
        const { code, output } = yield* runToExit({
          DATABASE_URL: `postgres://formula:s3cret@127.0.0.1:${closedPort}/intake`,
          DATABASE_WAIT_MS: "1500",
          PORT: "0",
          LOG_FORMAT: "json"
        })
        assert.strictEqual(code, 1, output)
        assertNoStackTrace(output)
        assert.notInclude(output, "s3cret")
        const shown = `DATABASE_URL=postgres://formula:***@127.0.0.1:${closedPort}/intake`
        const attempts = jsonLines(output).filter(
          (line) => line.level === "WARN" && String(line.message).startsWith("database not reachable (attempt ")
        )
        assert.isAtLeast(attempts.length, 2, output)
        for (const attempt of attempts) assert.include(String(attempt.message), shown)
        const errors = errorLines(output)
        assert.strictEqual(errors.length, 1, output)
        assert.include(errors[0]!, `${shown} could not be reached within DATABASE_WAIT_MS=1500`)
        assert.include(errors[0]!, "ECONNREFUSED")
      }),
    60_000
  )

  it.live(
    "a port in use is named at once, before the database is opened (DATA_DIR not created), exit 1",
    () =>
      Effect.gen(function* () {
        const port = yield* freePort
        yield* occupy(port)
        const dataDir = join(yield* tempDir, "data")
        const { code, output } = yield* runToExit({
          PORT: String(port),
          HOST: "127.0.0.1",
          DATA_DIR: dataDir,
          LOG_FORMAT: "json"
        })
        assert.strictEqual(code, 1, output)
        assertNoStackTrace(output)
        const errors = errorLines(output)
        assert.strictEqual(errors.length, 1, output)
        assert.include(errors[0]!, `PORT=${port}: the port is already in use`)
        assert.isFalse(existsSync(dataDir), "the database was opened before the port was checked")
      }),
    60_000
  )

  it.live(
    "HOST chooses the interface: HOST=127.0.0.1 listens there only, and says so",
    () =>
      Effect.gen(function* () {
        const port = yield* freePort
        const server = yield* spawnServer({
          PORT: String(port),
          HOST: "127.0.0.1",
          DATA_DIR: yield* tempDir,
          LOG_FORMAT: "json"
        })
        const deadline = Date.now() + 60_000
        while (!jsonLines(server.output()).some((line) => String(line.message).startsWith("listening on "))) {
          assert.isBelow(Date.now(), deadline, `no listening line; ${outputOf(server)}`)
          assert.isNull(server.child.exitCode, `exited; ${outputOf(server)}`)
          yield* Effect.sleep(Duration.millis(50))
        }
        const listening = jsonLines(server.output()).find((line) => String(line.message).startsWith("listening on "))!
        assert.strictEqual(listening.message, `listening on http://127.0.0.1:${port}`)
        const health = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`))
        assert.strictEqual(health.status, 200)

        // Another address of this machine, if it has one, is not listened on.
        const other = Object.values(networkInterfaces())
          .flat()
          .find((address) => address !== undefined && address.family === "IPv4" && !address.internal)
        if (other !== undefined) {
          const refused = yield* Effect.promise(() =>
            fetch(`http://${other.address}:${port}/health`, { signal: AbortSignal.timeout(2_000) }).then(
              () => false,
              (error) => (error as { cause?: { code?: string } }).cause?.code === "ECONNREFUSED"
            )
          )
          assert.isTrue(refused, `${other.address}:${port} refuses connections`)
        }

        server.child.kill("SIGTERM")
        const exit = yield* awaitExit(server, Duration.seconds(15))
        assert.deepStrictEqual(exit, { code: 0, signal: null }, outputOf(server))
      }),
    120_000
  )
})
