import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Result, Schema } from "effect"
import { formatMicros, MAX_TOTAL_MICROS } from "../../src/domain/Decimal.ts"
import {
  canonicalString,
  fingerprint,
  FINGERPRINT_VERSION,
  normalizeMaterialName
} from "../../src/domain/Fingerprint.ts"
import { decodeFormulaJson, type Formula, validateFormula } from "../../src/domain/Formula.ts"

const valid = (input: unknown): Formula => {
  const result = validateFormula(input)
  if (Result.isFailure(result)) throw new Error(`expected a valid formula, got ${result.failure.message}`)
  return result.success
}

// ---------------------------------------------------------------------------------------------------------------
// Generators. A submission is built from words chosen to stress the normalisation (ligatures, ß/SS, accents,
// Greek final sigma, full-width forms) and concentrations in millionths biased towards the bounds. Respelling
// choices come from a generated seed, so a failure shrinks to a small submission and replays exactly.
// ---------------------------------------------------------------------------------------------------------------

const WORDS = [
  "Bergamot",
  "oil",
  "Lavender",
  "absolute",
  "Rose",
  "fig",
  "leaf",
  "fine",
  "Coffee",
  "Straße",
  "Strasse",
  "Café",
  "Ylang",
  "ΟΔΟΣ",
  "Iris",
  "Vetiver",
  "No"
] as const

interface Submission {
  readonly name: string
  readonly materials: ReadonlyArray<{ readonly name: string; readonly micros: number }>
}

const int = (minimum: number, maximum: number) =>
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))

const phrase = Arbitrary.array(Arbitrary.schema(Schema.Literals(WORDS)), { minLength: 1, maxLength: 3 }).pipe(
  Arbitrary.map((words) => words.join(" "))
)

const MAX = Number(MAX_TOTAL_MICROS)

// Distinct names (by key), a total of at most 100, and sometimes a last material that makes it exactly 100.
const submission: Arbitrary.Arbitrary<Submission> = Arbitrary.all({
  name: phrase,
  materials: Arbitrary.array(Arbitrary.all({ name: phrase, micros: int(1, MAX) }), { minLength: 1, maxLength: 12 }),
  fillTo100: Arbitrary.schema(Schema.Boolean)
}).pipe(
  Arbitrary.map(({ name, materials, fillTo100 }) => {
    const keys = new Set<string>()
    const kept: Array<{ name: string; micros: number }> = []
    let total = 0
    for (const material of materials) {
      const key = normalizeMaterialName(material.name)
      if (keys.has(key) || total + material.micros > MAX) continue
      keys.add(key)
      kept.push(material)
      total += material.micros
    }
    if (fillTo100 && total < MAX) kept.push({ name: "Remainder", micros: MAX - total })
    return { name, materials: kept }
  })
)

const seed = int(0, 2 ** 31 - 1)

/** mulberry32: a tiny deterministic PRNG, so respelling is a pure function of the generated seed. */
const randomFrom = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
type Random = ReturnType<typeof randomFrom>

const pick = <A>(random: Random, options: ReadonlyArray<A>): A => options[Math.floor(random() * options.length)]!

const shuffle = <A>(random: Random, items: ReadonlyArray<A>): Array<A> => {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }
  return copy
}

const SPACES = [" ", "  ", "\t", "\u00A0", "\u3000", " \n ", "\u2003"]
const EDGES = ["", "", " ", "\t", "\u00A0", "\n", " \u3000 "]

const fullWidth = (ch: string): string | undefined =>
  /^[!-~]$/.test(ch) ? String.fromCharCode(ch.charCodeAt(0) + 0xfee0) : undefined

/** Another spelling of the same material name: case, whitespace, compatibility forms, invisible characters. */
const respellName = (random: Random, name: string): string => {
  let text = name
  if (random() < 0.5) text = text.replaceAll("fi", "\uFB01") // ﬁ
  if (random() < 0.5) text = text.replaceAll("ff", "\uFB00") // ﬀ
  const chars = Array.from(text).map((ch) => {
    if (ch === " ") return pick(random, SPACES)
    const wide = fullWidth(ch)
    return pick(random, [
      ch,
      ch.toUpperCase(),
      ch.toLowerCase(),
      ch.normalize("NFD"),
      `${ch}\u00AD`, // soft hyphen
      `\u200B${ch}`, // zero-width space
      ...(wide === undefined ? [] : [wide, wide])
    ])
  })
  return pick(random, EDGES) + chars.join("") + pick(random, EDGES)
}

