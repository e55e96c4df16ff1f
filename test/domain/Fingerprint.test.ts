import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Result, Schema } from "effect"
import {
  canonicalString,
  fingerprint,
  FINGERPRINT_VERSION,
  normalizeMaterialName,
  normalizeUnicode
} from "../../src/domain/Fingerprint.ts"
import { caseFold } from "../../src/domain/CaseFolding.ts"
import { decodeFormulaJson, type Formula, validateFormula } from "../../src/domain/Formula.ts"
import { fingerprintV1, normalizeMaterialNameV1 } from "../support/FingerprintV1.ts"
import {
  canonicalJson,
  int,
  phrase,
  MAX,
  randomFrom,
  respelledJson,
  respellName,
  seed,
  submission,
  type Submission
} from "../support/FormulaGenerators.ts"

const valid = (input: unknown): Formula => {
  const result = validateFormula(input)
  if (Result.isFailure(result)) throw new Error(`expected a valid formula, got ${result.failure.message}`)
  return result.success
}

// The characters where something happens (case, compatibility, marks, ignorables, spaces): every other code
// point is its own key under both versions. Random strings draw half their characters from the ones the two
// versions treat differently or that compose around them.
// Beyond U+1FFFF only the CJK compatibility ideographs (NFKC) and the tags and variation selectors
// (ignorable) do anything.
const ALPHABET = [0x0, 0x20000, 0x2f800, 0x2fa20, 0xe0000, 0xe1000]
  .flatMap((from, i, bounds) => (i % 2 === 0 ? Array.from({ length: bounds[i + 1]! - from }, (_, k) => from + k) : []))
  .filter((cp) => cp < 0xd800 || cp > 0xdfff)
  .map((cp) => String.fromCodePoint(cp))
  .filter(
    (c) =>
      c.toUpperCase() !== c ||
      c.toLowerCase() !== c ||
      c.normalize("NFKC") !== c ||
      caseFold(c) !== c ||
      /\p{M}|\p{Default_Ignorable_Code_Point}|\s/u.test(c)
  )
const HOT = Array.from(
  "ıIiİ\u0307\u{1D6A4}ΣσςΑα\u0345ΙιͅΐΰῒῢẞßsSſjJǰ\u030C\u0301\u0308\u0342ᾳᾼᾀꭰᏸᏰᎠkK\u212A\u2126ω\u00AD\u200B\uFFA0 \t.'"
)
const interesting = Arbitrary.array(
  Arbitrary.all([int(0, 1), int(0, ALPHABET.length - 1), int(0, HOT.length - 1)]).pipe(
    Arbitrary.map(([hot, a, h]) => (hot === 1 ? HOT[h]! : ALPHABET[a]!))
  ),
  { minLength: 1, maxLength: 8 }
).pipe(Arbitrary.map((characters) => characters.join("")))

const DESIGN_EXAMPLE = {
  name: "Summer Breeze",
  materials: [
    { name: "Bergamot Oil", concentration: 15.5 },
    { name: "Lavender Absolute", concentration: 10.0 },
    { name: "Sandalwood", concentration: 5.2 }
  ]
}

describe("Fingerprint", () => {
  it("pins version 2 of the canonical string and its hash", () => {
    const formula = valid(DESIGN_EXAMPLE)
    assert.strictEqual(FINGERPRINT_VERSION, 2)
    assert.strictEqual(
      canonicalString(formula),
      'formula-fingerprint/v2\n[["bergamot oil","15.5"],["lavender absolute","10"],["sandalwood","5.2"]]'
    )
    // Changing this value changes every stored fingerprint: that needs a new FINGERPRINT_VERSION.
    assert.strictEqual(fingerprint(formula), "bb82d51a3e80aae88291e7a2b0d0830e05ff3e6a705be8f127dbb7b127c85eb5")
    // The frozen copy of version 1 (test/support/FingerprintV1.ts) still gives version 1's pinned value.
    assert.strictEqual(fingerprintV1(formula), "06d13e096ce3217dca3ab1850cbdf2af32aec07be623d8aa62e33393164c472f")
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
    ["STRAẞE", "strasse"],
    ["ΟΔΟΣ", "οδοσ"],
    ["οδος", "οδοσ"],
    ["Ǆ ǅ", "dž dž"],
    // Full case folding, not a round trip through upper case: dotless ı (no C or F mapping) stays itself…
    ["Irıs", "irıs"],
    ["\u{1D6A4}", "\u0131"], // mathematical italic dotless i: NFKC, then ı
    // …İ folds to i + U+0307, which has no precomposed form; ǰ folds to j + U+030C and NFKC composes it again
    ["\u0130", "i\u0307"],
    ["J\u030C", "\u01F0"],
    ["\u212A", "k"], // Kelvin sign
    ["\uAB70\u13F8", "\u13A0\u13F0"] // Cherokee folds to capitals
  ])("normalizes %j to %j", (name, key) => {
    assert.strictEqual(normalizeMaterialName(name), key)
  })

  it.prop(
    "version 2 only splits version 1's classes of names: v1(v2 key) = v1 key, so no two v1-distinct names meet",
    [interesting],
    ([name]) => {
      assert.strictEqual(normalizeMaterialNameV1(normalizeMaterialName(name)), normalizeMaterialNameV1(name), name)
    },
    { arbitrary: { runs: 5_000 } }
  )

  it("version 2 only splits version 1's classes: every single character", () => {
    let changed = 0
    for (const name of ALPHABET) {
      const key = normalizeMaterialName(name)
      assert.strictEqual(normalizeMaterialNameV1(key), normalizeMaterialNameV1(name), name)
      if (key !== normalizeMaterialNameV1(name)) changed++
    }
    // ı, 𝚤 and the Cherokee letters (small → capital): the only single characters whose key changed.
    assert.strictEqual(changed, 174)
  })

  it("sorts by UTF-16 code units, not by locale", () => {
    const formula = valid({
      name: "x",
      materials: [
        { name: "é", concentration: 1 },
        { name: "f", concentration: 1 }
      ]
    })
    assert.strictEqual(canonicalString(formula), 'formula-fingerprint/v2\n[["f","1"],["é","1"]]')
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
    const body = canonicalString(forged).slice("formula-fingerprint/v2\n".length)
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

  it.prop(
    "the printable-ASCII shortcut gives the key the full Unicode rules give — protects normalizeMaterialName's fast path",
    [Arbitrary.schema(Schema.String.check(Schema.isPattern(/^[\x20-\x7E]*$/))), phrase],
    ([text, p]) => {
      for (const name of [text, p, ` ${p.toUpperCase()}  ${text} `]) {
        assert.strictEqual(normalizeMaterialName(name), normalizeUnicode(name), JSON.stringify(name))
      }
    },
    { arbitrary: { runs: 500 } }
  )

  it("the printable-ASCII shortcut gives the full rules' key for every pair of printable ASCII characters", () => {
    const ascii = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i))
    for (const a of ascii) {
      for (const b of ascii) assert.strictEqual(normalizeMaterialName(a + b), normalizeUnicode(a + b), a + b)
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
