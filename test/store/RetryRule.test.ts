/**
 * The store's retry rule, on every database: only a connection failure is an
 * unknown outcome worth running a write again for; an error the server
 * answered surfaces — a defect for a bug (a unique violation), a typed
 * `DatabaseUnavailable` for a refusal (deadlock, serialization failure) —
 * and is never hidden by a second attempt.
 *
 * Errors are injected by a trigger that raises the SQLSTATE named in the
 * formula's name the first time only: it counts attempts with a sequence,
 * which a rolled-back statement does not roll back. And the statement that
 * stores a submission must itself raise nothing under concurrent inserts of
 * one make-up.
 */
import { assert, describe, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import { SecureRandom } from "effect/crypto"
import { isSqlError } from "effect/sql/SqlError"
import { TestClock } from "effect/testing"
import { makeFormulaSql } from "../../src/store/FormulaSql.ts"
import { FormulaStore, type NewFormula } from "../../src/store/FormulaStore.ts"
import { testDatabases } from "../support/Databases.ts"

const newFormula = (fingerprint: string, name = "Summer Breeze"): NewFormula => {
  const id = SecureRandom.uuidV7Unsafe()
  return {
    id,
    fingerprint,
    name,
    materials: [{ name: "Bergamot Oil", concentration: "15.5" }],
    createdAt: new Date(),
    message: { id: SecureRandom.uuidV7Unsafe(), body: { type: "FormulaSubmitted", formulaId: id } }
  }
}

let counter = 0
const uniqueFingerprint = () => `retry-${Date.now()}-${counter++}`

/** A formula whose first insert attempt raises `sqlState` (the trigger reads it from the name). */
const raising = (sqlState: string) => newFormula(uniqueFingerprint(), `raise ${sqlState}`)

const faultTrigger = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    yield* sql`CREATE SEQUENCE fault_attempts`
    yield* sql.unsafe(`
      CREATE FUNCTION fault_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.name LIKE 'raise %' AND nextval('fault_attempts') = 1 THEN
          RAISE EXCEPTION 'injected fault' USING ERRCODE = substr(NEW.name, 7, 5);
        END IF;
        RETURN NEW;
      END $$`)
    yield* sql`CREATE TRIGGER fault_once BEFORE INSERT ON formulas FOR EACH ROW EXECUTE FUNCTION fault_once()`
  })
)

/** Re-arms the trigger: the next `raise` formula fails once. */
const rearm = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  yield* sql`ALTER SEQUENCE fault_attempts RESTART`
})

/** How many times a `raise` formula's insert ran since the last `rearm`. */
const attempts = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const rows = yield* sql<{ readonly last_value: string; readonly is_called: boolean }>`
    SELECT last_value::text AS last_value, is_called FROM fault_attempts`
  return rows[0]!.is_called ? Number(rows[0]!.last_value) : 0
})

const stored = (id: string) => FormulaStore.use((store) => store.findById(id))

/** A store writing each formula alone (the single-item path), or in batches. */
const alone = FormulaStore.layerWith({ maxBatch: 1, linger: 0, workers: 1 })
const batched = FormulaStore.layerWith({ maxBatch: 64, linger: "1 second", workers: 1 })

const defectOf = (exit: Exit.Exit<unknown, unknown>) => {
  assert.isTrue(Exit.isFailure(exit), "the insert failed")
  const cause = (exit as Exit.Failure<unknown, unknown>).cause
  assert.isTrue(Cause.hasDies(cause), `a defect, not a typed failure: ${Cause.pretty(cause)}`)
  return Cause.squash(cause)
}

const failureOf = (exit: Exit.Exit<unknown, unknown>) => {
  assert.isTrue(Exit.isFailure(exit), "the insert failed")
  const error = Cause.findErrorOption((exit as Exit.Failure<unknown, unknown>).cause)
  assert.strictEqual(error._tag, "Some", "a typed failure")
  return (error as { readonly value: { readonly _tag: string; readonly message: string } }).value
}

