/**
 * A formula submission: `{ name, materials: [{ name, concentration }] }`, its schema and its validation.
 *
 * Rules (DESIGN.md "Data"): names are trimmed, non-empty and at most 200 characters (code points, as
 * PostgreSQL counts `varchar`/`char_length`); 1–500 materials; each concentration an exact decimal,
 * 0 < c ≤ 100 with at most 6 decimal places (Decimal.ts); the concentrations add up to at most 100, exactly;
 * no two material names with the same `normalizeMaterialName` key. Names must also be storable text: no
 * control characters other than whitespace (PostgreSQL rejects NUL) and no unpaired surrogates.
 * Unknown extra fields are ignored and dropped from the decoded value (Effect's default), so clients may send
 * more than we read without breaking.
 *
 * Errors: `FormulaInvalid.errors` lists every problem as `{ path, message }`, the first `MAX_LISTED_ERRORS`
 * of them (`moreErrors` counts the rest). `path` is a JSON Pointer (RFC 6901) into the submitted JSON:
 * `/materials/2/concentration`, `/name`, and `""` for the body itself. A materials array longer than 500 is
 * one problem at `/materials`: its elements are not looked at, so the work of judging a body is bounded by
 * the rules, not by what a client sends. Problems come in input order; cross-material ones (duplicate names,
 * total over 100) follow the per-field ones. The cross-material checks also run when some materials are invalid, over the names and the
 * concentrations that are valid on their own: a duplicate name is a duplicate whatever the rest holds, and as
 * every concentration is > 0, a partial total over 100 can only grow once the rest is fixed.
 */
import { Effect, JsonPointer, Predicate, Result, Schema, SchemaGetter, SchemaIssue, SchemaTransformation } from "effect"
import {
  Concentration,
  formatMicros,
  MAX_TOTAL_MICROS,
  parseConcentration,
  sumMicros,
  toJsonNumber
} from "./Decimal.ts"
import { normalizeMaterialName } from "./Fingerprint.ts"
import { checkFormula } from "./FormulaCheck.ts"
import { CONTROL, MATERIALS_MAX, MATERIALS_MIN, NAME_MAX_LENGTH } from "./FormulaRules.ts"
import { type InvalidJson, JsonNumberText, parseJsonExact } from "./JsonExact.ts"

const nameChecks = [
  Schema.makeFilter((s: string) => s.length > 0, { message: "must not be empty" }),
  Schema.isMaxCodePoints(NAME_MAX_LENGTH, { message: `must be at most ${NAME_MAX_LENGTH} characters` }),
  Schema.makeFilter((s: string) => !CONTROL.test(s), { message: "must not contain control characters" }),
  Schema.makeFilter((s: string) => s.isWellFormed(), { message: "must not contain unpaired surrogates" })
] as const

const trimmed = <S extends Schema.Top & { readonly Type: string; readonly Encoded: string }>(to: S) =>
  Schema.String.annotate({ message: "expected a string" }).pipe(Schema.decodeTo(to, SchemaTransformation.trim()))

/** A formula name: trimmed, then checked. */
export const FormulaName = trimmed(Schema.String.check(...nameChecks))

/** A material name: as a formula name, and not made only of invisible characters (its key must be non-empty). */
export const MaterialName = trimmed(
  Schema.String.check(
    ...nameChecks,
    Schema.makeFilter((s: string) => s.length === 0 || normalizeMaterialName(s).length > 0, {
      message: "must contain a visible character"
    })
  )
)

const EXPECTED_CONCENTRATION = "expected a number or a decimal string"

/**
 * A concentration as submitted (JSON number, decimal string, or `JsonNumberText` from `parseJsonExact`),
 * decoded exactly to a canonical `Concentration`. Encodes back to a JSON number.
 */
export const ConcentrationFromInput = Schema.Union([
  Schema.Number,
  Schema.String,
  Schema.instanceOf(JsonNumberText, { message: EXPECTED_CONCENTRATION })
])
  .annotate({ message: EXPECTED_CONCENTRATION })
  .pipe(
    Schema.decodeTo(Concentration, {
      decode: SchemaGetter.transformEffect((input, options) => {
        const parsed = parseConcentration(input)
        if (Result.isSuccess(parsed)) return Effect.succeed(parsed.success)
        const [first, ...rest] = parsed.failure.map(
          (message) => new SchemaIssue.InvalidValue({ message }, input, options)
        )
        return Effect.fail(rest.length === 0 ? first : new SchemaIssue.Composite(Concentration.ast, [first, ...rest]))
      }),
      encode: SchemaGetter.transform((c: string) => Number(c))
    })
  )

