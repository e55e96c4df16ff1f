/**
 * The PostgreSQL queue backend (src/queue/PgMessageQueue.ts) as the conformance
 * suite and the HTTP queue tests see it, on one of the test databases.
 *
 * Starting an embedded PGlite costs seconds, so one database serves every test
 * of a describe block: `postgresQueue` registers the hooks that open it before
 * the block's first test and close it after the last, and each queue built on
 * it starts from an empty outbox (the tests of a file run one at a time).
 */
import { PgClient } from "@effect/sql-pg"
import { afterAll, beforeAll } from "@effect/vitest"
import { type Context, Effect, Exit, Layer, Option, Scope } from "effect"
import type { SqlClient } from "effect/sql"
import * as PgMessageQueue from "../../src/queue/PgMessageQueue.ts"
import { FormulaStore } from "../../src/store/FormulaStore.ts"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import type { TestDatabase } from "./Databases.ts"
import { type QueueUnderTest, StoredResults } from "./QueueBackends.ts"

/** The backstop poll the tests give the queue: short, so time-driven wakes need few clock steps. */
export const testPollIntervalMs = 100

type Database = PgClient.PgClient | SqlClient.SqlClient

/** One database for the current describe block, open from its first test to its last. */
export const sharedDatabase = (database: TestDatabase): Layer.Layer<Database> => {
  let context: Context.Context<Database> | undefined
  const scope = Scope.makeUnsafe()
  beforeAll(async () => {
    context = await Effect.runPromise(Layer.buildWithScope(database.layer(), scope).pipe(Effect.orDie))
  }, 60_000)
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)), 60_000)
  return Layer.effectContext(
    Effect.suspend(() =>
      context === undefined ? Effect.die(new Error("the shared test database is not open")) : Effect.succeed(context)
    )
  )
}

const emptyOutbox = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  yield* sql`TRUNCATE outbox, webhook_events CASCADE`
}).pipe(Effect.orDie)

/** The stored result of an acked (settled) message, read from its outbox row. */
const storedResults = Layer.effect(
  StoredResults,
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    return {
      resultOf: (messageId: string) =>
        sql<{ readonly result: string | null }>`
          SELECT result::text AS result FROM outbox WHERE message_id = ${messageId} AND delivered_at IS NOT NULL`.pipe(
          Effect.map((rows) =>
            rows[0]?.result === undefined || rows[0].result === null
              ? Option.none()
              : Option.some(JSON.parse(rows[0].result) as unknown)
          ),
          Effect.orDie
        )
    }
  })
)

/**
 * The queue in the outbox table of a database shared by the current describe
 * block (call it inside the block: it registers the hooks that open and close it).
 */
export const postgresQueue = (
  database: TestDatabase
): QueueUnderTest & { readonly database: Layer.Layer<Database> } => {
  const shared = sharedDatabase(database)
  return {
    name: `postgres on ${database.name}`,
    database: shared,
    pollIntervalMs: testPollIntervalMs,
    propertyRuns: 50,
    layer: (options) =>
      Layer.unwrap(
        Effect.as(
          emptyOutbox,
          Layer.merge(PgMessageQueue.layerWith({ ...options, pollInterval: testPollIntervalMs }), storedResults)
        )
      ).pipe(Layer.provide(Layer.mergeAll(FormulaStore.layerNoDeps, DeliverySignal.layer)), Layer.provideMerge(shared))
  }
}
