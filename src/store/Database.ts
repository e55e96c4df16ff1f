/**
 * The SQL client, migrated: PostgreSQL when `DATABASE_URL` is set, otherwise
 * an embedded PGlite under `DATA_DIR`. Both are reached through the same
 * `@effect/sql-pg` driver, so every query in the project runs unchanged on either.
 */
import { PGlite } from "@electric-sql/pglite"
import { PgClient } from "@effect/sql-pg"
import { Config, Duration, Effect, Layer, Option, Redacted } from "effect"
import type { SqlClient } from "effect/sql"
import { mkdir, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
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
 * PGlite on a directory it cannot write does not fail: it hangs. So check
 * first, and say which setting is wrong.
 */
const ensureWritableDirectory = (dataDir: string) =>
  Effect.tryPromise({
    try: async () => {
      await mkdir(dataDir, { recursive: true })
      const probe = join(dataDir, `.write-test-${process.pid}`)
      await writeFile(probe, "")
      await rm(probe)
    },
    catch: (cause) =>
      new Error(`DATA_DIR: ${dataDir} is not a writable directory (${cause instanceof Error ? cause.message : cause})`)
  })

/** `DATABASE_URL` must be a postgres:// or postgresql:// URL; anything else is named at start-up. */
const checkDatabaseUrl = (url: Redacted.Redacted) => {
  let protocol: string | undefined
  try {
    protocol = new URL(Redacted.value(url)).protocol
  } catch {
    protocol = undefined
  }
  return protocol === "postgres:" || protocol === "postgresql:"
    ? Effect.void
    : Effect.fail(new Error("DATABASE_URL: expected a postgres:// or postgresql:// URL"))
}

/** Adds the migrations on top of a client layer. */
export const migrated = <E, R>(
  client: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown, R> =>
  Layer.effectDiscard(runMigrations).pipe(Layer.provideMerge(client))

/** The database chosen by configuration: `DATABASE_URL`, else PGlite under `DATA_DIR` (default `./data`). */
export const layer: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown> = Layer.unwrap(
  Effect.gen(function* () {
    const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
    if (Option.isSome(url)) {
      yield* checkDatabaseUrl(url.value)
      return migrated(layerPostgres(url.value))
    }
    const dataDir = yield* Config.withDefault(Config.String("DATA_DIR"), "./data")
    return migrated(layerEmbedded(dataDir))
  })
)
