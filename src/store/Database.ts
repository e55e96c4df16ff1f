/**
 * The SQL client, migrated: PostgreSQL when `DATABASE_URL` is set, otherwise
 * an embedded PGlite under `DATA_DIR`. Both are reached through the same
 * `@effect/sql-pg` driver, so every query in the project runs unchanged on either.
 */
import { PGlite } from "@electric-sql/pglite"
import { PgClient } from "@effect/sql-pg"
import { Cause, Clock, Duration, Effect, Exit, Layer, Redacted } from "effect"
import type { SqlClient } from "effect/sql"
import { mkdir, rm, writeFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { type DatabaseChoice, DatabaseConfig, DatabaseWaitMs, redactUrl, StartupFailed } from "../Settings.ts"
import { runMigrations } from "./Migrations.ts"
import { makePgliteStream } from "./PgliteBridge.ts"

/** How long a connection attempt may take before the request gets a 503 instead of a hang. */
export const connectTimeout = Duration.seconds(5)

/** Options shared by both databases. */
const clientOptions = {
  connectTimeout,
  applicationName: "formula-intake"
} as const

/** A PostgreSQL server. `schema`, when given, is created and put first on the search path (tests use one each). */
export const layerPostgres = (
  url: Redacted.Redacted,
  options: { readonly schema?: string | undefined; readonly maxConnections?: number | undefined } = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown> => {
  const client = PgClient.layer({
    ...clientOptions,
    url,
    maxConnections: options.maxConnections ?? 10,
    ...(options.schema === undefined ? {} : { startupParameters: { search_path: options.schema } })
  })
  if (options.schema === undefined) return client
  // The schema must exist before a connection that searches it runs migrations.
  const createSchema = Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(options.schema!)}`
    })
  ).pipe(Layer.provide(PgClient.layer({ ...clientOptions, url, maxConnections: 1 })))
  return Layer.provideMerge(client, createSchema)
}

/**
 * An embedded PGlite. `dataDir` undefined keeps the database in memory (tests).
 * The pool holds exactly one connection: PGlite is one backend session, and a
 * second connection would share (and break) the first one's transactions.
 */
export const layerEmbedded = (
  dataDir: string | undefined
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const db = yield* Effect.acquireRelease(
        Effect.gen(function* () {
          if (dataDir !== undefined) yield* ensureWritableDirectory(dataDir)
          const db = dataDir === undefined ? new PGlite() : new PGlite(dataDir)
          yield* Effect.promise(() => db.waitReady)
          return db
        }),
        (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
      )
      return PgClient.layerFrom(
        PgClient.make({
          ...clientOptions,
          stream: makePgliteStream(db),
          username: "postgres",
          database: "postgres",
          maxConnections: 1,
          minConnections: 1,
          idleTimeout: Duration.infinity
        })
      )
    })
  )

/**
 * Whether a client has a single connection: the embedded PGlite (one session,
 * `layerEmbedded`), or a pool of one. It has no connection to spare for
 * LISTEN (which holds one for good), and on the embedded database nobody else
 * could listen anyway. Read from the client's own settings (a test's fault
 * injector reaches PostgreSQL through a stream too, with a pool of several).
 */
export const hasOneConnection = (sql: PgClient.PgClient): boolean =>
  (sql.config as PgClient.PgPoolConfig).maxConnections === 1

/**
 * PGlite on a directory it cannot write does not fail: it hangs. So check
 * first, and say which setting is wrong. The directory is created one level
 * at a time: Node's recursive mkdir never returns on a path under /proc.
 */
const ensureWritableDirectory = (dataDir: string) =>
  Effect.tryPromise({
    try: async () => {
      const absolute = resolve(dataDir)
      const levels: Array<string> = []
      for (let path = absolute; path !== dirname(path); path = dirname(path)) levels.unshift(path)
      for (const path of levels) {
        await mkdir(path).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== "EEXIST") throw error
        })
      }
      const probe = join(absolute, `.write-test-${process.pid}`)
      await writeFile(probe, "")
      await rm(probe)
    },
    catch: (cause) =>
      new StartupFailed({
        message: `DATA_DIR=${JSON.stringify(dataDir)} is not a writable directory: ${reasonOf(cause)}`
      })
  })

/** The innermost error's message (a driver error wraps the socket's or the server's). */
export const reasonOf = (error: unknown): string => {
  let reason = String(error)
  for (let current: any = error, depth = 0; current != null && depth < 8; depth++) {
    if (typeof current.message === "string" && current.message !== "") reason = current.message
    current = current.cause ?? current.reason?.cause
  }
  return reason
}

/** Adds the migrations on top of a client layer. */
export const migrated = <E, R>(
  client: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown, R> =>
  Layer.effectDiscard(runMigrations).pipe(Layer.provideMerge(client))

/**
 * Connection failures worth waiting out at start-up: the server is not there
 * yet, or says it is starting, shutting down or full. Anything else (a wrong
 * password, a database that does not exist) will not fix itself.
 */
const isTransient = (error: unknown): boolean => {
  const sqlError = error as { readonly reason?: { readonly _tag?: string; readonly cause?: { code?: unknown } } }
  if (sqlError.reason?._tag === "ConnectionError") return true
  const code = sqlError.reason?.cause?.code
  return typeof code === "string" && (code.startsWith("57") || code.startsWith("53") || code.startsWith("08"))
}

/** One connection, one `SELECT 1`. */
const ping = (url: Redacted.Redacted) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    yield* sql`SELECT 1`
  }).pipe(Effect.provide(PgClient.layer({ ...clientOptions, url, maxConnections: 1 })), Effect.scoped)

/** Delay before attempt n + 1: 250 ms, doubling, at most 5 s. */
const backoff = (attempt: number) => Math.min(5_000, 250 * 2 ** (attempt - 1))

/**
 * Waits until the PostgreSQL server answers, for at most `waitMs`: each failed
 * attempt is logged with the reason, and a failure that waiting cannot fix
 * ends the wait at once. Fails naming `DATABASE_URL`, password redacted.
 */
export const awaitPostgres = (url: Redacted.Redacted, waitMs: number): Effect.Effect<void, StartupFailed> =>
  Effect.gen(function* () {
    const shown = `DATABASE_URL=${redactUrl(Redacted.value(url))}`
    const deadline = (yield* Clock.currentTimeMillis) + waitMs
    for (let attempt = 1; ; attempt++) {
      const exit = yield* Effect.exit(ping(url))
      if (Exit.isSuccess(exit)) {
        if (attempt > 1) yield* Effect.logInfo(`database reachable (attempt ${attempt}): ${shown}`)
        return
      }
      const error = Cause.squash(exit.cause)
      const reason = reasonOf(error)
      if (!isTransient(error)) return yield* new StartupFailed({ message: `${shown}: ${reason}` })
      const left = deadline - (yield* Clock.currentTimeMillis)
      if (left <= 0) {
        return yield* new StartupFailed({
          message: `${shown} could not be reached within DATABASE_WAIT_MS=${waitMs} (${attempt} attempt${attempt === 1 ? "" : "s"}): ${reason}`
        })
      }
      const delay = Math.min(backoff(attempt), left)
      yield* Effect.logWarning(
        `database not reachable (attempt ${attempt}): ${shown}: ${reason}; next attempt in ${delay} ms`
      )
      yield* Effect.sleep(Duration.millis(delay))
    }
  })

/** A start-up failure that names the setting: what the operator reads when the database will not open. */
const naming = (setting: string) => (error: unknown) =>
  error instanceof StartupFailed
    ? error
    : new StartupFailed({ message: `${setting}: the database could not be opened: ${reasonOf(error)}` })

const failing = (error: StartupFailed): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, StartupFailed> => {
  const failed: Effect.Effect<Layer.Layer<PgClient.PgClient | SqlClient.SqlClient>, StartupFailed> = Effect.fail(error)
  return Layer.unwrap(failed)
}

/**
 * The database `choice` names, migrated. PostgreSQL is waited for up to
 * `waitMs` (DATABASE_WAIT_MS); every failure is a `StartupFailed` naming
 * `DATABASE_URL` (password redacted) or `DATA_DIR`.
 */
export const layerFrom = (
  choice: DatabaseChoice,
  options: { readonly waitMs: number }
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, StartupFailed> => {
  if (choice._tag === "Embedded") {
    return migrated(layerEmbedded(choice.dataDir)).pipe(
      Layer.catch((error) => failing(naming(`DATA_DIR=${JSON.stringify(choice.dataDir)}`)(error)))
    )
  }
  const shown = `DATABASE_URL=${redactUrl(Redacted.value(choice.url))}`
  return Layer.unwrap(Effect.as(awaitPostgres(choice.url, options.waitMs), migrated(layerPostgres(choice.url)))).pipe(
    Layer.catch((error) => failing(naming(shown)(error)))
  )
}

/** The database chosen by configuration: `DATABASE_URL`, else PGlite under `DATA_DIR` (default `./data`). */
export const layer: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown> = Layer.unwrap(
  Effect.gen(function* () {
    const choice = yield* DatabaseConfig
    const waitMs = yield* DatabaseWaitMs.config
    return layerFrom(choice, { waitMs })
  })
)
