/**
 * The databases every database-touching test runs against: the embedded
 * PGlite (in memory, one per suite) and, when `TEST_DATABASE_URL` is set (CI
 * sets it), PostgreSQL in a schema of its own that is dropped afterwards.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../../src/store/Database.ts"

export type DatabaseLayer = Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown>

export interface TestDatabase {
  readonly name: "pglite" | "postgres"
  /** A fresh, migrated, empty database each time it is built. */
  readonly layer: () => DatabaseLayer
  /** A fresh database with no migration run (migration tests run them). */
  readonly unmigrated: () => DatabaseLayer
}

export const postgresUrl = process.env["TEST_DATABASE_URL"]

let schemas = 0
const uniqueSchema = () => `test_${process.pid}_${Date.now().toString(36)}_${schemas++}`

/** A schema created for one suite and dropped when its layer is released. */
export const postgresSchemaLayer = (
  url: string,
  schema: string,
  options: { readonly migrated?: boolean } = {}
): DatabaseLayer => {
  const dropOnRelease = Layer.effectDiscard(
    Effect.addFinalizer(() =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })), Effect.ignore)
    )
  )
  const client = Database.layerPostgres(Redacted.make(url), { schema })
  return (options.migrated === false ? client : Database.migrated(client)).pipe(Layer.provideMerge(dropOnRelease))
}

export const testDatabases: ReadonlyArray<TestDatabase> = [
  {
    name: "pglite",
    layer: () => Database.migrated(Database.layerEmbedded(undefined)),
    unmigrated: () => Database.layerEmbedded(undefined)
  },
  ...(postgresUrl === undefined
    ? []
    : [
        {
          name: "postgres" as const,
          layer: () => postgresSchemaLayer(postgresUrl, uniqueSchema()),
          unmigrated: () => postgresSchemaLayer(postgresUrl, uniqueSchema(), { migrated: false })
        }
      ])
]

if (postgresUrl === undefined) {
  console.warn("TEST_DATABASE_URL is not set: database tests run on the embedded PGlite only")
}

export interface ReusableDatabase {
  readonly name: "pglite" | "postgres"
  /**
   * A place for one database that outlives the runtimes opened on it — an
   * embedded PGlite's data directory in a temporary folder, a PostgreSQL
   * schema — removed when the scope closes. `open()` connects (and migrates)
   * anew each time: one runtime lifetime, then a restart on the same data.
   */
  readonly place: Effect.Effect<{ readonly open: () => DatabaseLayer }, never, Scope.Scope>
}

export const reusableDatabases: ReadonlyArray<ReusableDatabase> = [
  {
    name: "pglite",
    place: Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "formula-intake-restart-"))),
      (dataDir) => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true }))
    ).pipe(Effect.map((dataDir) => ({ open: () => Database.migrated(Database.layerEmbedded(dataDir)) })))
  },
  ...(postgresUrl === undefined
    ? []
    : [
        {
          name: "postgres" as const,
          place: Effect.gen(function* () {
            const schema = uniqueSchema()
            const url = Redacted.make(postgresUrl)
            yield* Effect.addFinalizer(() =>
              Effect.gen(function* () {
                const sql = yield* PgClient.PgClient
                yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
              }).pipe(Effect.provide(PgClient.layer({ url, maxConnections: 1 })), Effect.ignore)
            )
            return { open: () => Database.migrated(Database.layerPostgres(url, { schema, maxConnections: 4 })) }
          })
        }
      ])
]
