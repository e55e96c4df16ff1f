/**
 * Exact decimal concentrations: a percentage (w/w) with at most 6 decimal places, 0 < c ≤ 100.
 *
 * A `Concentration` is a branded *canonical decimal string*: no sign, no exponent, no leading zeros before
 * the point (except a lone "0"), no trailing zeros after it, no trailing point ("10", "15.5", "0.000001").
 * A string rather than `BigDecimal` because every consumer wants exactly that text: the fingerprint hashes it,
 * SQL `numeric` parameters take it, `===` compares it (one value, one spelling), and it logs and serialises
 * as itself. Arithmetic (sums) goes through `bigint` millionths, which is exact and cheap.
 *
 * Parsing never goes through binary floating point and never rounds: "15.5000001" has 7 decimal places and is
 * rejected. A JS number is read as the decimal its shortest round-trip spelling denotes (`String(n)`), which
 * is what JSON text like `15.5` means; JSON text that a double cannot represent exactly is kept as source text
 * by `parseJsonExact` (JsonExact.ts) and judged here from that text.
 */
import { type Brand, Result, Schema } from "effect"

/** Maximum number of decimal places of a concentration. */
export const MAX_SCALE = 6

/** A concentration in canonical decimal form; see the module comment. */
export type Concentration = string & Brand.Brand<"Concentration">

/**
 * A decimal as sign, significant digits and power of ten: value = ±digits × 10^exponent.
 * `digits` has neither leading nor trailing zeros ("" is zero), so each value has one representation.
 * `exponent` may be huge for hostile input ("1e999999999"); it is only ever compared, never expanded.
 */
interface Parts {
  readonly negative: boolean
  readonly digits: string
  readonly exponent: number
}

// A plain decimal string: what clients may send as a JSON string, and what PostgreSQL returns for numeric.
// A leading minus is accepted only so that "-5" is reported as out of range rather than as gibberish.
const PLAIN = /^(-?)(\d+)(?:\.(\d+))?$/
// A number literal: JSON number source text, or `String(n)` of a JS number ("1e+21", "1.5e-7").
const LITERAL = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/

const toParts = (match: RegExpExecArray): Parts => {
  const [, sign, integer = "", fraction = "", exponent = "0"] = match
  const all = (integer + fraction).replace(/^0+/, "")
  const digits = all.replace(/0+$/, "")
  return {
    negative: sign === "-" && digits !== "",
    digits,
    // Number() of a long exponent string is inexact but only ever compared against small bounds.
    exponent: digits === "" ? 0 : Number(exponent) - fraction.length + (all.length - digits.length)
  }
}

const parsePlain = (text: string): Parts | undefined => {
  const match = PLAIN.exec(text)
  return match === null ? undefined : toParts(match)
}

const parseLiteral = (text: string): Parts | undefined => {
  const match = LITERAL.exec(text)
  return match === null ? undefined : toParts(match)
}

/** Digits before the decimal point of |value| (≤ 0 when |value| < 1). */
const integerDigits = (parts: Parts): number => parts.digits.length + parts.exponent

const decimalPlaces = (parts: Parts): number => Math.max(0, -parts.exponent)

const isPositive = (parts: Parts): boolean => !parts.negative && parts.digits !== ""

// value > 100: positive with three integer digits that are not exactly "1" followed by zeros, or more than three.
const exceeds100 = (parts: Parts): boolean =>
  !parts.negative && (integerDigits(parts) > 3 || (integerDigits(parts) === 3 && parts.digits !== "1"))

// Only called once the value is known to be bounded (≤ 3 integer digits, ≤ MAX_SCALE places).
const toCanonical = (parts: Parts): string => {
  if (parts.digits === "") return "0"
  const sign = parts.negative ? "-" : ""
  if (parts.exponent >= 0) return sign + parts.digits + "0".repeat(parts.exponent)
  const places = -parts.exponent
  const padded = parts.digits.padStart(places + 1, "0")
  return `${sign}${padded.slice(0, -places)}.${padded.slice(-places)}`
}

