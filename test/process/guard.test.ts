/**
 * The guard as an operator meets it, with real server processes:
 *
 * - PostgreSQL (a database of its own): a second instance with the in-memory
 *   queue on the same database waits INSTANCE_LOCK_WAIT_MS, then exits 1 with
 *   one message naming QUEUE_BACKEND=postgres and no stack trace, never having
 *   read the outbox (no "recovered" line) nor listened; a rolling restart (the
 *   second waiting, the first sent SIGTERM) lets the second start and serve
 *   what the first stored.
 * - Instances with QUEUE_BACKEND=postgres on one database start side by side;
 *   an in-memory one beside them is refused.
 * - The embedded database: a second process on the same DATA_DIR is refused the
 *   same way; after the holder is SIGKILLed, its lock file (left behind) is
 *   taken over at once and the data is there.
 *
 * Waits are for real events (log lines, exits, HTTP answers), with generous bounds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { postgresUrl } from "../support/Databases.ts"
import { jsonText, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import {
  assertNoStackTrace,
  awaitExit,
  freePort,
  hasExited,
  jsonLines,
  outputOf,
  ownDatabase,
  type Running,
  spawnServer,
  tempDir
} from "./ServerProcess.ts"

/** The server with `env` (LOG_FORMAT=json, HOST=127.0.0.1, a free PORT); returns it and its port. */
const start = (env: Record<string, string>) =>
  Effect.gen(function* () {
    const port = yield* freePort
    const running = yield* spawnServer({ ...env, PORT: String(port), HOST: "127.0.0.1", LOG_FORMAT: "json" })
    return { running, port }
  })

/** Waits (at most 60 s) for a JSON log line whose message includes `text`; fails if the process exits first. */
const awaitLine = (running: Running, text: string) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 60_000
    for (;;) {
      const line = jsonLines(running.output()).find((line) => String(line.message).includes(text))
      if (line !== undefined) return String(line.message)
      assert.isFalse(hasExited(running), `exited before logging "${text}"; ${outputOf(running)}`)
      assert.isBelow(Date.now(), deadline, `no "${text}" line within 60 s; ${outputOf(running)}`)
      yield* Effect.sleep(Duration.millis(50))
    }
  })

const post = (port: number, body: string) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}/formulas`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
      signal: AbortSignal.timeout(10_000)
    }).then(async (response) => ({ status: response.status, json: (await response.json()) as { readonly id: string } }))
  )

const getFormula = (port: number, id: string) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}/formulas/${id}`, { signal: AbortSignal.timeout(10_000) }).then(
      (response) => response.status
    )
  )

/** The second instance's whole output, after it exited by itself: one error line, the refusal. */
const assertRefused = (running: Running, exit: { readonly code: number | null }, expected: ReadonlyArray<string>) => {
  assert.strictEqual(exit.code, 1, outputOf(running))
  const output = running.output()
  assertNoStackTrace(output)
  const errors = jsonLines(output).filter((line) => line.level === "ERROR")
  assert.strictEqual(errors.length, 1, `one error line; ${outputOf(running)}`)
  for (const text of expected) assert.include(String(errors[0]!.message), text)
  const messages = jsonLines(output).map((line) => String(line.message))
  assert.isFalse(
    messages.some((message) => message.startsWith("recovered ")),
    `the refused instance never read the outbox; ${outputOf(running)}`
  )
  assert.isFalse(
    messages.some((message) => message.startsWith("listening on")),
    `nor listened; ${outputOf(running)}`
  )
}

describe.skipIf(postgresUrl === undefined)("the in-memory queue's guard on one PostgreSQL database", () => {
  it.live(
    "a second in-memory instance is refused after INSTANCE_LOCK_WAIT_MS: exit 1, one message naming QUEUE_BACKEND=postgres, no stack trace",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* ownDatabase(postgresUrl!, "guard_refused")
        const first = yield* start({ DATABASE_URL: databaseUrl })
        yield* awaitLine(first.running, "listening on")

        const began = Date.now()
        const second = yield* start({ DATABASE_URL: databaseUrl, INSTANCE_LOCK_WAIT_MS: "1500" })
        const waiting = yield* awaitLine(second.running, "waiting up to")
        assert.include(
          waiting,
          "another instance with the in-memory queue (QUEUE_BACKEND=memory) is running on database"
        )
        const exit = yield* awaitExit(second.running, Duration.seconds(60))
        assert.isAtLeast(Date.now() - began, 1_500, "it waited INSTANCE_LOCK_WAIT_MS first")
        assertRefused(second.running, exit, [
          "another instance with the in-memory queue (QUEUE_BACKEND=memory) is running on database",
          "INSTANCE_LOCK_WAIT_MS=1500",
          "two in-memory queues over one outbox would each deliver every message",
          "QUEUE_BACKEND=postgres"
        ])

        // The first is unharmed.
        assert.strictEqual((yield* post(first.port, jsonText(summerBreeze(uniqueTag())))).status, 201)
        first.running.child.kill("SIGTERM")
        assert.strictEqual((yield* awaitExit(first.running, Duration.seconds(15))).code, 0)
      }),
    120_000
  )

  it.live(
    "rolling restart: the second waits, the first gets SIGTERM, the second starts and serves what the first stored",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* ownDatabase(postgresUrl!, "guard_rolling")
        const first = yield* start({ DATABASE_URL: databaseUrl })
        yield* awaitLine(first.running, "listening on")
        const created = yield* post(first.port, jsonText(summerBreeze(uniqueTag())))
        assert.strictEqual(created.status, 201)

        const second = yield* start({ DATABASE_URL: databaseUrl, INSTANCE_LOCK_WAIT_MS: "60000" })
        yield* awaitLine(second.running, "waiting up to")
        first.running.child.kill("SIGTERM")
        assert.strictEqual((yield* awaitExit(first.running, Duration.seconds(15))).code, 0, outputOf(first.running))
        yield* awaitLine(second.running, "listening on")
        assert.strictEqual(yield* getFormula(second.port, created.json.id), 200, "the first one's formula is served")
        assert.strictEqual((yield* post(second.port, jsonText(summerBreeze(uniqueTag())))).status, 201)
        second.running.child.kill("SIGTERM")
        assert.strictEqual((yield* awaitExit(second.running, Duration.seconds(15))).code, 0)
      }),
    120_000
  )
})

