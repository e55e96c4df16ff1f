/**
 * The whole runtime as Layers, for embedding in another Effect program and
 * for the HTTP server. The database comes from configuration (`layer`) or is
 * passed in (`layerWith`), e.g. a test's own schema.
 */
import type { PgClient } from "@effect/sql-pg"
import { Layer } from "effect"
import type { SqlClient } from "effect/sql"
import { FormulaIntake } from "./intake/FormulaIntake.ts"
import * as Database from "./store/Database.ts"
import { FormulaStore } from "./store/FormulaStore.ts"

export type RuntimeServices = FormulaIntake | FormulaStore

/** The runtime on a given (already migrated) database. */
export const layerWith = <E, R>(
  database: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>
): Layer.Layer<RuntimeServices, E, R> =>
  FormulaIntake.layerNoDeps.pipe(Layer.provideMerge(FormulaStore.layerNoDeps), Layer.provide(database))

/** The runtime on the database chosen by `DATABASE_URL` / `DATA_DIR`. */
export const layer: Layer.Layer<RuntimeServices, unknown> = layerWith(Database.layer)
