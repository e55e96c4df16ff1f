/**
 * Generators of formula submissions and of other spellings of the same
 * make-up, shared by the fingerprint properties and the duplicate-submission
 * tests. A submission is built from words chosen to stress the normalisation
 * (ligatures, ß/SS, accents, Greek final sigma, full-width forms) and
 * concentrations in millionths biased towards the bounds. Respelling choices
 * come from a generated seed, so a failure shrinks to a small submission and
 * replays exactly.
 */
import { Arbitrary, Schema } from "effect"
import { formatMicros, MAX_TOTAL_MICROS } from "../../src/domain/Decimal.ts"
import { Result } from "effect"
import { fingerprint, normalizeMaterialName } from "../../src/domain/Fingerprint.ts"
import { validateFormula } from "../../src/domain/Formula.ts"

export const WORDS = [
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

export interface Submission {
  readonly name: string
  readonly materials: ReadonlyArray<{ readonly name: string; readonly micros: number }>
}

export const int = (minimum: number, maximum: number) =>
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))

export const phrase = Arbitrary.array(Arbitrary.schema(Schema.Literals(WORDS)), { minLength: 1, maxLength: 3 }).pipe(
  Arbitrary.map((words) => words.join(" "))
)

export const MAX = Number(MAX_TOTAL_MICROS)

// Distinct names (by key), a total of at most 100, and sometimes a last material that makes it exactly 100.
export const submission: Arbitrary.Arbitrary<Submission> = Arbitrary.all({
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

export const seed = int(0, 2 ** 31 - 1)

/** mulberry32: a tiny deterministic PRNG, so respelling is a pure function of the generated seed. */
export const randomFrom = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
export type Random = ReturnType<typeof randomFrom>

export const pick = <A>(random: Random, options: ReadonlyArray<A>): A => options[Math.floor(random() * options.length)]!

export const shuffle = <A>(random: Random, items: ReadonlyArray<A>): Array<A> => {
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
export const respellName = (random: Random, name: string): string => {
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
export const respellConcentration = (random: Random, micros: number): string => {
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

export const canonicalJson = (s: Submission): string =>
  JSON.stringify({
    name: s.name,
    materials: s.materials.map((m) => ({ name: m.name, concentration: Number(formatMicros(BigInt(m.micros))) }))
  })

/** The same make-up as JSON text spelled differently throughout: order, names, numbers, keys, extra fields. */
export const respelledJson = (random: Random, s: Submission, formulaName: string): string => {
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

/** Makes a generated make-up unique to one test run: a word of digits survives every respelling. */
export const uniqueTo = (s: Submission, run: string): Submission => ({
  ...s,
  materials: s.materials.map((m, i) => (i === 0 ? { ...m, name: `${m.name} ${run}` } : m))
})

/** The fingerprint the service must compute for a submission. */
export const fingerprintOf = (s: Submission): string => {
  const decoded = validateFormula(JSON.parse(canonicalJson(s)))
  if (Result.isFailure(decoded)) throw new Error(decoded.failure.message)
  return fingerprint(decoded.success)
}

export interface HammerDraw {
  readonly makeUps: ReadonlyArray<Submission>
  readonly copies: ReadonlyArray<number>
  readonly seed: number
  readonly otherName: string
}

/** Inputs of a duplicate hammer: 1–`makeUps` make-ups, each to be sent 1–`copies` times. */
export const hammer = (options: {
  readonly makeUps: number
  readonly copies: number
}): Arbitrary.Arbitrary<HammerDraw> =>
  Arbitrary.all({
    makeUps: Arbitrary.array(submission, { minLength: 1, maxLength: options.makeUps }),
    copies: Arbitrary.array(
      Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: options.copies }))),
      {
        minLength: options.makeUps,
        maxLength: options.makeUps
      }
    ),
    seed,
    otherName: phrase
  })

/**
 * Every make-up of a hammer (made unique to `run`) as many times as drawn, each time spelled differently:
 * order, names, numbers, keys, and half the time another formula name. With the fingerprint each must get.
 */
export const spelledSubmissions = (
  drawn: HammerDraw,
  run: string
): Array<{ readonly fingerprint: string; readonly json: string }> => {
  const random = randomFrom(drawn.seed)
  return drawn.makeUps
    .map((s) => uniqueTo(s, run))
    .flatMap((s, i) =>
      Array.from({ length: drawn.copies[i]! }, () => ({
        fingerprint: fingerprintOf(s),
        json: respelledJson(random, s, random() < 0.5 ? s.name : drawn.otherName)
      }))
    )
}
