/**
 * One in-memory queue per database schema, and never beside the queue in the database.
 *
 * With `QUEUE_BACKEND=memory` each instance keeps its own copy of the outbox's
 * unsettled messages and the outbox relay fills it at start-up: two such
 * instances over one outbox would each deliver every message, and so would one
 * beside instances with `QUEUE_BACKEND=postgres` (they claim the same rows).
 * So every runtime holds one lock per database schema for its lifetime:
 *
 *   in-memory queue  ─► exclusive   (alone on the schema)
 *   postgres queue   ─► shared      (any number of them, but no in-memory one)
 *
 * A runtime that cannot have it waits for the holders to stop (a rolling
 * restart, or a rolling switch from one backend to the other) up to
 * INSTANCE_LOCK_WAIT_MS, then refuses to start saying who holds it and naming
 * `QUEUE_BACKEND=postgres`. The runtime takes it before the outbox relay's
 * start-up recovery: an instance that read the outbox while another was still
 * acking would deliver those messages again once it got the lock.
 *
 * - PostgreSQL: a session advisory lock keyed by (this service, the schema's
 *   hash) — tests run many schemas on one database at once, and an advisory
 *   lock is per database already — on a connection of its own, opened with
 *   the runtime's client settings (same server, same search path) but outside
 *   its pool: a pooled connection would take the lock back to the pool with
 *   it, and one reserved from the pool for good would shrink it (tried: the
 *   connection-fault tests, whose pool has 4, then handed out a dead
 *   connection more often). Unlocked explicitly on release, then closed. If
 *   that connection dies, the server drops the lock with it: the instance
 *   notices within `keepEvery` and takes it again on a new one (see `keep`).
 * - Embedded PGlite: one session for the whole process, and advisory locks are
 *   re-entrant within a session, so the lock would always be granted. Another
 *   process cannot open the same DATA_DIR anyway (DataDirLock.ts); within the
 *   process, runtimes on one PGlite client are told apart here.
 */
import { PgClient, PgConnection } from "@effect/sql-pg"
import { Clock, type Config, Duration, Effect, Exit, Layer, Scope } from "effect"
import type { SqlError } from "effect/sql"
import { InstanceLockWaitMs, type QueueBackend, QueueBackendSetting, StartupFailed } from "../Settings.ts"

/** The first half of the advisory-lock key: this service's guard ("form"); the second is the schema's hash. */
export const lockClass = 0x666f726d

/** How often a waiting instance asks again. */
const retryEvery = Duration.millis(200)

/** How often a running instance checks that its lock's connection is alive (PostgreSQL). */
export const keepEvery = Duration.seconds(5)

/** Who holds the lock, as far as the waiting instance can tell. */
type Holders = "memory" | "postgres" | "unknown"

/** The runtimes on each PGlite client in this process. */
const embeddedHolders = new WeakMap<object, { memory: boolean; postgres: number }>()

interface Where {
  readonly database: string
  readonly schema: string
  readonly embedded: boolean
}

const describe = (where: Where) =>
  where.embedded
    ? `the embedded database (schema "${where.schema}")`
    : `database "${where.database}" (schema "${where.schema}")`

interface Lock {
  readonly take: Effect.Effect<boolean, SqlError.SqlError>
  readonly holders: Effect.Effect<Holders, SqlError.SqlError>
  readonly release: Effect.Effect<void>
}

const embeddedLock = (sql: object, backend: QueueBackend): Lock => {
  const state = () => {
    let held = embeddedHolders.get(sql)
    if (held === undefined) embeddedHolders.set(sql, (held = { memory: false, postgres: 0 }))
    return held
  }
  return {
    take: Effect.sync(() => {
      const held = state()
      if (held.memory || (backend === "memory" && held.postgres > 0)) return false
      if (backend === "memory") held.memory = true
      else held.postgres++
      return true
    }),
    holders: Effect.sync(() => (state().memory ? "memory" : "postgres")),
    release: Effect.sync(() => {
      const held = state()
      if (backend === "memory") held.memory = false
      else held.postgres--
    })
  }
}

