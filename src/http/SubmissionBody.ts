/**
 * What a `POST /formulas` body is: malformed, an invalid formula (its
 * problems, capped), or a valid formula (with the body's request hash when an
 * Idempotency-Key needs it). Plain data, so that a worker thread can send it
 * back (SubmissionJudge.ts).
 *
 * Judging a body costs time in proportion to what the client sent: parsing
 * 1 MiB of JSON takes tens of milliseconds (hundreds when its numbers need
 * their source text kept), far too long for the event loop every request
 * shares. So `judgeInline` answers only what is plainly cheap — a body of at
 * most `inlineMaxBytes` with no number that could round, that is malformed or
 * passes the hot path's check (FormulaCheck.ts) — and declines the rest,
 * which `judge` handles on the worker thread.
 */
import type { Formula, ValidationError } from "../domain/Formula.ts"
import { validateFormula } from "../domain/Formula.ts"
import { checkFormula } from "../domain/FormulaCheck.ts"
import { mayRound, parseJsonExact } from "../domain/JsonExact.ts"
import { requestHash } from "../intake/IdempotencyKeys.ts"

export type Judgement =
  | { readonly _tag: "Malformed"; readonly detail: string }
  | { readonly _tag: "Invalid"; readonly errors: ReadonlyArray<ValidationError>; readonly moreErrors: number }
  | { readonly _tag: "Valid"; readonly formula: Formula; readonly requestHash: string | undefined }

/**
 * The largest body judged on the event loop. Its worst cases (deep nesting,
 * many small values, a malformed tail) parse in about a millisecond; a valid
 * formula of a few dozen materials fits.
 */
export const inlineMaxBytes = 16 * 1024

const utf8 = new TextDecoder("utf-8", { fatal: true })

const decode = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

const notUtf8: Judgement = { _tag: "Malformed", detail: "the request body is not UTF-8" }

const valid = (formula: Formula, body: unknown, withRequestHash: boolean): Judgement => ({
  _tag: "Valid",
  formula,
  requestHash: withRequestHash ? requestHash(body) : undefined
})

/** Any body, whatever its size and content: run it on the worker thread for anything but small bodies. */
export const judge = (bytes: Uint8Array, withRequestHash: boolean): Judgement => {
  const text = decode(bytes)
  if (text === undefined) return notUtf8
  const parsed = parseJsonExact(text)
  if (parsed._tag === "Failure") return { _tag: "Malformed", detail: parsed.failure.message }
  const formula = validateFormula(parsed.success)
  return formula._tag === "Success"
    ? valid(formula.success, parsed.success, withRequestHash)
    : { _tag: "Invalid", errors: formula.failure.errors, moreErrors: formula.failure.moreErrors }
}

/** `judge`'s answer when it is cheap to find on the event loop (see the module comment); otherwise `undefined`. */
export const judgeInline = (bytes: Uint8Array, withRequestHash: boolean): Judgement | undefined => {
  if (bytes.length > inlineMaxBytes) return undefined
  const text = decode(bytes)
  if (text === undefined) return notUtf8
  // Numbers that could round need the exact parser's reviver, which costs microseconds per value.
  if (mayRound.test(text)) return undefined
  const parsed = parseJsonExact(text)
  if (parsed._tag === "Failure") return { _tag: "Malformed", detail: parsed.failure.message }
  const formula = checkFormula(parsed.success)
  return formula === undefined ? undefined : valid(formula, parsed.success, withRequestHash)
}
