/**
 * The in-memory queue's guard (InstanceLock.ts), on every database: two
 * runtimes with the in-memory queue on one database schema in one process —
 * what a library user embedding two gets, and, on PostgreSQL, what two
 * processes get (a connection each) — are one too many. The second waits for
 * the first up to `instanceLockWait` (TestClock: the wait is driven, never
 * slept), then fails with StartupFailed naming QUEUE_BACKEND=postgres; if the
 * first stops within the wait (a rolling restart) the second starts, and its
 * outbox recovery runs only then, so what the first settled meanwhile is not
 * delivered again. Runtimes with the queue in the database share the lock, and
 * exclude an in-memory one (and it them). The waiting instance's log line is the hand-off.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, Scope } from "effect"
import { TestClock } from "effect/testing"
import { randomBytes } from "node:crypto"
import { FormulaIntake } from "../../src/intake/FormulaIntake.ts"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"
import * as Runtime from "../../src/Runtime.ts"
import { type QueueBackend, StartupFailed } from "../../src/Settings.ts"
import * as InstanceLock from "../../src/store/InstanceLock.ts"
import { testDatabases } from "../support/Databases.ts"

const options = (instanceLockWait: Duration.Input, queueBackend: QueueBackend): Runtime.RuntimeOptions => ({
  queue: { capacity: 100, visibilityTimeout: Duration.minutes(1), maxDeliveries: 5 },
  queueBackend,
  queuePollInterval: Duration.hours(1),
  instanceLockWait,
  cacheCapacity: 100,
  // Never reached: the TestClock moves only as far as the tests move it.
  relayInterval: Duration.hours(1),
  webhooks: false,
  statsFlushInterval: false
})

/** A logger that completes `waiting` at the guard's "waiting up to …" line. */
const waitingLogger = (waiting: Deferred.Deferred<string>) =>
  Logger.layer([
    Logger.make(({ message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      if (text.includes("waiting up to")) Deferred.doneUnsafe(waiting, Exit.succeed(text))
    })
  ])

/** The hand-off, failing clearly (within 20 s of real time) if the second runtime never waits. */
const awaitWaiting = (waiting: Deferred.Deferred<string>) =>
  TestClock.withLive(
    Deferred.await(waiting).pipe(
      Effect.timeoutOrElse({
        duration: "20 seconds",
        orElse: () => Effect.sync(() => assert.fail("the second runtime did not wait for the first"))
      })
    )
  )

const makeUp = () => {
  const tag = randomBytes(6).toString("hex")
  return { name: `Guard ${tag}`, materials: [{ name: `Orris ${tag}`, concentration: 7.5 }] }
}

for (const database of testDatabases) {
  describe(`the in-memory queue's guard on ${database.name}`, () => {
    /** One database (one client), shared by the runtimes of a test; closed with the test. */
    const shared = Effect.gen(function* () {
      const context = yield* Layer.build(database.layer())
      const runtime = (instanceLockWait: Duration.Input, queueBackend: QueueBackend) =>
        Runtime.layerWith(Layer.succeedContext(context), options(instanceLockWait, queueBackend))
      /** Builds a runtime in a scope of its own; returns its services and the scope that ends it. */
      const start = (instanceLockWait: Duration.Input, queueBackend: QueueBackend = "memory") =>
        Effect.gen(function* () {
          const scope = yield* Scope.fork(yield* Effect.scope) // closed by the test at the latest
          const services = yield* Layer.buildWithScope(runtime(instanceLockWait, queueBackend), scope).pipe(
            Effect.onError(() => Scope.close(scope, Exit.void))
          )
          return { services, stop: Scope.close(scope, Exit.void) }
        })
      return { context, start }
    })

    it.effect(
      "a second runtime with the in-memory queue waits up to instanceLockWait, then fails with StartupFailed naming QUEUE_BACKEND=postgres — protects the guard",
      () =>
        Effect.gen(function* () {
          const { start } = yield* shared
          const first = yield* start(0)
          const waiting = yield* Deferred.make<string>()
          const second = yield* Effect.forkChild(start("30 seconds").pipe(Effect.provide(waitingLogger(waiting))), {
            startImmediately: true
          })
          const line = yield* awaitWaiting(waiting)
          assert.include(line, "another instance with the in-memory queue (QUEUE_BACKEND=memory) is running on")
          assert.include(line, "waiting up to 30000 ms (INSTANCE_LOCK_WAIT_MS)")

          yield* TestClock.adjust("29 seconds")
          assert.isUndefined(second.pollUnsafe(), "still waiting before instanceLockWait has passed")
          yield* TestClock.adjust("1 second")
          const error = yield* Effect.flip(Fiber.join(second))
          assert.instanceOf(error, StartupFailed, "the second runtime did not start")
          const message = (error as StartupFailed).message
          assert.include(message, "another instance with the in-memory queue (QUEUE_BACKEND=memory) is running on")
          assert.include(message, "INSTANCE_LOCK_WAIT_MS=30000")
          assert.include(message, "two in-memory queues over one outbox would each deliver every message")
          assert.include(message, "set QUEUE_BACKEND=postgres")

          // The first one is unharmed and, once stopped, lets the next one start at once.
          yield* FormulaIntake.use((intake) => intake.submit(makeUp())).pipe(Effect.provide(first.services))
          yield* first.stop
          const third = yield* start(0)
          yield* third.stop
        }).pipe(Effect.scoped),
      60_000
    )

    it.effect(
      "rolling restart: the second runtime waits while the first settles a message, starts once the first stops, and does not deliver that message again — protects taking the lock before the outbox relay's recovery",
      () =>
        Effect.gen(function* () {
          const { start } = yield* shared
          const first = yield* start(0)
          const submitted = yield* FormulaIntake.use((intake) => intake.submit(makeUp())).pipe(
            Effect.provide(first.services)
          )

          const waiting = yield* Deferred.make<string>()
          const second = yield* Effect.forkChild(start("1 hour").pipe(Effect.provide(waitingLogger(waiting))), {
            startImmediately: true
          })
          yield* awaitWaiting(waiting)

          // Meanwhile the first instance's consumer takes the message and acks it: its outbox row is settled.
          yield* Effect.gen(function* () {
            const queue = yield* MessageQueue
            const [delivery] = yield* queue.receive({ max: 1 })
            assert.strictEqual(delivery?.messageId, submitted.messageId)
            yield* queue.ack(delivery!.receipt, { result: { ok: true } })
          }).pipe(Effect.provide(first.services))
          assert.isUndefined(second.pollUnsafe(), "the second waits while the first runs")

          yield* first.stop
          yield* TestClock.adjust("200 millis") // its next try
          const next = yield* Fiber.join(second)
          const stats = yield* MessageQueue.use((queue) => queue.stats).pipe(Effect.provide(next.services))
          assert.strictEqual(stats.size, 0, "the message the first instance settled is not in the second's queue")
          assert.deepStrictEqual(
            yield* MessageQueue.use((queue) => queue.receive({ max: 10 })).pipe(Effect.provide(next.services)),
            [],
            "nothing delivered again"
          )
          yield* next.stop
        }).pipe(Effect.scoped),
      60_000
    )

    if (database.name === "postgres") {
      it.effect(
        "the lock's connection killed: the running instance takes the lock again on a new connection within keepEvery, and a second in-memory runtime is still refused — protects keeping the lock",
        () =>
          Effect.gen(function* () {
            const { context, start } = yield* shared
            const retaken = yield* Deferred.make<void>()
            const first = yield* start(0).pipe(
              Effect.provide(
                Logger.layer([
                  Logger.make(({ message }) => {
                    if (String(message).includes("instance lock: taken again")) Deferred.doneUnsafe(retaken, Exit.void)
                  })
                ])
              )
            )
            const killed = yield* PgClient.PgClient.use(
              (sql) => sql<{ readonly killed: boolean }>`
                SELECT pg_terminate_backend(pid) AS killed FROM pg_locks
                 WHERE locktype = 'advisory' AND granted AND classid = ${InstanceLock.lockClass} AND objsubid = 2
                   AND objid::bigint = hashtext(current_schema())::bigint & 4294967295`
            ).pipe(Effect.provide(context))
            assert.deepStrictEqual(
              killed.map((row) => row.killed),
              [true],
              "the lock's one connection was terminated"
            )

            yield* TestClock.adjust(InstanceLock.keepEvery)
            yield* TestClock.withLive(
              Deferred.await(retaken).pipe(
                Effect.timeoutOrElse({
                  duration: "20 seconds",
                  orElse: () => Effect.sync(() => assert.fail("the lock was not taken again"))
                })
              )
            )
            const refused = yield* Effect.flip(start(0))
            assert.instanceOf(refused, StartupFailed, "the lock is held again")
            yield* first.stop
          }).pipe(Effect.scoped),
        60_000
      )
    }

    it.effect(
      "runtimes with the queue in the database start side by side; an in-memory one beside them is refused naming them, and one of them is refused beside an in-memory one — protects the shared lock",
      () =>
        Effect.gen(function* () {
          const { start } = yield* shared
          const a = yield* start(0, "postgres")
          const b = yield* start(0, "postgres")
          const memory = yield* Effect.flip(start(0, "memory"))
          assert.instanceOf(memory, StartupFailed)
          assert.include(
            (memory as StartupFailed).message,
            "instances with the queue in the database (QUEUE_BACKEND=postgres) are running on"
          )
          assert.include((memory as StartupFailed).message, "set QUEUE_BACKEND=postgres on this one too")
          yield* a.stop
          yield* b.stop

          const alone = yield* start(0, "memory")
          const inDatabase = yield* Effect.flip(start(0, "postgres"))
          assert.instanceOf(inDatabase, StartupFailed)
          assert.include(
            (inDatabase as StartupFailed).message,
            "another instance with the in-memory queue (QUEUE_BACKEND=memory) is running on"
          )
          assert.include((inDatabase as StartupFailed).message, "restart it with QUEUE_BACKEND=postgres")
          yield* alone.stop
        }).pipe(Effect.scoped),
      60_000
    )
  })
}
