/**
 * One process at a time on a DATA_DIR (DataDirLock.ts). The embedded database
 * only: a PostgreSQL server needs no lock file (InstanceLock.test.ts). Waits
 * run on the TestClock; the waiting side's log line is the hand-off. A holder
 * in another process is played by a lock file written by the test (a live pid:
 * this test's parent; a dead one: a child that has exited).
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Deferred, type Duration, Effect, Exit, Fiber, Layer, Logger, Scope } from "effect"
import { TestClock } from "effect/testing"
import { spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { StartupFailed } from "../../src/Settings.ts"
import * as DataDirLock from "../../src/store/DataDirLock.ts"
import * as Database from "../../src/store/Database.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "formula-intake-lock-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const lockFile = (dir: string) => join(dir, DataDirLock.lockFileName)
const holderOf = (dir: string) => JSON.parse(readFileSync(lockFile(dir), "utf8"))
const writeHolder = (dir: string, holder: { pid: number; host: string }) =>
  writeFileSync(lockFile(dir), JSON.stringify({ ...holder, since: new Date().toISOString(), token: randomUUID() }))

/** A pid that ran and has exited. */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid!

/** A logger that completes `waiting` at the lock's "waiting up to …" line. */
const waitingLogger = (waiting: Deferred.Deferred<string>) =>
  Logger.layer([
    Logger.make(({ message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      if (text.includes("waiting up to")) Deferred.doneUnsafe(waiting, Exit.succeed(text))
    })
  ])

const awaitWaiting = (waiting: Deferred.Deferred<string>) =>
  TestClock.withLive(
    Deferred.await(waiting).pipe(
      Effect.timeoutOrElse({
        duration: "20 seconds",
        orElse: () => Effect.sync(() => assert.fail("the second opener did not wait"))
      })
    )
  )

/** `acquire` in a scope of its own, forked; returns the fiber and the hand-off of its waiting line. */
const acquireForked = (dir: string, wait: Duration.Input) =>
  Effect.gen(function* () {
    const waiting = yield* Deferred.make<string>()
    const scope = yield* Scope.fork(yield* Effect.scope) // closed by the test at the latest
    const fiber = yield* Effect.forkChild(
      Scope.provide(DataDirLock.acquire(dir, { wait }), scope).pipe(Effect.provide(waitingLogger(waiting))),
      { startImmediately: true }
    )
    return { fiber, waiting, release: Scope.close(scope, Exit.void) }
  })

describe("DATA_DIR lock file", () => {
  it.effect(
    "a second embedded database on the same DATA_DIR in this process waits up to the lock wait, then fails naming DATA_DIR, INSTANCE_LOCK_WAIT_MS, QUEUE_BACKEND=postgres and the file — protects the lock file",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        yield* Layer.build(Database.migrated(Database.layerEmbedded(dir, { lockWait: 0 })))
        assert.deepInclude(holderOf(dir), { pid: process.pid, host: hostname() })

        const waiting = yield* Deferred.make<string>()
        const second = yield* Effect.forkChild(
          Layer.build(Database.layerEmbedded(dir, { lockWait: "5 seconds" })).pipe(
            Effect.provide(waitingLogger(waiting)),
            Effect.scoped
          ),
          { startImmediately: true }
        )
        const line = yield* awaitWaiting(waiting)
        assert.include(line, `is in use by process ${process.pid} on ${hostname()}`)
        yield* TestClock.adjust("5 seconds")
        const error = yield* Effect.flip(Fiber.join(second))
        assert.instanceOf(error, StartupFailed)
        const message = (error as StartupFailed).message
        assert.include(message, `DATA_DIR=${JSON.stringify(dir)} is in use by process ${process.pid}`)
        assert.include(message, "INSTANCE_LOCK_WAIT_MS=5000")
        assert.include(message, "one process at a time")
        assert.include(message, "QUEUE_BACKEND=postgres")
        assert.include(message, lockFile(dir))
        assert.deepInclude(holderOf(dir), { pid: process.pid }, "the holder keeps its lock")
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "rolling restart: the second waits while the first holds DATA_DIR, opens it once the first closes, and sees its data; the file is gone after the last close",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const firstScope = yield* Scope.fork(yield* Effect.scope) // closed by the test at the latest
        const first = yield* Layer.buildWithScope(Database.migrated(Database.layerEmbedded(dir)), firstScope)
        yield* PgClient.PgClient.use((sql) =>
          Effect.andThen(sql`CREATE TABLE lock_probe (n int)`, sql`INSERT INTO lock_probe VALUES (42)`)
        ).pipe(Effect.provide(first))

        const waiting = yield* Deferred.make<string>()
        const secondScope = yield* Scope.fork(yield* Effect.scope) // closed by the test at the latest
        const second = yield* Effect.forkChild(
          Layer.buildWithScope(Database.layerEmbedded(dir, { lockWait: "1 hour" }), secondScope).pipe(
            Effect.provide(waitingLogger(waiting))
          ),
          { startImmediately: true }
        )
        yield* awaitWaiting(waiting)
        assert.isUndefined(second.pollUnsafe(), "waiting while the first holds it")
        yield* Scope.close(firstScope, Exit.void)
        assert.isFalse(existsSync(lockFile(dir)), "the first removed its lock file on close")
        yield* TestClock.adjust("200 millis")
        const opened = yield* Fiber.join(second)
        const rows = yield* PgClient.PgClient.use((sql) => sql<{ n: number }>`SELECT n FROM lock_probe`).pipe(
          Effect.provide(opened)
        )
        assert.deepStrictEqual(
          rows.map((row) => row.n),
          [42],
          "the first one's data"
        )
        yield* Scope.close(secondScope, Exit.void)
        assert.isFalse(existsSync(lockFile(dir)), "no lock file left behind")
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect("a lock file whose process has exited (killed, crashed) is taken over at once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const dead = deadPid()
      writeHolder(dir, { pid: dead, host: hostname() })
      yield* DataDirLock.acquire(dir, { wait: 0 })
      assert.deepInclude(holderOf(dir), { pid: process.pid, host: hostname() })
    }).pipe(Effect.scoped)
  )

  it.effect("many openers taking over one dead holder's file at once: exactly one gets it", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      writeHolder(dir, { pid: deadPid(), host: hostname() })
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 8 }, () => undefined),
        () =>
          Effect.gen(function* () {
            const scope = yield* Scope.fork(yield* Effect.scope)
            return yield* Effect.exit(Scope.provide(DataDirLock.acquire(dir, { wait: 0 }), scope))
          }),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(outcomes.filter(Exit.isSuccess).length, 1, "one holder")
      assert.strictEqual(outcomes.filter(Exit.isFailure).length, 7, "the others refused")
      assert.deepInclude(holderOf(dir), { pid: process.pid })
    }).pipe(Effect.scoped)
  )

  it("taking over looks again first: a stale holder's file already replaced by a live one's is left alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "formula-intake-lock-"))
    try {
      writeHolder(dir, { pid: deadPid(), host: hostname() })
      const stale = holderOf(dir)
      writeHolder(dir, { pid: process.ppid, host: hostname() }) // another process took it over meanwhile
      const fresh = holderOf(dir)
      await DataDirLock.removeStale(lockFile(dir), stale)
      assert.deepStrictEqual(holderOf(dir), fresh, "the fresh lock file is still there")
      assert.isFalse(existsSync(`${lockFile(dir)}.takeover`), "the takeover's own lock is gone")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it.effect(
    "a lock file naming this very pid while this process does not hold it (a restarted container gets its pid again) is taken over",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        writeHolder(dir, { pid: process.pid, host: hostname() })
        yield* DataDirLock.acquire(dir, { wait: 0 })
        assert.deepInclude(holderOf(dir), { pid: process.pid })
      }).pipe(Effect.scoped)
  )

  it.effect("a live holder (another running process) is waited for, and refused after the wait", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      writeHolder(dir, { pid: process.ppid, host: hostname() })
      const second = yield* acquireForked(dir, "1 second")
      yield* awaitWaiting(second.waiting)
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(Fiber.join(second.fiber))
      assert.include((error as StartupFailed).message, `is in use by process ${process.ppid} on ${hostname()}`)
      assert.deepInclude(holderOf(dir), { pid: process.ppid }, "the holder's file is left alone")
    }).pipe(Effect.scoped)
  )

  it.effect(
    "a holder on another host cannot be checked: never taken over; the message says which file to remove if it no longer runs",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        writeHolder(dir, { pid: deadPid(), host: `not-${hostname()}` })
        const error = yield* Effect.flip(DataDirLock.acquire(dir, { wait: 0 }))
        assert.include(error.message, `on not-${hostname()}`)
        assert.include(error.message, `If that process no longer runs, remove ${lockFile(dir)}`)
      }).pipe(Effect.scoped)
  )
})
