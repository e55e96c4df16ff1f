/**
 * The submit path: decode → fingerprint → store (formula, materials and the
 * outbox message in one transaction). Every entry point — HTTP, the embedding
 * Layer, tests — goes through `FormulaIntake.submit`.
 */
import { Array as Arr, Clock, Context, Effect, Layer, Schema } from "effect"
import { SecureRandom } from "effect/crypto"
import { toSqlNumeric } from "../domain/Decimal.ts"
import { fingerprint } from "../domain/Fingerprint.ts"
import { decodeFormula, type Formula, type FormulaInvalid } from "../domain/Formula.ts"
import { formulaSubmitted } from "../domain/FormulaSubmitted.ts"
import { DatabaseUnavailable, type FormulaRow, FormulaStore } from "../store/FormulaStore.ts"

/** The make-up exists already; `existingId` is the formula that holds it. */
export class Duplicate extends Schema.TaggedError<Duplicate>()("Duplicate", {
  existingId: Schema.String,
  fingerprint: Schema.String
}) {}

export type SubmitError = FormulaInvalid | Duplicate | DatabaseUnavailable

export class FormulaIntake extends Context.Service<
  FormulaIntake,
  {
    /** Stores and announces a new make-up once; fails with `Duplicate` for a known one. */
    submit(input: unknown): Effect.Effect<FormulaRow, SubmitError>
    /** The same, for a formula already decoded (callers that validated it themselves). */
    submitDecoded(formula: Formula): Effect.Effect<FormulaRow, Duplicate | DatabaseUnavailable>
  }
>()("formula-intake/intake/FormulaIntake") {
  static readonly layerNoDeps = Layer.effect(
    FormulaIntake,
    Effect.gen(function* () {
      const store = yield* FormulaStore

      const submitDecoded = Effect.fn("FormulaIntake.submitDecoded")(function* (formula: Formula) {
        const print = fingerprint(formula)
        const id = SecureRandom.uuidV7Unsafe()
        const createdAt = new Date(yield* Clock.currentTimeMillis)
        const messageId = SecureRandom.uuidV7Unsafe()
        const outcome = yield* store.insert({
          id,
          fingerprint: print,
          name: formula.name,
          materials: Arr.map(formula.materials, (material) => ({
            name: material.name,
            concentration: toSqlNumeric(material.concentration)
          })),
          createdAt,
          message: {
            id: messageId,
            body: formulaSubmitted({ formulaId: id, fingerprint: print, name: formula.name, submittedAt: createdAt })
          }
        })
        if (outcome._tag === "Duplicate") {
          return yield* new Duplicate({ existingId: outcome.existingId, fingerprint: print })
        }
        return outcome.formula
      })

      const submit = Effect.fn("FormulaIntake.submit")(function* (input: unknown) {
        const formula = yield* decodeFormula(input)
        return yield* submitDecoded(formula)
      })

      return FormulaIntake.of({ submit, submitDecoded })
    })
  )

  static readonly layer = FormulaIntake.layerNoDeps.pipe(Layer.provide(FormulaStore.layerNoDeps))
}

export { DatabaseUnavailable }
