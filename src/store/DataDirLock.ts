/**
 * One process at a time on a DATA_DIR.
 *
 * PGlite is a database inside the process: two processes on one DATA_DIR each
 * run their own copy, each sees only its own writes, and whichever stops last
 * overwrites the other's (tried: a formula answered 201 by the first was gone
 * after both stopped). An advisory lock cannot help — each process has its own
 * server — so the directory holds a lock file, `formula-intake.lock`, naming
 * its holder (pid, host), created atomically (written aside, then hard-linked
 * into place: the link fails if the file exists, and it is never half written;
 * where hard links are not supported, created with O_EXCL instead).
 *
 * A second process waits for the holder to stop (a rolling restart) up to
 * INSTANCE_LOCK_WAIT_MS, asking every 200 ms, then refuses to start. A lock
 * whose holder is gone (killed, crashed: the file stays) is taken over: on the
 * same host, a pid that no longer runs — or our own pid when this process does
 * not hold it (a container restarted gets the same pid again) — is gone. A
 * holder on another host cannot be checked: the message says which file to
 * remove if that process no longer runs (PostgreSQL's postmaster.pid works the
 * same way). This applies whatever the queue backend: QUEUE_BACKEND=postgres on
 * the embedded database is allowed, and is one process too.
 */
import { Clock, Duration, Effect, type Scope } from "effect"
import { link, mkdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises"
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { join, resolve } from "node:path"
import { StartupFailed } from "../Settings.ts"

export const lockFileName = "formula-intake.lock"

/** How often a waiting process asks again. */
const retryEvery = Duration.millis(200)

export interface Holder {
  readonly pid: number
  readonly host: string
  readonly since: string
  /** Tells this process's lock files from a former process's with the same pid. */
  readonly token: string
}

/**
 * The lock files this process has written or is writing (path and token): a
 * second embedded database on one directory in one process waits like another
 * process, while a file with our pid and an unknown token is a former life's.
 */
const ours = new Set<string>()
const key = (path: string, token: string) => `${path}\0${token}`

type Attempt =
  | { readonly _tag: "Taken"; readonly token: string }
  | { readonly _tag: "Held"; readonly holder: Holder | undefined }

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM" // it runs, as another user
  }
}

/** Gone for sure: on this host and not running, or our pid but not written by this process. */
const isGone = (path: string, holder: Holder) =>
  holder.host === hostname() &&
  (holder.pid === process.pid ? !ours.has(key(path, holder.token)) : !isRunning(holder.pid))

const readHolder = async (path: string): Promise<Holder | undefined> => {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8"))
    return typeof parsed?.pid === "number" && typeof parsed?.host === "string" && typeof parsed?.token === "string"
      ? parsed
      : undefined
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw error
    return undefined // not ours to understand: never taken over, the message names the file
  }
}

/** Filesystems without hard links (some network and FUSE ones) answer these to `link`. */
const noHardLinks = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV"])

/** The lock file with `holder` in it, or EEXIST: linked from `aside` (never half written), else created exclusively. */
const createExclusive = async (aside: string, path: string, holder: Holder) => {
  try {
    await link(aside, path)
  } catch (error) {
    if (!noHardLinks.has((error as NodeJS.ErrnoException).code ?? "")) throw error
    await writeFile(path, `${JSON.stringify(holder)}\n`, { flag: "wx" })
  }
}

/**
 * Removes the lock file if it still names `stale`. Two processes taking over
 * one stale file must not both succeed (the second would remove the first's
 * fresh file): removals go one at a time, under a directory created
 * exclusively next to the file, and each looks again before removing. A
 * takeover whose process died midway leaves that directory: cleared once 10 s old.
 */