export const Material = Schema.Struct({
  name: MaterialName,
  concentration: ConcentrationFromInput
}).annotate({ message: "expected an object" })

export type Material = typeof Material.Type

interface Problem {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

/** Later materials whose name has the key of an earlier one; names given with their index in the array. */
const duplicateNames = (names: ReadonlyArray<readonly [number, string]>): Array<Problem> => {
  const problems: Array<Problem> = []
  const firstIndexByKey = new Map<string, number>()
  for (const [index, name] of names) {
    const key = normalizeMaterialName(name)
    const first = firstIndexByKey.get(key)
    if (first === undefined) {
      firstIndexByKey.set(key, index)
    } else {
      problems.push({
        path: ["materials", index, "name"],
        message: `duplicates the name at /materials/${first}/name (names are compared ignoring case, whitespace and Unicode compatibility forms)`
      })
    }
  }
  return problems
}

const totalOver100 = (concentrations: ReadonlyArray<Concentration>): Array<Problem> => {
  const total = sumMicros(concentrations)
  return total <= MAX_TOTAL_MICROS
    ? []
    : [
        {
          path: ["materials"],
          message: `concentrations must add up to at most 100 (they add up to ${formatMicros(total)})`
        }
      ]
}

// The length is checked before any element is decoded: an array of half a million elements is one problem
// ("at most 500"), not half a million, and costs no more to judge than an array of 501.
// (A check on `Schema.Array(Schema.Unknown)` would come too late: the array is copied element by element first.)
const Materials = Schema.Unknown.check(
  Schema.makeFilter((input: unknown) =>
    !Array.isArray(input)
      ? "expected an array"
      : input.length < MATERIALS_MIN
        ? `must contain at least ${MATERIALS_MIN} material`
        : input.length > MATERIALS_MAX
          ? `must contain at most ${MATERIALS_MAX} materials`
          : undefined
  )
).pipe(
  Schema.decodeTo(
    Schema.Array(Material).check(
      // Runs only when every material decoded; `problemsAmongValidFields` covers the other case.
      Schema.makeFilter(
        (materials: ReadonlyArray<Material>) =>
          [
            ...duplicateNames(materials.map((material, index) => [index, material.name] as const)),
            ...totalOver100(materials.map((material) => material.concentration))
          ].map(({ path, message }) => ({ path: path.slice(1), issue: message })) // paths relative to the array
      )
    )
  )
)

/** The formula schema. Decode with `decodeFormula` to get every problem, not only the first. */
export const Formula = Schema.Struct({
  name: FormulaName,
  materials: Materials
}).annotate({ message: "expected an object" })

/** A valid formula: names trimmed, concentrations canonical. */
export type Formula = typeof Formula.Type

export const ValidationError = Schema.Struct({ path: Schema.String, message: Schema.String })
export type ValidationError = typeof ValidationError.Type

/** At most this many problems are listed; `moreErrors` says how many more there were. */
export const MAX_LISTED_ERRORS = 100

/**
 * The submission is not a valid formula. `errors` lists every problem, up to `MAX_LISTED_ERRORS`;
 * `moreErrors` is the number of problems found beyond those (see the module comment).
 */
export class FormulaInvalid extends Schema.TaggedError<FormulaInvalid>()(
  "FormulaInvalid",
  { errors: Schema.Array(ValidationError), moreErrors: Schema.Int },
  { httpApiStatus: 400 }
) {
  override get message(): string {
    const listed = this.errors.map(({ path, message }) => `${path === "" ? "(body)" : path}: ${message}`).join("; ")
    return this.moreErrors === 0 ? listed : `${listed}; and ${this.moreErrors} more problems`
  }
}

const toPointer = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string =>
  path
    .map((segment) => "/" + JsonPointer.escapeToken(String(Predicate.isObject(segment) ? segment.key : segment)))
    .join("")

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) => (issue._tag === "MissingKey" ? "is required" : SchemaIssue.defaultLeafHook(issue))
})

const decodeAll = Schema.decodeUnknownResult(Formula)
const decodeMaterialName = Schema.decodeUnknownResult(MaterialName)
const decodeConcentration = Schema.decodeUnknownResult(ConcentrationFromInput)