const withZeros = (decimal: string): string => (decimal.includes(".") ? `${decimal}000` : `${decimal}.000`)

/** Another JSON spelling of the same concentration: a raw JSON token (number or string). */
const respellConcentration = (random: Random, micros: number): string => {
  const decimal = formatMicros(BigInt(micros))
  return pick(random, [
    decimal,
    withZeros(decimal),
    `${micros}e-6`,
    `${micros * 10}E-7`,
    `${decimal}e0`,
    JSON.stringify(decimal),
    JSON.stringify(withZeros(decimal)),
    JSON.stringify(`00${decimal}`)
  ])
}

const canonicalJson = (s: Submission): string =>
  JSON.stringify({
    name: s.name,
    materials: s.materials.map((m) => ({ name: m.name, concentration: Number(formatMicros(BigInt(m.micros))) }))
  })

/** The same make-up as JSON text spelled differently throughout: order, names, numbers, keys, extra fields. */
const respelledJson = (random: Random, s: Submission, formulaName: string): string => {
  const materials = shuffle(random, s.materials).map((m) => {
    const fields = shuffle(random, [
      `"name":${JSON.stringify(respellName(random, m.name))}`,
      `"concentration":${respellConcentration(random, m.micros)}`,
      ...(random() < 0.2 ? ['"note":"ignored"'] : [])
    ])
    return `{${fields.join(",")}}`
  })
  const fields = shuffle(random, [`"name":${JSON.stringify(formulaName)}`, `"materials":[${materials.join(",")}]`])
  return `{${fields.join(",")}}`
}

// ---------------------------------------------------------------------------------------------------------------

const DESIGN_EXAMPLE = {
  name: "Summer Breeze",
  materials: [
    { name: "Bergamot Oil", concentration: 15.5 },
    { name: "Lavender Absolute", concentration: 10.0 },
    { name: "Sandalwood", concentration: 5.2 }
  ]
}

