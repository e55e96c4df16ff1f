/**
 * The submit path under connection faults, on every database, injected on the
 * wire (test/support/FaultyStream.ts) around the one statement that stores a
 * submission — formula, materials and outbox row, committed together
 * (FormulaSql.insertNewFormulas) — before it reaches the server, after it
 * committed with the answer lost, held, or arriving late; alone and as a
 * group-committed batch (many formulas in that statement).
 * After each fault the atomicity invariants must hold (test/support/Invariants.ts):
 *   (a) every formula has exactly one outbox row;
 *   (b) queued + acked messages = outbox rows of committed formulas;
 *   (c) a submission that failed left nothing: the same make-up submitted
 *       again is created, not a duplicate — and one reported created is stored;
 *   (d) the runtime recovers by itself: the next submission on the same
 *       runtime (its pool reconnecting) succeeds.
 *
 * Every test gets a fresh runtime and database, so one failure cannot leak
 * into the next. Each test names the mechanism it protects; removing that
 * mechanism makes it fail.
 */
import { assert, describe, it } from "@effect/vitest"
import type { PgClient } from "@effect/sql-pg"
import { Cause, Duration, Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { FormulaIntake, type SubmitError } from "../../src/intake/FormulaIntake.ts"
import { OutboxRelay } from "../../src/intake/OutboxRelay.ts"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"
import * as Runtime from "../../src/Runtime.ts"
import type { FormulaRow } from "../../src/store/FormulaStore.ts"
import { postgresUrl } from "../support/Databases.ts"
import { FaultInjector, type FaultPoint, type FaultyDatabase, faultyDatabases } from "../support/FaultyStream.ts"
import { assertInvariants, formulasInDatabase } from "../support/Invariants.ts"

/** One outbox relay pass (the periodic one is off in these tests). */
const relayOnce = OutboxRelay.use((relay) => relay.relay)

/** A make-up no other test uses. */
const makeUp = () => {
  const tag = randomBytes(6).toString("hex")
  return {
    name: `Fault ${tag}`,
    materials: [
      { name: `Bergamot Oil ${tag}`, concentration: 15.5 },
      { name: `Hedione ${tag}`, concentration: "20.125" },
      { name: `Iso E Super ${tag}`, concentration: 7 }
    ]
  }
}

const submit = (input: unknown): Effect.Effect<Exit.Exit<FormulaRow, SubmitError>, never, FormulaIntake> =>
  FormulaIntake.use((intake) => intake.submit(input)).pipe(Effect.exit)

/** The failure's tag, or a description of a defect / interruption (which are never acceptable answers). */
const failureTag = (exit: Exit.Exit<unknown, SubmitError>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const error = Cause.findErrorOption(exit.cause)
  return error._tag === "Some" ? error.value._tag : `defect or interruption: ${Cause.pretty(exit.cause).slice(0, 400)}`
}

/** (c)+(d): the make-up of a failed submission is not stored, so submitting it again creates it. */
const assertResubmissionCreates = (input: unknown) =>
  Effect.gen(function* () {
    const again = yield* submit(input)
    assert.isTrue(Exit.isSuccess(again), `resubmission is created, got ${failureTag(again)}`)
    return (again as Exit.Success<FormulaRow>).value
  })

const settings: Runtime.RuntimeOptions = {
  queue: { capacity: 1_000, visibilityTimeout: Duration.minutes(1), maxDeliveries: 5 },
  cacheCapacity: 1_000,
  // The periodic relay would hide a missing message; tests run it explicitly where it is the mechanism.
  relayInterval: Duration.hours(1),
  // The production defaults, independent of the environment: a lone submission is a batch of one.
  groupCommit: { maxBatch: 64, linger: 0, workers: 2 }
}

type Services = Runtime.RuntimeServices | PgClient.PgClient | SqlClient.SqlClient

/** Runs `body` on a fresh runtime over a fresh database behind a fresh injector. */
const onRuntime = <A, E>(
  database: FaultyDatabase,
  body: (injector: FaultInjector) => Effect.Effect<A, E, Services>,
  options: Runtime.RuntimeOptions = settings
) =>
  Effect.suspend(() => {
    const injector = new FaultInjector()
    const db = database.layer(injector)
    return body(injector).pipe(Effect.provide(Runtime.layerWith(db, options).pipe(Layer.provideMerge(db))))
  })

/** The submission's statement, as the fault injector recognises it. */
const STORE = "INSERT INTO formulas"

/** Where a lost connection must leave the submission stored once, announced once, after the store's retry. */
const steps: ReadonlyArray<{ readonly point: FaultPoint; readonly title: string }> = [
  { point: "before", title: "before the statement reaches the server" },
  { point: "after", title: "after the statement committed (answer lost)" }
]

const timeout = 45_000

/** The periodic relay's interval where a test lets the TestClock run it. */
const relayInterval = Duration.seconds(5)

/**
 * Submits `input` with the connection cut at `point` of its statement and,
 * the moment that happens, the database gone too, so the store's retry cannot
 * reach it: the answer is DatabaseUnavailable. The database is back after.
 */
const submitAsDatabaseGoes = (injector: FaultInjector, point: FaultPoint, input: unknown) =>
  Effect.gen(function* () {
    const fault = injector.arm(STORE, point)
    yield* Effect.forkChild(
      Effect.andThen(
        fault.fired,
        Effect.sync(() => injector.setOffline(true))
      )
    )
    const exit = yield* submit(input)
    assert.isTrue(yield* fault.hasFired, "the fault fired")
    assert.strictEqual(failureTag(exit), "DatabaseUnavailable")
    injector.setOffline(false)
    return fault
  })

for (const database of faultyDatabases(postgresUrl)) {
  describe(`submit under connection faults on ${database.name}`, () => {
    for (const step of steps) {
      it.live(
        `connection lost once ${step.title}: the store's second attempt (same ids) reports it created — stored once, announced once (a, b, d) — protects the retry that resolves an unknown outcome, and the pool reconnecting`,
        () =>
          onRuntime(database, (injector) =>
            Effect.gen(function* () {
              const input = makeUp()
              const fault = injector.arm(STORE, step.point)
              const exit = yield* submit(input)
              assert.isTrue(yield* fault.hasFired, "the fault fired")
              assert.isTrue(Exit.isSuccess(exit), `the retry creates it, got ${failureTag(exit)}`)
              const created = (exit as Exit.Success<FormulaRow>).value
              const formulas = yield* formulasInDatabase
              assert.strictEqual(formulas.size, 1, "stored once")
              assert.strictEqual(formulas.get(created.id), created.fingerprint)
              const report = yield* assertInvariants
              assert.deepStrictEqual(report.delivered, [created.messageId], "announced once")
            })
          ),
        timeout
      )
    }

    it.live(
      "connection lost before the statement reaches the server and the database gone: DatabaseUnavailable, nothing stored, no message; the same make-up is created when it returns (a, b, c, d) — protects the reservation's abort and the pool reconnecting",
      () =>
        onRuntime(database, (injector) =>
          Effect.gen(function* () {
            const input = makeUp()
            yield* submitAsDatabaseGoes(injector, "before", input)
            assert.strictEqual((yield* formulasInDatabase).size, 0, "nothing was stored")
            yield* relayOnce
            yield* assertInvariants
            const created = yield* assertResubmissionCreates(input)
            const report = yield* assertInvariants
            assert.deepStrictEqual(report.delivered, [created.messageId])
          })
        ),
      timeout
    )

    it.live(
      "connection lost after the statement committed (answer lost) and the database gone: DatabaseUnavailable, yet the formula is stored and the relay announces it once the database returns, once (a, b) — protects reporting an unknown outcome to the outbox relay",
      () =>
        onRuntime(database, (injector) =>
          Effect.gen(function* () {
            const input = makeUp()
            yield* submitAsDatabaseGoes(injector, "after", input)
            assert.strictEqual((yield* formulasInDatabase).size, 1, "the statement committed")
            assert.strictEqual(yield* relayOnce, 1, "the relay enqueues the committed formula's message")
            assert.strictEqual(yield* relayOnce, 0, "and only once")
            const report = yield* assertInvariants
            assert.strictEqual(report.delivered.length, 1)
            assert.strictEqual(failureTag(yield* submit(input)), "Duplicate", "its make-up is taken")
          })
        ),
      timeout
    )

    it.effect(
      "connection lost while the statement is on its way, the database gone, and the statement landing only after the client gave up: DatabaseUnavailable now, yet announced once by the periodic relay once it landed (a, b) — on the TestClock, no real waits — protects remembering an uncertain outcome until the database confirms it",
      () =>
        onRuntime(
          database,
          (injector) =>
            Effect.gen(function* () {
              const queue = yield* MessageQueue
              const input = makeUp()
              const fault = yield* submitAsDatabaseGoes(injector, "stall", input)
              // PGlite is one session, which the stalled connection holds until it is gone: nothing
              // else reaches that database before the statement lands.
              if (database.name === "postgres") {
                assert.strictEqual((yield* formulasInDatabase).size, 0, "not landed yet")
                // Asked before it landed, the database knows nothing of it: the relay keeps asking.
                assert.strictEqual(yield* relayOnce, 0)
              }

              yield* fault.release
              yield* fault.landed
              const stored = yield* formulasInDatabase
              assert.strictEqual(stored.size, 1, "the statement took effect after its submitter was answered 503")

              // A consumer waits (on the TestClock, so only a message ends its wait) while one interval passes.
              const consumer = yield* Effect.forkChild(queue.receive({ max: 10, wait: Duration.hours(1) }), {
                startImmediately: true
              })
              yield* TestClock.adjust(relayInterval)
              const deliveries = yield* TestClock.withLive(
                Fiber.join(consumer).pipe(
                  Effect.timeoutOrElse({
                    duration: Duration.seconds(30),
                    orElse: () => Effect.die(new Error("the committed message was never announced"))
                  })
                )
              )
              assert.strictEqual(deliveries.length, 1)
              const body = deliveries[0]!.body as { readonly formulaId: string }
              assert.isTrue(stored.has(body.formulaId), "the message announces the formula that landed")
              yield* queue.release(deliveries[0]!.receipt)
              const report = yield* assertInvariants
              assert.deepStrictEqual(report.delivered, [deliveries[0]!.messageId], "announced once")
              assert.strictEqual(failureTag(yield* submit(input)), "Duplicate", "its make-up is taken")
            }),
          { ...settings, relayInterval }
        ),
      timeout
    )

    it.live(
      "connection lost after the statement committed (answer lost): reported Created, stored once, announced once, its make-up taken (a, b, c) — protects the store asking the database whether an unknown outcome took effect",
      () =>
        onRuntime(database, (injector) =>
          Effect.gen(function* () {
            const input = makeUp()
            const fault = injector.arm(STORE, "after")
            const exit = yield* submit(input)
            assert.isTrue(yield* fault.hasFired, "the fault fired")
            assert.isTrue(Exit.isSuccess(exit), `a committed submission is reported created, got ${failureTag(exit)}`)
            const created = (exit as Exit.Success<FormulaRow>).value
            const formulas = yield* formulasInDatabase
            assert.strictEqual(formulas.get(created.id), created.fingerprint, "the reported formula is stored")
            // Its message is in the queue now (the reservation was committed), without waiting for a relay.
            const report = yield* assertInvariants
            assert.deepStrictEqual(report.delivered, [created.messageId])
            assert.strictEqual(failureTag(yield* submit(input)), "Duplicate")
            yield* assertInvariants
          })
        ),
      timeout
    )

    it.live(
      "connection lost while the statement is still on its way (the server runs it only after the client saw the connection die): a submission reported failed never leaves a stored formula (c) — protects resolving an unknown outcome with the same ids, so whichever attempt runs second writes nothing",
      () =>
        onRuntime(database, (injector) =>
          Effect.gen(function* () {
            const input = makeUp()
            const fault = injector.arm(STORE, "late", { lateDelay: 300 })
            const exit = yield* submit(input)
            assert.isTrue(yield* fault.hasFired, "the fault fired")
            // The late statement has reached the server and been answered (it took effect or not by then).
            yield* fault.landed
            if (Exit.isSuccess(exit)) {
              assert.isTrue((yield* formulasInDatabase).has(exit.value.id), "a submission reported created is stored")
            } else {
              assert.strictEqual(failureTag(exit), "DatabaseUnavailable")
              const again = yield* submit(input)
              assert.isTrue(
                Exit.isSuccess(again),
                `the submission was answered DatabaseUnavailable (503), yet its formula was committed afterwards: the same make-up submitted again is ${failureTag(again)}`
              )
            }
            yield* relayOnce
            yield* assertInvariants
          })
        ),
      timeout
    )

    it.live(
      "interrupted right after the database committed, before the queue commit: the committed formula's message is re-enqueued by the outbox relay, once (a, b) — protects the outbox relay and the reservation's abort on interruption",
      () =>
        onRuntime(database, (injector) =>
          Effect.gen(function* () {
            const queue = yield* MessageQueue
            const input = makeUp()
            const fault = injector.arm(STORE, "hold")
            const fiber = yield* submit(input).pipe(Effect.forkChild)
            // The server has committed; its answer is held back while the submitter is interrupted.
            yield* fault.fired
            // Started at once: the interruption is signalled before the answer is let through.
            const interrupting = yield* Fiber.interrupt(fiber).pipe(Effect.forkChild({ startImmediately: true }))
            yield* fault.release
            yield* Fiber.join(interrupting)
            const exit = yield* Fiber.await(fiber)
            assert.isTrue(Exit.hasInterrupts(exit), "the submission was interrupted")

            const stored = yield* formulasInDatabase
            assert.strictEqual(stored.size, 1, "the interrupted submission's formula is committed")
            const stats = yield* queue.stats
            assert.strictEqual(stats.pending, 0, "the reservation was aborted, not left pending")
            assert.strictEqual(stats.ready, 0, "the interrupted submitter made no message visible")

            assert.strictEqual(yield* relayOnce, 1, "the relay enqueues the committed formula's message")
            assert.strictEqual(yield* relayOnce, 0, "and only once")
            const report = yield* assertInvariants
            assert.strictEqual(report.delivered.length, 1)
            assert.strictEqual(failureTag(yield* submit(input)), "Duplicate", "its make-up is taken")
            yield* assertInvariants
          })
        ),
      timeout
    )

    it.live(
      "database away: DatabaseUnavailable within a bounded time, nothing stored; when it returns the same runtime creates the make-up (c, d) — protects the bounded wait and the pool reconnecting",
      () =>
        onRuntime(database, (injector) =>
          Effect.gen(function* () {
            const input = makeUp()
            injector.setOffline(true)
            const started = Date.now()
            const exit = yield* submit(input).pipe(Effect.ensuring(Effect.sync(() => injector.setOffline(false))))
            const elapsed = Date.now() - started
            assert.strictEqual(failureTag(exit), "DatabaseUnavailable")
            assert.isBelow(elapsed, 15_000, "the failure comes within a bounded time")
            yield* assertInvariants
            yield* assertResubmissionCreates(input)
            yield* assertInvariants
          })
        ),
      timeout
    )

    it.live(
      "queue full: QueueFull at once, no INSERT run, nothing stored; once there is room the make-up is created (b, c) — protects reserving the queue slot before the transaction",
      () =>
        onRuntime(
          database,
          (injector) =>
            Effect.gen(function* () {
              const first = makeUp()
              const second = makeUp()
              assert.isTrue(Exit.isSuccess(yield* submit(first)))
              const stats = yield* MessageQueue.use((queue) => queue.stats)
              assert.strictEqual(stats.available, 0, "the queue (capacity 1) is full")

              const statements = injector.log.length
              const exit = yield* submit(second)
              assert.strictEqual(failureTag(exit), "QueueFull")
              assert.deepStrictEqual(
                injector.log.slice(statements).filter((sql) => sql.includes("INSERT")),
                [],
                "no INSERT ran for a submission the queue refused"
              )
              assert.strictEqual((yield* formulasInDatabase).size, 1, "nothing was stored")
              // Draining makes room; the refused make-up was not stored, so it is created now.
              yield* assertInvariants
              yield* assertResubmissionCreates(second)
              yield* assertInvariants
            }),
          { ...settings, queue: { ...settings.queue, capacity: 1 } }
        ),
      timeout
    )

    // Group commit: concurrent submissions written in one transaction. A linger
    // makes the five submissions below one batch.
    const batched: Runtime.RuntimeOptions = {
      ...settings,
      groupCommit: { maxBatch: 64, linger: Duration.millis(150), workers: 1 }
    }
    const batch: ReadonlyArray<{ readonly point: FaultPoint; readonly title: string }> = [
      { point: "before", title: "before the batch's statement reaches the server" },
      { point: "after", title: "after the batch's statement committed (answer lost)" }
    ]
    for (const step of batch) {
      it.live(
        `group commit, connection lost ${step.title}: every submission of the batch is created exactly once (a, b, c, d) — protects the batch's "did it commit?" question and the per-item fallback`,
        () =>
          onRuntime(
            database,
            (injector) =>
              Effect.gen(function* () {
                const inputs = Array.from({ length: 5 }, makeUp)
                const fault = injector.arm(STORE, step.point)
                const exits = yield* Effect.forEach(inputs, submit, { concurrency: "unbounded" })
                assert.isTrue(yield* fault.hasFired, "the fault fired")
                assert.isTrue(
                  injector.log.some((sql) => sql.includes("unnest")),
                  "the submissions were written as a batch"
                )
                const created = exits.map((exit, index) => {
                  assert.isTrue(Exit.isSuccess(exit), `submission ${index} is created, got ${failureTag(exit)}`)
                  return (exit as Exit.Success<FormulaRow>).value
                })
                const formulas = yield* formulasInDatabase
                assert.strictEqual(formulas.size, 5)
                for (const formula of created) assert.strictEqual(formulas.get(formula.id), formula.fingerprint)
                const report = yield* assertInvariants
                assert.sameMembers(
                  [...report.delivered],
                  created.map((formula) => formula.messageId)
                )
              }),
            batched
          ),
        timeout
      )
    }

    it.live(
      "group commit, connection lost while the batch's statement is still on its way: each submission is either created and stored, or failed and not stored (c) — protects resolving a batch's unknown outcome item by item with the same ids",
      () =>
        onRuntime(
          database,
          (injector) =>
            Effect.gen(function* () {
              const inputs = Array.from({ length: 5 }, makeUp)
              const fault = injector.arm(STORE, "late", { lateDelay: 300 })
              const exits = yield* Effect.forEach(inputs, submit, { concurrency: "unbounded" })
              assert.isTrue(yield* fault.hasFired, "the fault fired")
              yield* fault.landed
              const formulas = yield* formulasInDatabase
              for (const [index, exit] of exits.entries()) {
                if (Exit.isSuccess(exit)) {
                  assert.isTrue(formulas.has(exit.value.id), `submission ${index}, reported created, is stored`)
                } else {
                  assert.strictEqual(
                    failureTag(exit),
                    "DatabaseUnavailable",
                    `submission ${index}, a make-up nobody else sent, is created or unavailable`
                  )
                  const again = yield* submit(inputs[index])
                  assert.isTrue(
                    Exit.isSuccess(again),
                    `submission ${index} was answered DatabaseUnavailable, yet its formula was committed afterwards: the same make-up submitted again is ${failureTag(again)}`
                  )
                }
              }
              yield* relayOnce
              yield* assertInvariants
            }),
          batched
        ),
      timeout
    )
  })
}
