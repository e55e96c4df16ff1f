/**
 * The store's conformance suite, run on every database. It protects:
 * one row per fingerprint (even under concurrent inserts), exact decimals,
 * the outbox message written with its formula, newest-first pagination,
 * and that unknown or malformed ids are simply absent.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Array as Arr, Effect, Layer } from "effect"
import { SecureRandom } from "effect/crypto"
import { FormulaStore, type NewFormula } from "../../src/store/FormulaStore.ts"
import { testDatabases } from "../support/Databases.ts"

const newFormula = (fingerprint: string, overrides: Partial<NewFormula> = {}): NewFormula => {
  const id = SecureRandom.uuidV7Unsafe()
  return {
    id,
    fingerprint,
    name: "Summer Breeze",
    materials: [
      { name: "Bergamot Oil", concentration: "15.5" },
      { name: "Lavender Absolute", concentration: "0.000001" },
      { name: "Sandalwood", concentration: "84.499999" }
    ],
    createdAt: new Date(),
    message: { id: SecureRandom.uuidV7Unsafe(), body: { type: "FormulaSubmitted", formulaId: id } },
    ...overrides
  }
}

let counter = 0
const uniqueFingerprint = () => `fp-${Date.now()}-${counter++}`

for (const database of testDatabases) {
  describe(`FormulaStore on ${database.name}`, () => {
    layer(FormulaStore.layerNoDeps.pipe(Layer.provide(database.layer())), { excludeTestServices: true })((it) => {
      it.effect("stores a new formula with exact concentrations and a pending message", () =>
        Effect.gen(function* () {
          const store = yield* FormulaStore
          const formula = newFormula(uniqueFingerprint())
          const outcome = yield* store.insert(formula)
          assert.strictEqual(outcome._tag, "Created")
          const found = yield* store.findById(formula.id)
          assert.isDefined(found)
          assert.strictEqual(found!.name, "Summer Breeze")
          assert.deepStrictEqual(found!.materials, formula.materials)
          assert.strictEqual(found!.messageId, formula.message.id)
          assert.isNull(found!.deliveredAt)
          assert.strictEqual(found!.createdAt.getTime(), formula.createdAt.getTime())
        })
      )

      it.effect("answers a second insert of the same fingerprint with the first formula's id", () =>
        Effect.gen(function* () {
          const store = yield* FormulaStore
          const fingerprint = uniqueFingerprint()
          const first = newFormula(fingerprint)
          const second = newFormula(fingerprint, { name: "Another Name" })
          yield* store.insert(first)
          const outcome = yield* store.insert(second)
          assert.deepStrictEqual(outcome, { _tag: "Duplicate", existingId: first.id })
          assert.isUndefined(yield* store.findById(second.id))
        })
      )

      it.effect("lets exactly one of many concurrent inserts of one fingerprint win", () =>
        Effect.gen(function* () {
          const store = yield* FormulaStore
          const fingerprint = uniqueFingerprint()
          const attempts = Arr.makeBy(25, () => newFormula(fingerprint))
          const outcomes = yield* Effect.forEach(attempts, (formula) => store.insert(formula), {
            concurrency: "unbounded"
          })
          const created = outcomes.filter((outcome) => outcome._tag === "Created")
          assert.strictEqual(created.length, 1)
          const winner = created[0]!._tag === "Created" ? created[0]!.formula.id : ""
          for (const outcome of outcomes) {
            if (outcome._tag === "Duplicate") assert.strictEqual(outcome.existingId, winner)
          }
        })
      )

      it.effect("treats unknown and malformed ids as absent", () =>
        Effect.gen(function* () {
          const store = yield* FormulaStore
          assert.isUndefined(yield* store.findById(SecureRandom.uuidV7Unsafe()))
          assert.isUndefined(yield* store.findById("not-a-uuid"))
          assert.isUndefined(yield* store.findById("'; DROP TABLE formulas; --"))
        })
      )

      it.effect("pages newest first and ends with no next position", () =>
        Effect.gen(function* () {
          const store = yield* FormulaStore
          const inserted: Array<string> = []
          for (let i = 0; i < 5; i++) {
            const formula = newFormula(uniqueFingerprint())
            yield* store.insert(formula)
            inserted.unshift(formula.id)
          }
          const seen: Array<string> = []
          let beforeSeq: string | undefined = undefined
          while (true) {
            const page: { items: ReadonlyArray<{ id: string }>; nextBeforeSeq: string | null } = yield* store.page({
              limit: 2,
              beforeSeq
            })
            assert.isAtMost(page.items.length, 2)
            seen.push(...page.items.map((item) => item.id))
            if (page.nextBeforeSeq === null) break
            beforeSeq = page.nextBeforeSeq
          }
          // Other tests insert into the same database; ours must appear newest first, in order.
          assert.deepStrictEqual(
            seen.filter((id) => inserted.includes(id)),
            inserted
          )
        })
      )
    })
  })
}
