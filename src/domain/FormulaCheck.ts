/**
 * The hot path's validation: a hand-written check of the same rules as the
 * `Formula` schema (Formula.ts), for input that is plainly valid.
 *
 * The schema is the definition and the only source of error messages. This
 * check either returns exactly what decoding with the schema returns, or
 * `undefined` — "not sure": anything unusual (a non-plain object, a name that
 * needs its code points counted, any rule broken) is left to the schema,
 * which lists every problem. Most submissions are valid, and running the
 * schema's interpreter for them was a tenth of a submission's CPU
 * (npm run bench, node --cpu-prof). The property test in
 * test/domain/FormulaCheck.test.ts holds the two to the same answers.
 */
import { type Concentration, MAX_SCALE, MAX_TOTAL_MICROS, parseConcentration, toMicros } from "./Decimal.ts"
import { normalizeMaterialName } from "./Fingerprint.ts"
import type { Formula } from "./Formula.ts"
import { CONTROL, MATERIALS_MAX, MATERIALS_MIN, NAME_MAX_LENGTH } from "./FormulaRules.ts"
import { JsonNumberText } from "./JsonExact.ts"

// The total's bound as a number: sums of at most 500 concentrations of at most 10^8 millionths stay exact.
const MAX_TOTAL = Number(MAX_TOTAL_MICROS)

const isPlainObject = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

/**
 * A trimmed name that plainly passes the name rules, or `undefined`. At most
 * 200 UTF-16 units is at most 200 code points; longer names may still be
 * valid (astral characters count once) and are left to the schema.
 */
const plainName = (u: unknown): string | undefined => {
  if (typeof u !== "string") return undefined
  const name = u.trim()
  return name.length > 0 && name.length <= NAME_MAX_LENGTH && !CONTROL.test(name) && name.isWellFormed()
    ? name
    : undefined
}

/**
 * A JSON number's concentration when it is plainly one: in (0, 100] and
 * written with at most 6 decimal places. `String(n)` is then already the
 * canonical decimal (shortest round trip: no exponent in this range above
 * 10^-6, no leading or trailing zeros), and n × 10^6 lies within far less than
 * ½ of the integer number of millionths it denotes.
 */
const plainNumber = (n: number): { readonly concentration: Concentration; readonly micros: number } | undefined => {
  if (!(n > 0 && n <= 100)) return undefined
  const text = String(n)
  if (text.includes("e")) return undefined
  const point = text.indexOf(".")
  return point === -1 || text.length - point - 1 <= MAX_SCALE
    ? { concentration: text as Concentration, micros: Math.round(n * 10 ** MAX_SCALE) }
    : undefined
}

/** The formula the schema would decode `input` to, when `input` is plainly valid; otherwise `undefined`. */
export const checkFormula = (input: unknown): Formula | undefined => {
  if (!isPlainObject(input)) return undefined
  const name = plainName(input.name)
  const given = input.materials
  if (name === undefined || !Array.isArray(given) || given.length < MATERIALS_MIN || given.length > MATERIALS_MAX) {
    return undefined
  }
  const materials: Array<{ name: string; concentration: Concentration }> = []
  const keys = new Set<string>()
  let total = 0
  for (const material of given) {
    if (!isPlainObject(material)) return undefined
    const materialName = plainName(material.name)
    if (materialName === undefined) return undefined
    const key = normalizeMaterialName(materialName)
    if (key.length === 0 || keys.has(key)) return undefined
    keys.add(key)
    const raw = material.concentration
    if (typeof raw === "number") {
      const plain = plainNumber(raw)
      if (plain === undefined) return undefined
      total += plain.micros
      materials.push({ name: materialName, concentration: plain.concentration })
      continue
    }
    if (typeof raw !== "string" && !(raw instanceof JsonNumberText)) return undefined
    const concentration = parseConcentration(raw)
    if (concentration._tag === "Failure") return undefined
    total += Number(toMicros(concentration.success))
    materials.push({ name: materialName, concentration: concentration.success })
  }
  return total <= MAX_TOTAL ? { name, materials } : undefined
}