/** A connection of its own, in a scope of its own so that a dead one can be closed and replaced. */
const openConnection = (config: PgConnection.Config, parent: Scope.Scope) =>
  Effect.gen(function* () {
    const scope = yield* Scope.fork(parent)
    const connection = yield* Scope.provide(PgConnection.make(config), scope).pipe(
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    // The server keeps a session (and its lock) until it notices the client is gone: at once when the process
    // dies, but after the system's TCP keepalive (hours) when its host or the network does. Ask it to probe an
    // idle session after 10 s, so a successor waits ~25 s, not hours. Best effort (Unix sockets ignore it).
    yield* connection
      .query(
        "SELECT set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)"
      )
      .pipe(Effect.ignore)
    return { connection, close: Scope.close(scope, Exit.void) }
  })

const postgresLock = (
  first: { readonly connection: PgConnection.PgConnection; readonly close: Effect.Effect<void> },
  backend: QueueBackend
) => {
  const suffix = backend === "memory" ? "" : "_shared"
  let current = first
  const lock = {
    get opened() {
      return current
    },
    replace: (next: typeof first) => (current = next),
    take: Effect.suspend(() =>
      Effect.map(
        current.connection.query(`SELECT pg_try_advisory_lock${suffix}($1, hashtext(current_schema())) AS locked`, [
          lockClass
        ]),
        (result) => result.rows[0]?.["locked"] === true
      )
    ),
    // An exclusive holder is an in-memory queue; shared ones are queues in the database.
    holders: Effect.suspend(() =>
      Effect.map(
        current.connection.query(
          `SELECT bool_or(mode = 'ExclusiveLock') AS memory, bool_or(mode = 'ShareLock') AS postgres
             FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = $1 AND objsubid = 2
              AND objid::bigint = hashtext(current_schema())::bigint & 4294967295`,
          [lockClass]
        ),
        (result): Holders =>
          result.rows[0]?.["memory"] === true
            ? "memory"
            : result.rows[0]?.["postgres"] === true
              ? "postgres"
              : "unknown"
      )
    ),
    alive: Effect.suspend(() => Effect.isSuccess(current.connection.query("SELECT 1"))),
    // The connection may have died with the lock (the server then released it): nothing left to undo.
    release: Effect.suspend(() =>
      current.connection
        .query(`SELECT pg_advisory_unlock${suffix}($1, hashtext(current_schema()))`, [lockClass])
        .pipe(Effect.ignore, Effect.andThen(current.close))
    )
  }
  return lock
}

/**
 * While the runtime runs: the lock's connection is checked every `keepEvery`;
 * when it died (a network cut, a database restart: the server dropped the
 * lock with it), a new one takes the lock again. If another instance took it
 * meanwhile, every check says so at error level until one of them stops: the
 * instance is not stopped for it (it would fail its in-flight work), but two
 * in-memory queues now deliver every message twice.
 */
const keep = (
  lock: ReturnType<typeof postgresLock>,
  config: PgConnection.Config,
  backend: QueueBackend,
  where: Where
) =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    let held = true
    for (;;) {
      yield* Effect.sleep(keepEvery)
      if (held && (yield* lock.alive)) continue
      if (held) {
        held = false
        yield* lock.opened.close
        yield* Effect.logWarning(`instance lock: its connection to ${describe(where)} was lost; taking it again`)
      }
      if (!(yield* lock.alive)) {
        const reopened = yield* Effect.result(openConnection(config, scope))
        if (reopened._tag === "Failure") continue // the database is away: the next check tries again
        lock.replace(reopened.success)
      }
      const taken = yield* Effect.result(lock.take)
      if (taken._tag === "Failure") continue
      if (taken.success) {
        held = true
        yield* Effect.logInfo(`instance lock: taken again on ${describe(where)}`)
      } else {
        const { who, why } = conflict(
          backend,
          yield* Effect.orElseSucceed(lock.holders, () => "unknown" as const),
          where
        )
        yield* Effect.logError(`instance lock: lost with its connection, and meanwhile ${who}: ${why}`)
      }
    }
  })