// When some material is invalid the array filter never ran: run the cross-material checks over the names and
// concentrations that are valid on their own.
const problemsAmongValidFields = (input: unknown): Array<Problem> => {
  if (!Predicate.hasProperty(input, "materials") || !Array.isArray(input.materials)) return []
  if (input.materials.length > MATERIALS_MAX) return [] // one problem already, its elements not looked at
  const names: Array<readonly [number, string]> = []
  const concentrations: Array<Concentration> = []
  input.materials.forEach((material: unknown, index) => {
    if (!Predicate.isObject(material)) return
    const name = Predicate.hasProperty(material, "name") ? decodeMaterialName(material.name) : undefined
    if (name !== undefined && Result.isSuccess(name)) names.push([index, name.success])
    const concentration = Predicate.hasProperty(material, "concentration")
      ? decodeConcentration(material.concentration)
      : undefined
    if (concentration !== undefined && Result.isSuccess(concentration)) concentrations.push(concentration.success)
  })
  return [...duplicateNames(names), ...totalOver100(concentrations)]
}

/** Validates a submission (e.g. the output of `parseJsonExact`), listing every problem (up to the cap) on failure. */
export const validateFormula = (input: unknown): Result.Result<Formula, FormulaInvalid> => {
  // Plainly valid input skips the schema's interpreter (FormulaCheck.ts); the schema judges the rest.
  const checked = checkFormula(input)
  if (checked !== undefined) return Result.succeed(checked)
  const decoded = decodeAll(input, { errors: "all" })
  if (Result.isSuccess(decoded)) return Result.succeed(decoded.success)
  const errors = formatIssue(decoded.failure.issue).issues.map(({ path, message }) => ({
    path: toPointer(path ?? []),
    message
  }))
  const reported = new Set(errors.map(({ path, message }) => `${path}\n${message}`))
  for (const { path, message } of problemsAmongValidFields(input)) {
    const error = { path: toPointer(path), message }
    if (!reported.has(`${error.path}\n${error.message}`)) errors.push(error)
  }
  return Result.fail(
    new FormulaInvalid({
      errors: errors.slice(0, MAX_LISTED_ERRORS),
      moreErrors: Math.max(0, errors.length - MAX_LISTED_ERRORS)
    })
  )
}

/** `validateFormula` as an Effect. */
export const decodeFormula = (input: unknown): Effect.Effect<Formula, FormulaInvalid> =>
  Effect.suspend(() => Effect.fromResult(validateFormula(input)))

/** Raw JSON text (a request body) to a valid formula, exactly: `parseJsonExact`, then `validateFormula`. */
export const decodeFormulaJson: (text: string) => Effect.Effect<Formula, InvalidJson | FormulaInvalid> =
  Effect.fnUntraced(function* (text: string) {
    const parsed = yield* Effect.fromResult(parseJsonExact(text))
    return yield* Effect.fromResult(validateFormula(parsed))
  })

/** A material as JSON in responses: the concentration as a JSON number (exact, see `toJsonNumber`). */
export const MaterialJson = Schema.Struct({
  name: Schema.String,
  concentration: Schema.Number.annotate({ description: "percent w/w, 0 < c ≤ 100, at most 6 decimal places" })
})
export type MaterialJson = typeof MaterialJson.Type

export const FormulaJson = Schema.Struct({ name: Schema.String, materials: Schema.Array(MaterialJson) })
export type FormulaJson = typeof FormulaJson.Type

/** The request body as documented (OpenAPI): a concentration may also be a decimal string such as "15.5". */
export const FormulaRequestJson = Schema.Struct({
  name: Schema.String.annotate({ description: "trimmed; 1–200 characters" }),
  materials: Schema.Array(
    Schema.Struct({
      name: Schema.String.annotate({
        description:
          "trimmed; 1–200 characters; unique within the formula ignoring case, whitespace and Unicode compatibility forms"
      }),
      concentration: Schema.Union([Schema.Number, Schema.String]).annotate({
        description:
          'percent w/w as a JSON number or a decimal string ("15.5"); 0 < c ≤ 100; at most 6 decimal places; total ≤ 100'
      })
    })
  ).annotate({ description: "1–500 materials" })
})

export const toFormulaJson = (formula: Formula): FormulaJson => ({
  name: formula.name,
  materials: formula.materials.map((material) => ({
    name: material.name,
    concentration: toJsonNumber(material.concentration)
  }))
})
