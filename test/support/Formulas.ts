/**
 * Test data for the formulas API: unique make-ups, many spellings of one
 * make-up, JSON text with numbers spelled exactly as a client wrote them, and
 * small HTTP helpers for requests `TestServer.request` cannot express (raw
 * bytes, streamed bodies, no content type).
 */
import {
  DeliveryNotFoundProblem,
  DeliveryNotRetryableProblem,
  WebhookNotFoundProblem
} from "../../src/http/WebhooksApi.ts"
import { assert } from "@effect/vitest"
import { Schema } from "effect"
import { randomBytes } from "node:crypto"
import { FormulaView } from "../../src/http/FormulasApi.ts"
import * as Problems from "../../src/http/Problems.ts"
import { QueueReceiptInvalid } from "../../src/http/QueueApi.ts"
import { type JsonResponse, send } from "./TestServer.ts"

/**
 * Each documented problem by its `type`. Answers are decoded with these and
 * with `FormulaView`: POST /formulas is written by hand (SubmitRoute.ts), not
 * encoded by HttpApi, so every test that checks an answer also checks that it
 * is the documented one.
 */
const problemSchemas: Record<string, Schema.Decoder<unknown>> = {
  "invalid-formula": Problems.InvalidFormula,
  "malformed-json": Problems.MalformedJson,
  "invalid-request": Problems.InvalidRequest,
  "unsupported-media-type": Problems.UnsupportedMediaType,
  "payload-too-large": Problems.PayloadTooLarge,
  "duplicate-formula": Problems.DuplicateFormula,
  "formula-not-found": Problems.FormulaNotFound,
  "database-unavailable": Problems.ServiceUnavailable,
  "queue-full": Problems.QueueFullProblem,
  "idempotency-key-reused": Problems.IdempotencyKeyReused,
  "idempotency-key-in-flight": Problems.IdempotencyKeyInFlight,
  "queue-receipt-invalid": QueueReceiptInvalid,
  "not-found": Problems.NotFound,
  "method-not-allowed": Problems.MethodNotAllowed,
  "webhook-not-found": WebhookNotFoundProblem,
  "webhook-delivery-not-found": DeliveryNotFoundProblem,
  "webhook-delivery-not-failed": DeliveryNotRetryableProblem
}

/** A fresh lowercase tag; put it in material names so every test's make-ups are its own. */
export const uniqueTag = (): string => randomBytes(6).toString("hex")

/** A JSON number written exactly as given (`15.50000000000000001`, `1.55e1`), which `JSON.stringify` cannot do. */
export class RawNumber {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

export const raw = (text: string): RawNumber => new RawNumber(text)

/** `JSON.stringify`, except that `RawNumber`s are written as their text. */
export const jsonText = (value: unknown): string => {
  if (value instanceof RawNumber) return value.text
  if (Array.isArray(value)) return `[${value.map(jsonText).join(",")}]`
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}:${jsonText(item)}`)
      .join(",")}}`
  }
  return JSON.stringify(value)
}

export interface MaterialInput {
  readonly name: string
  readonly concentration: unknown
}

export interface FormulaInput {
  readonly name: string
  readonly materials: ReadonlyArray<MaterialInput>
}

/** The seed example from DESIGN.md, made unique by `tag` (in the material names, so the make-up is new). */
export const summerBreeze = (tag: string): FormulaInput => ({
  name: `Summer Breeze ${tag}`,
  materials: [
    { name: `Bergamot Oil ${tag}`, concentration: 15.5 },
    { name: `Lavender Absolute ${tag}`, concentration: 10.0 },
    { name: `Sandalwood ${tag}`, concentration: 5.2 }
  ]
})

/** A valid one-material make-up of its own. */
export const singleMaterial = (tag: string, concentration: unknown = 1): FormulaInput => ({
  name: `Single ${tag}`,
  materials: [{ name: `Material ${tag}`, concentration }]
})

// ASCII letters and digits to their full-width compatibility forms, space to the ideographic space:
// NFKC maps all of them back.
const fullWidth = (text: string): string =>
  Array.from(text, (char) =>
    char === " " ? "\u3000" : /[!-~]/.test(char) ? String.fromCodePoint(char.codePointAt(0)! + 0xfee0) : char
  ).join("")

const alternatingCase = (text: string): string =>
  Array.from(text, (char, index) => (index % 2 === 0 ? char.toUpperCase() : char.toLowerCase())).join("")

/** Ways to write a material name that all denote the same material (NFKC, trimmed, whitespace collapsed, case-folded). */
export const nameSpellings: ReadonlyArray<(name: string) => string> = [
  (name) => name,
  (name) => name.toUpperCase(),
  (name) => name.toLowerCase(),
  alternatingCase,
  (name) => `  ${name.replaceAll(" ", " \t  ")}\n `,
  (name) => name.replaceAll(" ", "\u00a0"),
  fullWidth,
  (name) => ` ${fullWidth(name.toUpperCase())}\u3000`
]

/** Ways to write each Summer Breeze concentration: JSON number text (exact) or a decimal string. */
export const concentrationSpellings: ReadonlyArray<ReadonlyArray<RawNumber | string>> = [
  [raw("15.5"), raw("15.50"), raw("15.500000"), raw("1.55e1"), raw("155e-1"), raw("0.155E2"), "15.5", "15.500000"],
  [raw("10"), raw("10.0"), raw("10.000"), raw("1e1"), raw("100e-1"), "10", "10.0", "10.000"],
  [raw("5.2"), raw("5.20"), raw("5.200000"), raw("52e-1"), raw("0.52e1"), "5.2", "5.20", "5.200"]
]