/** Why this runtime may not start beside `holders`: the refusal and the waiting line say it. */
const conflict = (backend: QueueBackend, holders: Holders, where: Where) => {
  const on = describe(where)
  if (backend === "postgres" || holders === "memory") {
    return {
      them: false,
      who: `another instance with the in-memory queue (QUEUE_BACKEND=memory) is running on ${on}`,
      why:
        backend === "memory"
          ? "two in-memory queues over one outbox would each deliver every message. " +
            "To run several instances, set QUEUE_BACKEND=postgres on every one of them."
          : "its queue would deliver every message a second time beside this instance's (QUEUE_BACKEND=postgres). " +
            "Stop it, or restart it with QUEUE_BACKEND=postgres."
    }
  }
  return {
    them: true,
    who:
      holders === "postgres"
        ? `instances with the queue in the database (QUEUE_BACKEND=postgres) are running on ${on}`
        : `another instance is running on ${on}`,
    why:
      "an in-memory queue beside them would deliver every message a second time. " +
      "To run several instances, set QUEUE_BACKEND=postgres on this one too."
  }
}

/**
 * Takes the lock for the scope's lifetime — exclusive for the in-memory queue,
 * shared for the queue in the database — waiting up to `wait` for the holders
 * that exclude it to stop; fails with `StartupFailed` after that.
 */
export const acquire = (options: {
  readonly queueBackend: QueueBackend
  readonly wait: Duration.Input
}): Effect.Effect<void, StartupFailed | SqlError.SqlError, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const [where] = yield* sql<Where>`
      SELECT current_database() AS database, current_schema() AS schema, version() LIKE '%PGlite%' AS embedded`
    const scope = yield* Effect.scope
    const connected = where!.embedded
      ? undefined
      : postgresLock(yield* openConnection(sql.config, scope), options.queueBackend)
    const lock: Lock = connected ?? embeddedLock(sql, options.queueBackend)
    const waitMs = Duration.toMillis(Duration.fromInputUnsafe(options.wait))
    const deadline = (yield* Clock.currentTimeMillis) + waitMs
    for (let attempt = 1; ; attempt++) {
      if (yield* lock.take) break
      const { them, who, why } = conflict(options.queueBackend, yield* lock.holders, where!)
      const left = deadline - (yield* Clock.currentTimeMillis)
      if (left <= 0) {
        return yield* new StartupFailed({
          message: `${who} and did not stop within INSTANCE_LOCK_WAIT_MS=${waitMs}: ${why}`
        })
      }
      if (attempt === 1) {
        yield* Effect.logWarning(
          `${who}: waiting up to ${waitMs} ms (INSTANCE_LOCK_WAIT_MS) for ${them ? "them" : "it"} to stop`
        )
      }
      yield* Effect.sleep(Duration.min(retryEvery, Duration.millis(left)))
    }
    yield* Effect.addFinalizer(() => lock.release)
    // Interrupted before the release above runs (finalizers run in reverse).
    if (connected !== undefined) yield* Effect.forkScoped(keep(connected, sql.config, options.queueBackend, where!))
  })

/** The lock a runtime needs for its queue backend. Unset options come from QUEUE_BACKEND and INSTANCE_LOCK_WAIT_MS. */
export const layerFor = (options: {
  readonly queueBackend?: QueueBackend | undefined
  readonly instanceLockWait?: Duration.Input | undefined
}): Layer.Layer<never, StartupFailed | SqlError.SqlError | Config.ConfigError, PgClient.PgClient> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const queueBackend = options.queueBackend ?? (yield* QueueBackendSetting.config)
      const wait = options.instanceLockWait ?? Duration.millis(yield* InstanceLockWaitMs.config)
      return Layer.effectDiscard(acquire({ queueBackend, wait }))
    })
  )