/** Messages for an input that is not a concentration; empty when it is one. */
const problems = (parts: Parts): Array<string> => {
  const found: Array<string> = []
  if (!isPositive(parts)) found.push("must be greater than 0")
  if (exceeds100(parts)) found.push("must be at most 100")
  if (decimalPlaces(parts) > MAX_SCALE) found.push(`must have at most ${MAX_SCALE} decimal places`)
  return found
}

/**
 * Where a concentration came from. `{ source }` is number source text that a double cannot hold exactly
 * (see `JsonNumberText` in JsonExact.ts); it follows the number-literal grammar, exponents included.
 */
export type ConcentrationInput = number | string | { readonly source: string }

/**
 * Validates and normalises a concentration exactly. Fails with every applicable human-readable message
 * ("must be greater than 0", "must be at most 100", "must have at most 6 decimal places", …).
 */
export const parseConcentration = (
  input: ConcentrationInput
): Result.Result<Concentration, readonly [string, ...Array<string>]> => {
  let parts: Parts | undefined
  if (typeof input === "number") {
    if (!Number.isFinite(input)) return Result.fail(["must be a finite number"])
    parts = parseLiteral(String(input))
  } else if (typeof input === "string") {
    parts = parsePlain(input)
    if (parts === undefined) return Result.fail(['must be a plain decimal number such as "15.5"'])
  } else {
    parts = parseLiteral(input.source)
  }
  if (parts === undefined) return Result.fail(["must be a decimal number"])
  const [first, ...rest] = problems(parts)
  return first === undefined ? Result.succeed(toCanonical(parts) as Concentration) : Result.fail([first, ...rest])
}

/** True for strings already in canonical concentration form (what the `Concentration` schema checks). */
export const isConcentration = (u: unknown): u is Concentration => {
  if (typeof u !== "string") return false
  const parts = parsePlain(u)
  return parts !== undefined && problems(parts).length === 0 && toCanonical(parts) === u
}

/** The decoded (type-side) schema: a canonical concentration string. Decode inputs with `ConcentrationFromInput`. */
export const Concentration = Schema.String.check(
  Schema.makeFilter(isConcentration, {
    expected: `a canonical decimal in (0, 100] with at most ${MAX_SCALE} decimal places`
  })
).pipe(Schema.brand("Concentration"))

const SCALE = 10n ** BigInt(MAX_SCALE)

/** The concentration in millionths of a percent, exactly ("15.5" → 15_500_000n). */
export const toMicros = (c: Concentration): bigint => {
  const [integer = "0", fraction = ""] = c.split(".")
  return BigInt(integer) * SCALE + BigInt(fraction.padEnd(MAX_SCALE, "0"))
}

/** Canonical decimal text of a non-negative number of millionths (not branded: a sum may exceed 100). */
export const formatMicros = (micros: bigint): string => {
  const integer = micros / SCALE
  const fraction = (micros % SCALE).toString().padStart(MAX_SCALE, "0").replace(/0+$/, "")
  return fraction === "" ? integer.toString() : `${integer}.${fraction}`
}

/** Exact sum of concentrations, in millionths. Compare with `MAX_TOTAL_MICROS`. */
export const sumMicros = (concentrations: Iterable<Concentration>): bigint => {
  let total = 0n
  for (const c of concentrations) total += toMicros(c)
  return total
}

/** 100 %, the upper bound of one concentration and of a formula's total. */
export const MAX_TOTAL_MICROS = 100n * SCALE

/**
 * The concentration as a JSON number. Exact: a decimal with at most 9 significant digits (≤ 100, ≤ 6 places)
 * survives the trip through a double, and `JSON.stringify` writes it back as the same canonical digits.
 */
export const toJsonNumber = (c: Concentration): number => Number(c)

/** The concentration as a parameter for a SQL `numeric` column (e.g. `numeric(9, 6)`): its canonical text. */
export const toSqlNumeric = (c: Concentration): string => c

/** True when source text and a double denote the same decimal value (used by `parseJsonExact`). */
export const sameDecimal = (literal: string, value: number): boolean => {
  if (!Number.isFinite(value)) return false
  const a = parseLiteral(literal)
  const b = parseLiteral(String(value))
  return (
    a !== undefined &&
    b !== undefined &&
    a.negative === b.negative &&
    a.digits === b.digits &&
    a.exponent === b.exponent
  )
}