describe.skipIf(postgresUrl === undefined)("the queue in the database on one PostgreSQL database", () => {
  it.live(
    "two instances with QUEUE_BACKEND=postgres start side by side and both serve; an in-memory one beside them is refused, naming them",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* ownDatabase(postgresUrl!, "guard_shared")
        const env = { DATABASE_URL: databaseUrl, QUEUE_BACKEND: "postgres", INSTANCE_LOCK_WAIT_MS: "0" }
        const a = yield* start(env)
        yield* awaitLine(a.running, "listening on")
        const b = yield* start(env)
        yield* awaitLine(b.running, "listening on")
        const created = yield* post(a.port, jsonText(summerBreeze(uniqueTag())))
        assert.strictEqual(created.status, 201)
        assert.strictEqual(yield* getFormula(b.port, created.json.id), 200, "one database behind both")
        assert.strictEqual((yield* post(b.port, jsonText(summerBreeze(uniqueTag())))).status, 201)

        const memory = yield* start({ DATABASE_URL: databaseUrl, INSTANCE_LOCK_WAIT_MS: "1000" })
        const exit = yield* awaitExit(memory.running, Duration.seconds(60))
        assertRefused(memory.running, exit, [
          "instances with the queue in the database (QUEUE_BACKEND=postgres) are running on database",
          "INSTANCE_LOCK_WAIT_MS=1000",
          "set QUEUE_BACKEND=postgres on this one too"
        ])

        for (const { running } of [a, b]) {
          running.child.kill("SIGTERM")
          assert.strictEqual((yield* awaitExit(running, Duration.seconds(15))).code, 0, outputOf(running))
        }
      }),
    120_000
  )
})

describe("one process on a DATA_DIR", () => {
  it.live(
    "a second process on the same DATA_DIR is refused after INSTANCE_LOCK_WAIT_MS; after the holder is SIGKILLed its lock file is taken over and its data is there",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* tempDir
        const first = yield* start({ DATA_DIR: dataDir })
        yield* awaitLine(first.running, "listening on")
        const created = yield* post(first.port, jsonText(summerBreeze(uniqueTag())))
        assert.strictEqual(created.status, 201)

        const second = yield* start({ DATA_DIR: dataDir, INSTANCE_LOCK_WAIT_MS: "1500" })
        yield* awaitLine(second.running, "waiting up to")
        const exit = yield* awaitExit(second.running, Duration.seconds(60))
        assertRefused(second.running, exit, [
          `DATA_DIR=${JSON.stringify(dataDir)} is in use by process ${first.running.child.pid}`,
          "INSTANCE_LOCK_WAIT_MS=1500",
          "one process at a time",
          "QUEUE_BACKEND=postgres"
        ])

        first.running.child.kill("SIGKILL")
        yield* Effect.promise(() => first.running.exited)
        const lockFile = join(dataDir, "formula-intake.lock")
        assert.isTrue(existsSync(lockFile), "a killed holder leaves its lock file behind")
        assert.strictEqual(JSON.parse(readFileSync(lockFile, "utf8")).pid, first.running.child.pid)

        // INSTANCE_LOCK_WAIT_MS=0: a dead holder's file is taken over without waiting.
        const third = yield* start({ DATA_DIR: dataDir, INSTANCE_LOCK_WAIT_MS: "0" })
        yield* awaitLine(third.running, "listening on")
        assert.strictEqual(yield* getFormula(third.port, created.json.id), 200, "the killed one's formula is there")
        assert.strictEqual(JSON.parse(readFileSync(lockFile, "utf8")).pid, third.running.child.pid)
        third.running.child.kill("SIGTERM")
        assert.strictEqual((yield* awaitExit(third.running, Duration.seconds(15))).code, 0)
        assert.isFalse(existsSync(lockFile), "removed on a clean stop")
      }),
    180_000
  )
})
