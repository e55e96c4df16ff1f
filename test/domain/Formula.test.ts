import { assert, describe, it } from "@effect/vitest"
import { Effect, Result, Schema } from "effect"
import {
  decodeFormula,
  decodeFormulaJson,
  type Formula,
  FormulaJson,
  type ValidationError,
  toFormulaJson,
  validateFormula
} from "../../src/domain/Formula.ts"

const valid = (input: unknown): Formula => {
  const result = validateFormula(input)
  if (Result.isFailure(result)) throw new Error(`expected a valid formula, got ${result.failure.message}`)
  return result.success
}

const errorsOf = (input: unknown): ReadonlyArray<ValidationError> => {
  const result = validateFormula(input)
  if (Result.isSuccess(result)) throw new Error("expected validation to fail")
  return result.failure.errors
}

const material = (name: string, concentration: unknown = 1) => ({ name, concentration })
const withMaterials = (...materials: ReadonlyArray<unknown>) => ({ name: "Test", materials })
const materials = (count: number, concentration: unknown = "0.1") =>
  Array.from({ length: count }, (_, i) => material(`Material ${i}`, concentration))

describe("Formula", () => {
  it("decodes the DESIGN example: names trimmed, concentrations canonical", () => {
    const formula = valid({
      name: "  Summer Breeze ",
      materials: [
        { name: "Bergamot Oil", concentration: 15.5 },
        { name: " Lavender Absolute\t", concentration: 10.0 },
        { name: "Sandalwood", concentration: "5.20" }
      ]
    })
    assert.deepStrictEqual(formula, {
      name: "Summer Breeze",
      materials: [
        { name: "Bergamot Oil", concentration: "15.5" },
        { name: "Lavender Absolute", concentration: "10" },
        { name: "Sandalwood", concentration: "5.2" }
      ]
    } as unknown as Formula)
  })

  it("ignores and drops unknown fields", () => {
    const formula = valid({ name: "x", extra: 1, materials: [{ name: "a", concentration: 1, note: "hi" }] })
    assert.deepStrictEqual(Object.keys(formula), ["name", "materials"])
    assert.deepStrictEqual(Object.keys(formula.materials[0]!), ["name", "concentration"])
  })

  describe("names", () => {
    it.each([
      ["formula", (name: string) => ({ name, materials: [material("a")] }), "/name"],
      ["material", (name: string) => withMaterials(material(name)), "/materials/0/name"]
    ] as const)("%s name: trimmed, 1–200 characters", (_, make, path) => {
      valid(make("x".repeat(200)))
      valid(make("😀".repeat(200))) // 200 characters, 400 UTF-16 code units
      valid(make("a"))
      assert.deepStrictEqual(errorsOf(make("x".repeat(201))), [{ path, message: "must be at most 200 characters" }])
      assert.deepStrictEqual(errorsOf(make("")), [{ path, message: "must not be empty" }])
      assert.deepStrictEqual(errorsOf(make(" \t\n\u00A0")), [{ path, message: "must not be empty" }])
      assert.deepStrictEqual(errorsOf(make("a\u0000b")), [{ path, message: "must not contain control characters" }])
      assert.deepStrictEqual(errorsOf(make("a\uD800b")), [{ path, message: "must not contain unpaired surrogates" }])
      valid(make("tab\tinside")) // inner whitespace is text; the fingerprint collapses it
    })

    it("trims before measuring", () => {
      const formula = valid({ name: `  ${"x".repeat(200)}  `, materials: [material(` ${"y".repeat(200)}\n`)] })
      assert.strictEqual(formula.name, "x".repeat(200))
      assert.strictEqual(formula.materials[0]!.name, "y".repeat(200))
    })

    it("rejects a material name made only of invisible characters", () => {
      assert.deepStrictEqual(errorsOf(withMaterials(material("\u200B\u00AD"))), [
        { path: "/materials/0/name", message: "must contain a visible character" }
      ])
    })
  })

  describe("materials", () => {
    it("holds 1 to 500 materials", () => {
      valid(withMaterials(material("a")))
      valid(withMaterials(...materials(500)))
      assert.deepStrictEqual(errorsOf(withMaterials()), [
        { path: "/materials", message: "must contain at least 1 material" }
      ])
      assert.deepStrictEqual(errorsOf(withMaterials(...materials(501))), [
        { path: "/materials", message: "must contain at most 500 materials" }
      ])
    })

    it("an array over 500 is one problem, whatever its elements — protects against judging each of them", () => {
      for (const elements of [Array(524_256).fill(0), Array.from({ length: 349_504 }, () => ({})), materials(501)]) {
        assert.deepStrictEqual(errorsOf({ name: "", materials: elements }), [
          { path: "/name", message: "must not be empty" },
          { path: "/materials", message: "must contain at most 500 materials" }
        ])
      }
    })

    it("rejects names that normalize to the same key, at the later occurrence", () => {
      const errors = errorsOf(
        withMaterials(
          material("Bergamot Oil"),
          material("Rose"),
          material("  bergamot   OIL "),
          material("Ｂｅｒｇａｍｏｔ\u00A0Oil"),
          material("rose")
        )
      )
      assert.deepStrictEqual(
        errors.map((e) => e.path),
        ["/materials/2/name", "/materials/3/name", "/materials/4/name"]
      )
      assert.match(errors[0]!.message, /^duplicates the name at \/materials\/0\/name/)
      assert.match(errors[1]!.message, /^duplicates the name at \/materials\/0\/name/)
      assert.match(errors[2]!.message, /^duplicates the name at \/materials\/1\/name/)
    })

    it.each([
      ["ﬁg leaf", "Fig Leaf"],
      ["Straße", "STRASSE"],
      ["Cafe\u0301", "café"],
      ["Lav\u00ADender", "lavender"]
    ])("treats %j and %j as the same material", (a, b) => {
      assert.strictEqual(errorsOf(withMaterials(material(a), material(b)))[0]?.path, "/materials/1/name")
    })
  })

  describe("concentrations", () => {
    const one = (concentration: unknown) => errorsOf(withMaterials(material("a", concentration)))
    const at = (message: string) => [{ path: "/materials/0/concentration", message }]

    it("accepts the bounds and rejects just past them", () => {
      assert.strictEqual(valid(withMaterials(material("a", 0.000001))).materials[0]!.concentration, "0.000001")
      assert.strictEqual(valid(withMaterials(material("a", 100))).materials[0]!.concentration, "100")
      assert.strictEqual(valid(withMaterials(material("a", "100.000000"))).materials[0]!.concentration, "100")
      assert.deepStrictEqual(one(0), at("must be greater than 0"))
      assert.deepStrictEqual(one(-0.000001), at("must be greater than 0"))
      assert.deepStrictEqual(one(100.000001), at("must be at most 100"))
      assert.deepStrictEqual(one("100.000001"), at("must be at most 100"))
    })

    it("rejects a seventh decimal place instead of rounding it", () => {
      assert.deepStrictEqual(one(15.5000001), at("must have at most 6 decimal places"))
      assert.deepStrictEqual(one("15.5000001"), at("must have at most 6 decimal places"))
    })

    it.effect("rejects digits that JSON.parse would have rounded away", () =>
      Effect.gen(function* () {
        const text = '{"name":"x","materials":[{"name":"a","concentration":15.50000000000000001}]}'
        const error = yield* Effect.flip(decodeFormulaJson(text))
        assert.strictEqual(error._tag, "FormulaInvalid")
        if (error._tag === "FormulaInvalid") {
          assert.deepStrictEqual(error.errors, at("must have at most 6 decimal places"))
        }
      })
    )

    it.effect("accepts any JSON spelling of a number", () =>
      Effect.gen(function* () {
        const formula = yield* decodeFormulaJson(
          '{"name":"x","materials":[{"name":"a","concentration":1e1},{"name":"b","concentration":15.500E0}]}'
        )
        assert.deepStrictEqual(
          formula.materials.map((m) => m.concentration),
          ["10", "15.5"]
        )
      })
    )

    it("sums exactly: 100 is fine, 100.000001 is not", () => {
      valid(withMaterials(material("a", 44.959645), material("b", 51.779511), material("c", 3.260844)))
      valid(withMaterials(...materials(500, "0.2")))
      assert.deepStrictEqual(
        errorsOf(withMaterials(material("a", 44.959645), material("b", 51.779511), material("c", "3.260845"))),
        [{ path: "/materials", message: "concentrations must add up to at most 100 (they add up to 100.000001)" }]
      )
    })

    it.each([
      [true, "expected a number or a decimal string"],
      [null, "expected a number or a decimal string"],
      [{ value: 1 }, "expected a number or a decimal string"],
      ["1e1", 'must be a plain decimal number such as "15.5"'],
      [" 5 ", 'must be a plain decimal number such as "15.5"']
    ])("rejects %j", (concentration, message) => {
      assert.deepStrictEqual(one(concentration), at(message))
    })
  })

  describe("shape", () => {
    it.each([null, undefined, "formula", 42, [], true])("rejects %j as a whole", (input) => {
      assert.deepStrictEqual(errorsOf(input), [{ path: "", message: "expected an object" }])
    })

    it("reports missing fields and wrong types", () => {
      assert.deepStrictEqual(errorsOf({}), [
        { path: "/name", message: "is required" },
        { path: "/materials", message: "is required" }
      ])
      assert.deepStrictEqual(errorsOf({ name: 1, materials: {} }), [
        { path: "/name", message: "expected a string" },
        { path: "/materials", message: "expected an array" }
      ])
      assert.deepStrictEqual(errorsOf(withMaterials(null, {}, { name: ["a"], concentration: 1 })), [
        { path: "/materials/0", message: "expected an object" },
        { path: "/materials/1/name", message: "is required" },
        { path: "/materials/1/concentration", message: "is required" },
        { path: "/materials/2/name", message: "expected a string" }
      ])
    })
  })

  it("lists every problem together, with its path", () => {
    const errors = errorsOf({
      name: "   ",
      materials: [
        material("Rose", 60),
        material("", 20.5),
        material("Iris", "15.5000001"),
        material(" ROSE ", 0),
        material("Oud", 50),
        { name: 7 }
      ]
    })
    assert.deepStrictEqual(errors, [
      { path: "/name", message: "must not be empty" },
      { path: "/materials/1/name", message: "must not be empty" },
      { path: "/materials/2/concentration", message: "must have at most 6 decimal places" },
      { path: "/materials/3/concentration", message: "must be greater than 0" },
      { path: "/materials/5/name", message: "expected a string" },
      { path: "/materials/5/concentration", message: "is required" },
      // cross-material checks over the names and concentrations that are valid on their own
      {
        path: "/materials/3/name",
        message:
          "duplicates the name at /materials/0/name (names are compared ignoring case, whitespace and Unicode compatibility forms)"
      },
      { path: "/materials", message: "concentrations must add up to at most 100 (they add up to 130.5)" }
    ])
  })

  it("reports duplicates among valid materials even when others are invalid", () => {
    assert.deepStrictEqual(
      errorsOf(withMaterials(material("Rose"), material("x", -1), material("rose"))).map((e) => e.path),
      ["/materials/1/concentration", "/materials/2/name"]
    )
  })

  it("lists the first 100 problems and counts the rest — protects the size of a 400", () => {
    const result = validateFormula(withMaterials(...Array.from({ length: 500 }, () => ({}))))
    if (Result.isSuccess(result)) throw new Error("expected validation to fail")
    // Each empty material lacks its name and its concentration: 1,000 problems.
    assert.strictEqual(result.failure.errors.length, 100)
    assert.strictEqual(result.failure.moreErrors, 900)
    assert.deepStrictEqual(result.failure.errors.slice(0, 2), [
      { path: "/materials/0/name", message: "is required" },
      { path: "/materials/0/concentration", message: "is required" }
    ])
    assert.match(result.failure.message, /; and 900 more problems$/)
    const few = validateFormula({ name: "" })
    assert.strictEqual(Result.isFailure(few) && few.failure.moreErrors, 0)
  })

  it.effect("decodeFormula fails with a FormulaInvalid tagged error", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decodeFormula({ name: "" }))
      assert.strictEqual(error._tag, "FormulaInvalid")
      assert.strictEqual(error.errors.length, 2)
      assert.strictEqual(error.message, "/name: must not be empty; /materials: is required")
    })
  )

  it.effect("decodeFormulaJson fails with InvalidJson for text that is not JSON", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decodeFormulaJson("{"))
      assert.strictEqual(error._tag, "InvalidJson")
    })
  )

  it("renders the JSON shape with exact numbers", () => {
    const formula = valid(withMaterials(material("a", "15.500"), material("b", "0.000001")))
    const json = toFormulaJson(formula)
    assert.deepStrictEqual(json, {
      name: "Test",
      materials: [
        { name: "a", concentration: 15.5 },
        { name: "b", concentration: 0.000001 }
      ]
    })
    assert.isTrue(Schema.is(FormulaJson)(json))
    assert.strictEqual(
      JSON.stringify(json),
      '{"name":"Test","materials":[{"name":"a","concentration":15.5},{"name":"b","concentration":0.000001}]}'
    )
  })
})