// Deterministic PRNG (mulberry32), so a failing spelling can be reproduced from its index.
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const permutations = <A>(items: ReadonlyArray<A>): Array<Array<A>> =>
  items.length <= 1
    ? [[...items]]
    : items.flatMap((item, index) =>
        permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest])
      )

/**
 * `count` request bodies (JSON text) that all carry the make-up of `summerBreeze(tag)`, each spelled
 * differently (material order, case, whitespace, compatibility forms, decimal spelling) and each under its
 * own formula name. The first is the plain seed spelling.
 */
export const summerBreezeSpellings = (tag: string, count: number, seed = 1): Array<string> => {
  const random = prng(seed)
  const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!
  const base = summerBreeze(tag).materials.map((material, index) => ({ name: material.name, index }))
  const orders = permutations(base)
  const first = jsonText(summerBreeze(tag))
  const bodies = [first]
  const seen = new Set([jsonText(summerBreeze(tag).materials)])
  while (bodies.length < count) {
    const materials = pick(orders).map(({ name, index }) => ({
      name: pick(nameSpellings)(name),
      concentration: pick(concentrationSpellings[index]!)
    }))
    const key = jsonText(materials)
    if (seen.has(key)) continue
    seen.add(key)
    bodies.push(
      jsonText({ name: `${pick(["Summer Breeze", "Brise d'été", "夏のそよ風"])} ${tag} #${bodies.length}`, materials })
    )
  }
  return bodies
}

/** POST /formulas with `body` as the exact request text, declared as JSON. */
export const postText = (text: string | Uint8Array<ArrayBuffer>) =>
  send("/formulas", { method: "POST", headers: { "content-type": "application/json" }, body: text })

/** POST /formulas with a value serialised by `jsonText` (so `RawNumber`s keep their spelling). */
export const postFormula = (body: unknown) => postText(jsonText(body))

/** An RFC 9457 problem document with this status (and `type`, when given). */
export const assertProblem = (response: JsonResponse, status: number, type?: string) => {
  assert.strictEqual(
    response.status,
    status,
    `expected ${status}, got ${response.status}: ${response.text.slice(0, 500)}`
  )
  assert.include(response.headers.get("content-type") ?? "", "application/problem+json")
  assert.isObject(response.json, "problem body is a JSON object")
  assert.strictEqual(response.json.status, status)
  assert.isString(response.json.title)
  assert.isString(response.json.type)
  if (type !== undefined) assert.strictEqual(response.json.type, `urn:formula-intake:problem:${type}`)
  const documented = problemSchemas[response.json.type.replace("urn:formula-intake:problem:", "")]
  assert.isDefined(documented, `problem type ${response.json.type} is not a documented one`)
  Schema.decodeUnknownSync(documented!)(response.json)
  assertRequestId(response)
  assert.strictEqual(response.json.requestId, response.headers.get("x-request-id"), "requestId is X-Request-Id")
}

/** Every answer names its request: `X-Request-Id`, sane (1–200 visible ASCII characters). */
export const assertRequestId = (response: JsonResponse): string => {
  const id = response.headers.get("x-request-id")
  assert.isString(id, "X-Request-Id is sent")
  assert.match(id!, /^[\x21-\x7e]{1,200}$/)
  return id!
}

/** The 400 for an invalid formula; returns its `errors`. Every entry has a string path and a non-empty message. */
export const assertInvalid = (response: JsonResponse): Array<{ path: string; message: string }> => {
  assertProblem(response, 400, "invalid-formula")
  const errors = response.json.errors
  assert.isArray(errors)
  assert.isAbove(errors.length, 0)
  for (const error of errors) {
    assert.isString(error.path)
    assert.isString(error.message)
    assert.isAbove(error.message.length, 0)
  }
  return errors
}

/** The 409 for a known make-up, naming `existingId`. */
export const assertDuplicateOf = (response: JsonResponse, existingId: string) => {
  assertProblem(response, 409, "duplicate-formula")
  assert.strictEqual(response.json.existingId, existingId)
  assert.strictEqual(response.json.existingUrl, `/formulas/${existingId}`)
}

export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A 201 for a new formula: the documented body and `Location`. Returns the body. */
export const assertCreated = (response: JsonResponse) => {
  assert.strictEqual(response.status, 201, `expected 201, got ${response.status}: ${response.text.slice(0, 500)}`)
  assert.include(response.headers.get("content-type") ?? "", "application/json")
  const body = response.json
  assert.isString(body.id)
  assert.isAbove(body.id.length, 0)
  assert.strictEqual(response.headers.get("location"), `/formulas/${body.id}`)
  assert.match(body.fingerprint, /^[0-9a-f]{64}$/)
  assert.isString(body.name)
  assert.isArray(body.materials)
  assert.isString(body.createdAt)
  assert.strictEqual(new Date(body.createdAt).toISOString(), body.createdAt)
  assert.isString(body.message.id)
  assert.isAbove(body.message.id.length, 0)
  Schema.decodeUnknownSync(FormulaView)(body)
  assertRequestId(response)
  return body
}
