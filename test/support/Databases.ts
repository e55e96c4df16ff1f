/**
 * The databases every database-touching test runs against: the embedded
 * PGlite (in memory, one per suite) and, when `TEST_DATABASE_URL` is set (CI
 * sets it), PostgreSQL in a schema of its own that is dropped afterwards.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import type { SqlClient } from "effect/sql"
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
