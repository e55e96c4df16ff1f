import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import { parseJsonExact } from "../../src/domain/JsonExact.ts"
import { encodeResult, maxResultBytes } from "../../src/domain/MessageResult.ts"

describe("encodeResult", () => {
  it("undefined is no result; null and other JSON values are their text", () => {
    assert.deepStrictEqual(encodeResult(undefined), { _tag: "Encoded", text: null })
    assert.deepStrictEqual(encodeResult(null), { _tag: "Encoded", text: "null" })
    assert.deepStrictEqual(encodeResult({ a: [1, "é"] }), { _tag: "Encoded", text: '{"a":[1,"é"]}' })
  })

  it("keeps a number the request parser kept as text exactly, never rounded", () => {
    const parsed = parseJsonExact('{"total":0.10000000000000000001,"huge":1e400}')
    assert.isTrue(Result.isSuccess(parsed))
    const encoded = encodeResult(Result.getOrThrow(parsed))
    assert.deepStrictEqual(encoded, { _tag: "Encoded", text: '{"total":0.10000000000000000001,"huge":1e400}' })
  })

  it("measures UTF-8 bytes of the serialized form: 64 KiB is accepted, one byte more is not", () => {
    const largest = "é".repeat(maxResultBytes / 2 - 1) // two bytes each, plus two quotes
    assert.strictEqual(encodeResult(largest)._tag, "Encoded")
    assert.deepStrictEqual(encodeResult(largest + "x"), { _tag: "TooLarge", bytes: maxResultBytes + 1 })
    assert.strictEqual(encodeResult("x".repeat(maxResultBytes - 2))._tag, "Encoded")
    assert.strictEqual(encodeResult("x".repeat(maxResultBytes - 1))._tag, "TooLarge")
  })

  it("what is not JSON is refused, not stored as something else", () => {
    const cyclic: Record<string, unknown> = {}
    cyclic["self"] = cyclic
    assert.strictEqual(encodeResult(cyclic)._tag, "NotJson")
    assert.strictEqual(encodeResult(() => 1)._tag, "NotJson")
    assert.strictEqual(encodeResult(10n)._tag, "NotJson")
  })
})