for (const database of testDatabases) {
  describe(`the store's retry rule on ${database.name}`, () => {
    layer(faultTrigger.pipe(Layer.provideMerge(database.layer())), { excludeTestServices: true })((it) => {
      it.effect(
        "concurrent inserts of one make-up through the storing statement raise no SQL error: one created, the rest nothing — protects ON CONFLICT DO NOTHING (no check-then-insert)",
        () =>
          Effect.gen(function* () {
            const q = makeFormulaSql(yield* PgClient.PgClient)
            for (let round = 0; round < 5; round++) {
              const fingerprint = uniqueFingerprint()
              const formulas = Array.from({ length: 12 }, () => newFormula(fingerprint))
              // Alone, and two to a statement (both of one make-up), all at once.
              const statements = [
                ...formulas.slice(0, 8).map((f) => [f]),
                [formulas[8]!, formulas[9]!],
                [formulas[10]!, formulas[11]!]
              ]
              const inserted = yield* Effect.forEach(statements, (batch) => q.insertNewFormulas(batch), {
                concurrency: "unbounded"
              })
              const created = inserted.flatMap((ids) => [...ids.keys()])
              assert.strictEqual(created.length, 1, "exactly one of the make-up's inserts created it")
              const owners = yield* q.findIdsByFingerprints([fingerprint])
              assert.strictEqual(owners.get(fingerprint), created[0])
            }
          })
      )

      it.effect(
        "a unique violation (23505) is not retried: the insert dies with it, the statement ran once, nothing stored — protects retrying connection failures only",
        () =>
          Effect.gen(function* () {
            yield* rearm
            const formula = raising("23505")
            const exit = yield* Effect.exit(FormulaStore.use((store) => store.insert(formula)))
            const defect = defectOf(exit)
            assert.isTrue(isSqlError(defect) && defect.reason._tag === "UniqueViolation", String(defect))
            assert.strictEqual(yield* attempts, 1, "the statement ran once")
            assert.isUndefined(yield* stored(formula.id))
          }).pipe(Effect.provide(alone))
      )

      for (const [sqlState, what] of [
        ["40P01", "a deadlock"],
        ["40001", "a serialization failure"]
      ] as const) {
        it.effect(
          `${what} (${sqlState}) is not retried: DatabaseUnavailable naming it, the statement ran once, nothing stored — protects retrying connection failures only`,
          () =>
            Effect.gen(function* () {
              yield* rearm
              const formula = raising(sqlState)
              const exit = yield* Effect.exit(FormulaStore.use((store) => store.insert(formula)))
              const error = failureOf(exit)
              assert.strictEqual(error._tag, "DatabaseUnavailable")
              assert.include(error.message, sqlState)
              assert.strictEqual(yield* attempts, 1, "the statement ran once")
              assert.isUndefined(yield* stored(formula.id))
            }).pipe(Effect.provide(alone))
        )
      }

      it.effect(
        "the server shutting the session down (57P01) is a connection failure: the second attempt, same ids, creates it — the rule's other side",
        () =>
          Effect.gen(function* () {
            yield* rearm
            const formula = raising("57P01")
            const outcome = yield* FormulaStore.use((store) => store.insert(formula))
            assert.strictEqual(outcome._tag, "Created")
            assert.strictEqual(yield* attempts, 2, "run again once")
            assert.strictEqual((yield* stored(formula.id))?.id, formula.id)
          }).pipe(Effect.provide(alone))
      )

      it.effect(
        "a group-committed batch the server refused with a unique violation is not written again item by item: every item dies with it, nothing stored — protects the batch's fallback being for unknown outcomes only",
        () =>
          Effect.gen(function* () {
            yield* rearm
            const formulas = [raising("23505"), newFormula(uniqueFingerprint())]
            const store = yield* FormulaStore
            // Both wait in the batch's linger (TestClock) before it is written as one statement.
            const fibers = yield* Effect.forEach(formulas, (formula) =>
              Effect.forkChild(Effect.exit(store.insert(formula)), { startImmediately: true })
            )
            yield* TestClock.adjust("1 second")
            const exits = yield* Effect.forEach(fibers, Fiber.join)
            for (const exit of exits) {
              const defect = defectOf(exit)
              assert.isTrue(isSqlError(defect) && defect.reason._tag === "UniqueViolation", String(defect))
            }
            assert.strictEqual(yield* attempts, 1, "the batch's statement ran once, and nothing after it")
            for (const formula of formulas) assert.isUndefined(yield* stored(formula.id))
          }).pipe(Effect.provide(batched), Effect.provide(TestClock.layer()))
      )
    })
  })
}
