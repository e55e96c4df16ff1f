import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Result, Schema } from "effect"
import {
  type Concentration,
  type ConcentrationInput,
  formatMicros,
  isConcentration,
  MAX_TOTAL_MICROS,
  parseConcentration,
  sameDecimal,
  sumMicros,
  toJsonNumber,
  toMicros,
  toSqlNumeric
} from "../../src/domain/Decimal.ts"
import { JsonNumberText } from "../../src/domain/JsonExact.ts"

const parsed = (input: ConcentrationInput): Concentration => {
  const result = parseConcentration(input)
  if (Result.isFailure(result)) throw new Error(`expected ${String(input)} to parse, got ${result.failure.join(", ")}`)
  return result.success
}

const problems = (input: ConcentrationInput): ReadonlyArray<string> => {
  const result = parseConcentration(input)
  return Result.isFailure(result) ? result.failure : []
}

const PLACES = "must have at most 6 decimal places"
const POSITIVE = "must be greater than 0"
const AT_MOST_100 = "must be at most 100"

// Every value from 0.000001 to 100 in steps of one millionth, biased towards the bounds.
const micros = Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100_000_000 })))

describe("Decimal", () => {
  describe("canonical form", () => {
    it.each([
      [10, "10"],
      [10.0, "10"],
      ["10", "10"],
      ["10.000", "10"],
      ["015.50", "15.5"],
      [15.5, "15.5"],
      ["0.000001", "0.000001"],
      [0.000001, "0.000001"],
      [100, "100"],
      ["100.000000", "100"],
      ["100.0000000000", "100"], // trailing zeros are not precision
      [1e1, "10"],
      [5.2, "5.2"],
      ["99.999999", "99.999999"],
      [new JsonNumberText("1.55E+1"), "15.5"],
      [new JsonNumberText("155e-1"), "15.5"],
      [new JsonNumberText("0.0000010000000000"), "0.000001"]
    ] as const)("%s → %s", (input, expected) => {
      assert.strictEqual<string>(parsed(input), expected)
      assert.isTrue(isConcentration(expected))
    })
  })

  describe("rejections", () => {
    it.each([
      [0, [POSITIVE]],
      ["0", [POSITIVE]],
      [-0, [POSITIVE]],
      ["0.0000000", [POSITIVE]],
      [-1, [POSITIVE]],
      ["-5", [POSITIVE]],
      [100.000001, [AT_MOST_100]],
      ["100.000001", [AT_MOST_100]],
      [101, [AT_MOST_100]],
      [1e21, [AT_MOST_100]],
      [15.5000001, [PLACES]],
      ["15.5000001", [PLACES]],
      [0.0000001, [PLACES]],
      ["-0.0000001", [POSITIVE, PLACES]],
      ["150.1234567", [AT_MOST_100, PLACES]],
      [new JsonNumberText("15.50000000000000001"), [PLACES]],
      [new JsonNumberText("1e400"), [AT_MOST_100]],
      [new JsonNumberText("1e-400"), [PLACES]],
      [new JsonNumberText("-1e400"), [POSITIVE]],
      [NaN, ["must be a finite number"]],
      [Infinity, ["must be a finite number"]],
      ["1e1", ['must be a plain decimal number such as "15.5"']],
      [" 5 ", ['must be a plain decimal number such as "15.5"']],
      ["5.", ['must be a plain decimal number such as "15.5"']],
      [".5", ['must be a plain decimal number such as "15.5"']],
      ["+5", ['must be a plain decimal number such as "15.5"']],
      ["", ['must be a plain decimal number such as "15.5"']],
      ["0x10", ['must be a plain decimal number such as "15.5"']],
      ["１０", ['must be a plain decimal number such as "15.5"']]
    ] as const)("%s is rejected", (input, expected) => {
      assert.deepStrictEqual(problems(input), expected)
    })

    it("judges hostile magnitudes without expanding them", () => {
      assert.deepStrictEqual(problems(new JsonNumberText("1e999999999999999999999")), [AT_MOST_100])
      assert.deepStrictEqual(problems(new JsonNumberText("1e-999999999999999999999")), [PLACES])
      assert.deepStrictEqual(problems("1" + "0".repeat(1_000_000)), [AT_MOST_100])
      assert.deepStrictEqual(problems("0." + "0".repeat(1_000_000) + "1"), [PLACES])
      assert.strictEqual(parsed("0".repeat(1_000_000) + "1"), "1")
    })
  })

  it("isConcentration accepts only canonical, valid text", () => {
    for (const text of ["10.0", "015.5", "0", "100.000001", "1e1", " 1", "-1", "15.5000001"]) {
      assert.isFalse(isConcentration(text), text)
    }
    assert.isFalse(isConcentration(10))
  })

  it("sums exactly where floating point does not", () => {
    const parts = ["44.959645", "51.779511", "3.260844"].map(parsed)
    assert.isAbove(
      parts.map(Number).reduce((a, b) => a + b),
      100
    ) // the float trap this avoids
    assert.strictEqual(sumMicros(parts), MAX_TOTAL_MICROS)
    assert.strictEqual(formatMicros(sumMicros(parts)), "100")
    assert.strictEqual(formatMicros(sumMicros([...parts, parsed("0.000001")])), "100.000001")
  })

  it("converts for SQL and JSON", () => {
    const c = parsed("15.5")
    assert.strictEqual(toSqlNumeric(c), "15.5")
    assert.strictEqual(toJsonNumber(c), 15.5)
    assert.strictEqual(toMicros(c), 15_500_000n)
    assert.strictEqual(toMicros(parsed("0.000001")), 1n)
    assert.strictEqual(toMicros(parsed("100")), 100_000_000n)
    // PostgreSQL returns numeric(9, 6) with its scale's trailing zeros: reading it back gives the same value.
    assert.strictEqual(parsed("15.500000"), c)
  })

  it.prop("every spelling of a valid value has one canonical form", [micros], ([m]) => {
    const canonical = formatMicros(BigInt(m))
    const withZeros = canonical.includes(".") ? `${canonical}000` : `${canonical}.000`
    for (const spelling of [canonical, Number(canonical), withZeros, `00${canonical}`]) {
      assert.strictEqual(parsed(spelling), canonical)
    }
    assert.strictEqual(parsed(new JsonNumberText(`${m}e-6`)), canonical)
    assert.strictEqual(toMicros(parsed(canonical)), BigInt(m))
  })

  it.prop("the JSON number of a concentration round-trips exactly", [micros], ([m]) => {
    const c = parsed(formatMicros(BigInt(m)))
    const text = JSON.stringify(toJsonNumber(c))
    assert.strictEqual(text, c) // JSON writes the canonical digits themselves
    assert.strictEqual(parsed(JSON.parse(text)), c)
    assert.isTrue(sameDecimal(text, toJsonNumber(c)))
  })

  it.prop(
    "a seventh decimal place is rejected, never rounded",
    [micros, Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 9 })))],
    ([m, digit]) => {
      const whole = BigInt(m) - 1n // leaves room below 100 for the extra digit
      const text = `${formatMicros(whole)}${formatMicros(whole).includes(".") ? "" : "."}`
      const seven = `${text}${"0".repeat(6 - (text.length - text.indexOf(".") - 1))}${digit}`
      assert.deepStrictEqual(problems(seven), [PLACES], seven)
    }
  )
})
