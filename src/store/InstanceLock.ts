/**
 * One in-memory queue per database schema.
 *
 * With `QUEUE_BACKEND=memory` each instance keeps its own copy of the outbox's
 * unsettled messages and the outbox relay fills it at start-up: two such
 * instances over one outbox would each deliver every message. So a runtime
 * with the in-memory queue holds this lock for its whole lifetime, and a
 * second one waits for it (a rolling restart: the old instance stops within
 * the wait) and otherwise refuses to start, naming `QUEUE_BACKEND=postgres`.
 * The runtime takes it before the outbox relay's start-up recovery: an
 * instance that read the outbox while another was still acking would deliver
 * those messages again once it got the lock.
 *
 * - PostgreSQL: a session advisory lock keyed by (this service, the schema's
 *   hash) — tests run many schemas on one database at once, and an advisory
 *   lock is per database already — on a connection of its own, opened with
 *   the runtime's client settings (same server, same search path) but outside
 *   its pool: a pooled connection would take the lock back to the pool with
 *   it, and one reserved from the pool for good would shrink it (tried: the
 *   connection-fault tests, whose pool has 4, then handed out a dead
 *   connection more often). Unlocked explicitly on release, then closed.
 * - Embedded PGlite: one session for the whole process, and advisory locks are
 *   re-entrant within a session, so the lock would always be granted. Another
 *   process cannot open the same DATA_DIR anyway (DataDirLock.ts); within the
 *   process, two runtimes on one PGlite client are told apart here.
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { Clock, Config, Duration, Effect, Layer, type Scope } from "effect"
import type { SqlError } from "effect/sql"
import { InstanceLockWaitMs, type QueueBackend, QueueBackendSetting, StartupFailed } from "../Settings.ts"

/** The first half of the advisory-lock key: this service's guard ("form"); the second is the schema's hash. */
const lockClass = 0x666f726d

/** How often a waiting instance asks again. */
const retryEvery = Duration.millis(200)

/** PGlite clients whose in-memory queue is taken, by this process. */
const embeddedHolders = new WeakSet<object>()

interface Where {
  readonly database: string
  readonly schema: string
  readonly embedded: boolean
}

const describe = (where: Where) =>
  where.embedded
    ? `the embedded database (schema "${where.schema}")`
    : `database "${where.database}" (schema "${where.schema}")`

/**
 * An attempt at the lock, and its release. On PostgreSQL the connection lives
 * in the caller's scope (closed after the unlock).
 */
const lockOn = (sql: PgClient.PgClient, where: Where) =>
  Effect.gen(function* () {
    if (where.embedded) {
      return {
        take: Effect.sync(() => !embeddedHolders.has(sql) && (embeddedHolders.add(sql), true)),
        release: Effect.sync(() => void embeddedHolders.delete(sql))
      }
    }
    const connection = yield* PgConnection.make(sql.config)
    return {
      take: Effect.map(
        connection.query("SELECT pg_try_advisory_lock($1, hashtext(current_schema())) AS locked", [lockClass]),
        (result) => result.rows[0]?.["locked"] === true
      ),
      // The connection may have died with the lock (the server then released it): nothing left to undo.
      release: connection
        .query("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", [lockClass])
        .pipe(Effect.ignore)
    }
  })

/**
 * Takes the lock for the scope's lifetime, waiting up to `wait` for another
 * instance to release it; fails with `StartupFailed` after that.
 */
export const acquire = (options: {
  readonly wait: Duration.Input
}): Effect.Effect<void, StartupFailed | SqlError.SqlError, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const [where] = yield* sql<Where>`
      SELECT current_database() AS database, current_schema() AS schema, version() LIKE '%PGlite%' AS embedded`
    const lock = yield* lockOn(sql, where!)
    const waitMs = Duration.toMillis(Duration.fromInputUnsafe(options.wait))
    const deadline = (yield* Clock.currentTimeMillis) + waitMs
    for (let attempt = 1; ; attempt++) {
      if (yield* lock.take) break
      const left = deadline - (yield* Clock.currentTimeMillis)
      if (left <= 0) {
        return yield* new StartupFailed({
          message:
            `another instance with the in-memory queue (QUEUE_BACKEND=memory) is running on ${describe(where!)} ` +
            `and did not stop within INSTANCE_LOCK_WAIT_MS=${waitMs}: two in-memory queues over one outbox would each ` +
            `deliver every message. To run several instances, set QUEUE_BACKEND=postgres on every one of them.`
        })
      }
      if (attempt === 1) {
        yield* Effect.logWarning(
          `another instance with the in-memory queue is running on ${describe(where!)}: ` +
            `waiting up to ${waitMs} ms (INSTANCE_LOCK_WAIT_MS) for it to stop`
        )
      }
      yield* Effect.sleep(Duration.min(retryEvery, Duration.millis(left)))
    }
    yield* Effect.addFinalizer(() => lock.release)
  })

/**
 * The guard a runtime needs: the lock for the in-memory queue, nothing for the
 * `postgres` backend (any number of instances share its queue). Unset options
 * come from QUEUE_BACKEND and INSTANCE_LOCK_WAIT_MS.
 */
export const layerFor = (options: {
  readonly queueBackend?: QueueBackend | undefined
  readonly instanceLockWait?: Duration.Input | undefined
}): Layer.Layer<never, StartupFailed | SqlError.SqlError | Config.ConfigError, PgClient.PgClient> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const backend = options.queueBackend ?? (yield* QueueBackendSetting.config)
      if (backend !== "memory") return Layer.empty
      const wait = options.instanceLockWait ?? Duration.millis(yield* InstanceLockWaitMs.config)
      return Layer.effectDiscard(acquire({ wait }))
    })
  )
