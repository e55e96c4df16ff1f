/**
 * The hot path's hand-written check (src/domain/FormulaCheck.ts) against the
 * schema it shortcuts: for any input it returns exactly the schema's decoded
 * formula or "not sure" (undefined), never a formula the schema would reject;
 * and for ordinary valid submissions it is sure, or the shortcut would be dead
 * code.
 */
import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import { checkFormula } from "../../src/domain/FormulaCheck.ts"
import { Formula } from "../../src/domain/Formula.ts"
import { JsonNumberText, parseJsonExact } from "../../src/domain/JsonExact.ts"
import {
  canonicalJson,
  pick,
  randomFrom,
  respelledJson,
  seed,
  submission,
  type Submission
} from "../support/FormulaGenerators.ts"

const decodeBySchema = Schema.decodeUnknownResult(Formula)

const parse = (text: string): unknown => {
  const parsed = parseJsonExact(text)
  if (Result.isFailure(parsed)) throw new Error(parsed.failure.message)
  return parsed.success
}

/** The check agrees with the schema: the same formula, or it declines. */
const assertAgrees = (input: unknown, label: string) => {
  const checked = checkFormula(input)
  const decoded = decodeBySchema(input, { errors: "all" })
  if (checked !== undefined) {
    assert.isTrue(Result.isSuccess(decoded), `the check accepted what the schema rejects: ${label}`)
    assert.deepStrictEqual(checked, (decoded as Result.Success<Formula, unknown>).success, label)
  }
  return { checked, decoded }
}

type Json = Record<string, unknown>

/** One way to spoil (or merely bend) a valid submission, chosen by a seeded random. */
const mutations: ReadonlyArray<(input: Json, random: () => number) => unknown> = [
  (input) => ({ ...input, name: "" }),
  (input) => ({ ...input, name: "   " }),
  (input) => ({ ...input, name: "x".repeat(201) }),
  (input) => ({ ...input, name: "😀".repeat(150) }), // 150 code points, 300 UTF-16 units: valid, left to the schema
  (input) => ({ ...input, name: "a\u0000b" }),
  (input) => ({ ...input, name: "a\uD800" }),
  (input) => ({ ...input, name: 42 }),
  (input) => ({ ...input, materials: [] }),
  (input) => ({ ...input, materials: "none" }),
  (input) => ({ ...input, extra: { nested: true } }),
  (input) => [input],
  () => null,
  () => "formula",
  (input) => Object.assign(Object.create({ inherited: true }), input),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, name: "\u200B\u00AD" })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, name: ` ${String(m.name).toUpperCase()} ` })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: 0 })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: -1 })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: 100.5 })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: "1.0000001" })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: 1.0000001 })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: 1e-7 })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: 0.1 + 0.2 })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: 100.000001 })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: "1e1" })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: new JsonNumberText("1e1") })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: new JsonNumberText("1e-7") })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: true })),
  (input, random) => withMaterial(input, random, (m) => ({ ...m, concentration: Number.NaN })),
  (input, random) => withMaterial(input, random, ({ concentration: _, ...m }) => m),
  (input, random) => withMaterial(input, random, ({ name: _, ...m }) => m),
  (input, random) => withMaterial(input, random, () => "material"),
  (input) => ({
    ...input,
    materials: [...(input.materials as Array<unknown>), { name: "Top Up", concentration: 100 }]
  }),
  (input) => {
    const materials = input.materials as Array<Json>
    return { ...input, materials: [...materials, { ...materials[0]!, name: `  ${String(materials[0]!.name)}` }] }
  }
]

const withMaterial = (input: Json, random: () => number, change: (material: Json) => unknown): Json => {
  const materials = input.materials as Array<Json>
  const index = Math.floor(random() * materials.length)
  return { ...input, materials: materials.map((m, i) => (i === index ? change(m) : m)) }
}

describe("checkFormula", () => {
  it.prop(
    "accepts every generated valid submission, in any spelling, as exactly the schema's formula — protects the hot path's validation",
    [submission, seed],
    ([s, seedValue]: [Submission, number]) => {
      for (const text of [canonicalJson(s), respelledJson(randomFrom(seedValue), s, s.name)]) {
        const { checked, decoded } = assertAgrees(parse(text), text)
        assert.isTrue(Result.isSuccess(decoded), text)
        assert.isDefined(checked, `the check declined a valid submission: ${text}`)
      }
    },
    { arbitrary: { runs: 500 } }
  )

  it.prop(
    "on spoiled or unusual input it declines or agrees with the schema, never accepting what the schema rejects",
    [submission, seed],
    ([s, seedValue]: [Submission, number]) => {
      const random = randomFrom(seedValue)
      const input = parse(canonicalJson(s)) as Json
      for (let round = 0; round < 4; round++) {
        const mutated = pick(random, mutations)(input, random)
        const { checked, decoded } = assertAgrees(mutated, JSON.stringify(mutated))
        if (Result.isFailure(decoded)) assert.isUndefined(checked)
      }
    },
    { arbitrary: { runs: 500 } }
  )
})