export const removeStale = async (path: string, stale: Holder) => {
  const mutex = `${path}.takeover`
  try {
    await mkdir(mutex)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    const since = await stat(mutex).then(
      (info) => info.mtimeMs,
      () => undefined
    )
    if (since !== undefined && Date.now() - since > 10_000) await rm(mutex, { recursive: true, force: true })
    return // another takeover is under way: try again
  }
  try {
    const now = await readHolder(path).catch(() => undefined)
    if (now?.token === stale.token) await rm(path, { force: true })
  } finally {
    await rm(mutex, { recursive: true, force: true })
  }
}

const tryTake = async (path: string): Promise<Attempt> => {
  const aside = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`
  const token = randomUUID()
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token }
  // Known before the file exists: another attempt in this process that reads it meanwhile must see it as held.
  ours.add(key(path, token))
  let taken = false
  await writeFile(aside, `${JSON.stringify(me)}\n`)
  try {
    for (let tries = 0; tries < 3; tries++) {
      try {
        await createExclusive(aside, path, me)
        taken = true
        return { _tag: "Taken", token }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
      }
      let holder: Holder | undefined
      try {
        holder = await readHolder(path)
      } catch {
        continue // removed meanwhile: try again
      }
      if (holder === undefined || !isGone(path, holder)) return { _tag: "Held", holder }
      await removeStale(path, holder) // a dead holder's file: take it over
    }
    return { _tag: "Held", holder: undefined }
  } finally {
    if (!taken) ours.delete(key(path, token))
    await rm(aside, { force: true })
  }
}

/** Removes the lock file if it is still the one this holder wrote. */
const release = async (path: string, token: string) => {
  const holder = await readHolder(path).catch(() => undefined)
  if (holder?.token === token) await unlink(path)
  ours.delete(key(path, token))
}

const failure = (dataDir: string, path: string, error: unknown) =>
  new StartupFailed({
    message: `DATA_DIR=${JSON.stringify(dataDir)}: cannot take the lock file ${path}: ${(error as Error).message ?? error}`
  })

/**
 * Holds DATA_DIR's lock file for the scope, waiting up to `wait` for another
 * process to let it go; fails with `StartupFailed` after that.
 */
export const acquire = (
  dataDir: string,
  options: { readonly wait: Duration.Input }
): Effect.Effect<void, StartupFailed, Scope.Scope> =>
  Effect.gen(function* () {
    const path = join(resolve(dataDir), lockFileName)
    const waitMs = Duration.toMillis(Duration.fromInputUnsafe(options.wait))
    const deadline = (yield* Clock.currentTimeMillis) + waitMs
    // Each attempt and, when it took the file, its removal with the scope are one step: an interruption
    // (SIGTERM while waiting) cannot fall between them and leave the file behind.
    const take = Effect.acquireRelease(
      Effect.tryPromise({ try: () => tryTake(path), catch: (error) => failure(dataDir, path, error) }),
      (result) =>
        result._tag === "Taken" ? Effect.promise(() => release(path, result.token).catch(() => undefined)) : Effect.void
    )
    for (let attempt = 1; ; attempt++) {
      const result = yield* take
      if (result._tag === "Taken") return
      const holder =
        result.holder === undefined ? "another process" : `process ${result.holder.pid} on ${result.holder.host}`
      const left = deadline - (yield* Clock.currentTimeMillis)
      if (left <= 0) {
        return yield* new StartupFailed({
          message:
            `DATA_DIR=${JSON.stringify(dataDir)} is in use by ${holder}, which did not stop within ` +
            `INSTANCE_LOCK_WAIT_MS=${waitMs}: the embedded database can be opened by one process at a time. ` +
            `To run several instances, use PostgreSQL (DATABASE_URL) with QUEUE_BACKEND=postgres. ` +
            `If that process no longer runs, remove ${path}.`
        })
      }
      if (attempt === 1) {
        yield* Effect.logWarning(
          `DATA_DIR=${JSON.stringify(dataDir)} is in use by ${holder}: waiting up to ${waitMs} ms (INSTANCE_LOCK_WAIT_MS) for it to stop`
        )
      }
      yield* Effect.sleep(Duration.min(retryEvery, Duration.millis(left)))
    }
  })