describe("Fingerprint", () => {
  it("pins version 1 of the canonical string and its hash", () => {
    const formula = valid(DESIGN_EXAMPLE)
    assert.strictEqual(FINGERPRINT_VERSION, 1)
    assert.strictEqual(
      canonicalString(formula),
      'formula-fingerprint/v1\n[["bergamot oil","15.5"],["lavender absolute","10"],["sandalwood","5.2"]]'
    )
    // Changing this value changes every stored fingerprint: that needs a new FINGERPRINT_VERSION.
    assert.strictEqual(fingerprint(formula), "06d13e096ce3217dca3ab1850cbdf2af32aec07be623d8aa62e33393164c472f")
  })

  it.each([
    ["  Bergamot\t\tOil ", "bergamot oil"],
    ["\uFB01g leaf", "fig leaf"],
    ["Ｂｅｒｇａｍｏｔ", "bergamot"],
    ["Rose\u00A0\u3000Absolute", "rose absolute"],
    ["STRASSE", "strasse"],
    ["Straße", "strasse"],
    ["Cafe\u0301", "café"],
    ["Lav\u00ADen\u200Bder", "lavender"],
    ["ΟΔΟΣ", "οδος"],
    ["οδοσ", "οδος"],
    ["Ǆ ǅ", "dž dž"]
  ])("normalizes %j to %j", (name, key) => {
    assert.strictEqual(normalizeMaterialName(name), key)
  })

  it("sorts by UTF-16 code units, not by locale", () => {
    const formula = valid({
      name: "x",
      materials: [
        { name: "é", concentration: 1 },
        { name: "f", concentration: 1 }
      ]
    })
    assert.strictEqual(canonicalString(formula), 'formula-fingerprint/v1\n[["f","1"],["é","1"]]')
  })

  it("cannot be forged by a name that looks like the encoding", () => {
    const forged = valid({ name: "x", materials: [{ name: 'a","1"],["b', concentration: 1 }] })
    const honest = valid({
      name: "x",
      materials: [
        { name: "a", concentration: 1 },
        { name: "b", concentration: 1 }
      ]
    })
    assert.notStrictEqual(fingerprint(forged), fingerprint(honest))
    const body = canonicalString(forged).slice("formula-fingerprint/v1\n".length)
    assert.deepStrictEqual(JSON.parse(body), [['a","1"],["b', "1"]])
  })

  it("is lowercase hex SHA-256", () => {
    assert.match(fingerprint(valid(DESIGN_EXAMPLE)), /^[0-9a-f]{64}$/)
  })

  it.prop("normalizeMaterialName is idempotent", [Arbitrary.schema(Schema.String), phrase, seed], ([text, p, s]) => {
    for (const name of [text, respellName(randomFrom(s), p)]) {
      const key = normalizeMaterialName(name)
      assert.strictEqual(normalizeMaterialName(key), key, JSON.stringify(name))
    }
  })

  it.prop("a respelled name keeps its key", [phrase, seed], ([name, s]) => {
    const respelled = respellName(randomFrom(s), name)
    assert.strictEqual(normalizeMaterialName(respelled), normalizeMaterialName(name), JSON.stringify(respelled))
  })

  it.effect.prop(
    "is invariant under material order, name spelling, decimal spelling and the formula name",
    [submission, seed, phrase],
    ([s, seedValue, otherName]) =>
      Effect.gen(function* () {
        const original = yield* decodeFormulaJson(canonicalJson(s))
        const text = respelledJson(randomFrom(seedValue), s, otherName)
        const respelled = yield* decodeFormulaJson(text)
        assert.strictEqual(canonicalString(respelled), canonicalString(original), text)
        assert.strictEqual(fingerprint(respelled), fingerprint(original))
      }),
    { timeout: 60_000, arbitrary: { runs: 500 } }
  )

  it.prop(
    "changes with any real change to a name or a concentration",
    [submission, seed],
    ([s, seedValue]) => {
      const random = randomFrom(seedValue)
      const before = fingerprint(valid(JSON.parse(canonicalJson(s))))
      const changed = (materials: Submission["materials"]): string =>
        fingerprint(valid(JSON.parse(canonicalJson({ name: s.name, materials }))))
      const i = Math.floor(random() * s.materials.length)
      const total = s.materials.reduce((sum, m) => sum + m.micros, 0)
      const target = s.materials[i]!
      const replace = (m: Submission["materials"][number]) => s.materials.map((x, j) => (j === i ? m : x))

      // one millionth more, or less when the total is already 100
      if (total < MAX) assert.notStrictEqual(changed(replace({ ...target, micros: target.micros + 1 })), before)
      if (target.micros > 1) assert.notStrictEqual(changed(replace({ ...target, micros: target.micros - 1 })), before)
      // another name ("zed" is in no generated name, so this cannot collide with another material)
      assert.notStrictEqual(changed(replace({ ...target, name: `${target.name} zed` })), before)
      // a material fewer, or one more
      if (s.materials.length > 1) assert.notStrictEqual(changed(s.materials.filter((_, j) => j !== i)), before)
      if (total < MAX) assert.notStrictEqual(changed([...s.materials, { name: "zed", micros: 1 }]), before)
      // two different concentrations swapped between materials
      const other = s.materials.findIndex((m) => m.micros !== target.micros)
      if (other !== -1) {
        const swapped = s.materials.map((m, j) =>
          j === i ? { ...m, micros: s.materials[other]!.micros } : j === other ? { ...m, micros: target.micros } : m
        )
        assert.notStrictEqual(changed(swapped), before)
      }
    },
    { timeout: 60_000, arbitrary: { runs: 300 } }
  )

  it.prop("never depends on the formula name", [submission, phrase, phrase], ([s, a, b]) => {
    const named = (name: string) => fingerprint(valid(JSON.parse(canonicalJson({ ...s, name }))))
    assert.strictEqual(named(a), named(b))
  })
})
