import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { JsonNumberText, parseJsonExact } from "../../src/domain/JsonExact.ts"

const parse = (text: string): unknown => {
  const result = parseJsonExact(text)
  if (Result.isFailure(result)) throw new Error(`expected valid JSON, got ${result.failure.message}`)
  return result.success
}

describe("parseJsonExact", () => {
  it.each([
    ["15.5", 15.5],
    ["10.0", 10],
    ["1e1", 10],
    ["1.55E+1", 15.5],
    ["-0", -0],
    ["0.1", 0.1],
    ["100.000001", 100.000001],
    ["1.5e-7", 1.5e-7],
    ["15.500000000000000000", 15.5], // trailing zeros add no precision
    ["1.7976931348623157e308", Number.MAX_VALUE]
  ] as const)("keeps %s as the number %s", (text, expected) => {
    assert.strictEqual(parse(text), expected)
  })

  it.each([
    "15.50000000000000001",
    "0.10000000000000000001",
    "12345678901234567890",
    "1e400",
    "-1e400",
    "1e-400",
    "9007199254740993"
  ])("keeps the source text of %s, which no double represents exactly", (text) => {
    const value = parse(text)
    assert.instanceOf(value, JsonNumberText)
    assert.strictEqual((value as JsonNumberText).source, text)
  })

  it("works at any depth and leaves other values alone", () => {
    const value = parse('{"a":[1,{"b":15.50000000000000001}],"s":"15.50000000000000001","t":true,"n":null}')
    assert.deepStrictEqual(value, {
      a: [1, { b: new JsonNumberText("15.50000000000000001") }],
      s: "15.50000000000000001",
      t: true,
      n: null
    })
  })

  it.each(["", "{", "{'a':1}", '{"a":1,}', "NaN", "[1 2]", '"unterminated'])("rejects %j as invalid JSON", (text) => {
    const result = parseJsonExact(text)
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      assert.strictEqual(result.failure._tag, "InvalidJson")
      assert.match(result.failure.message, /^body is not valid JSON: /)
    }
  })

  it("rejects absurd nesting that needs the reviver as invalid JSON instead of crashing", () => {
    // The exponent sends the text through the reviver, which recurses.
    const result = parseJsonExact("[".repeat(500_000) + "1e1" + "]".repeat(500_000))
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) assert.include(result.failure.message, "nested too deeply")
  })

  it("parses absurd nesting without numbers to round natively, without crashing", () => {
    assert.isTrue(Result.isSuccess(parseJsonExact("[".repeat(500_000) + "]".repeat(500_000))))
  })

  it.each([
    ["15.50000000000000001", true],
    ["0.1000000000000000055511151231257827", true],
    ["123456789012345678", true],
    ["1e400", true],
    ["1e1", false],
    ["999999999999999", false],
    ["0.000001", false]
  ] as const)("%s is kept as source text when a double would round it (%s)", (source, rounds) => {
    const result = parseJsonExact(`{"name":"x","c":${source}}`)
    assert.isTrue(Result.isSuccess(result))
    if (Result.isSuccess(result)) {
      const value = (result.success as { c: unknown }).c
      if (rounds) assert.strictEqual(String(value), source)
      else assert.strictEqual(value, Number(source))
    }
  })
})
