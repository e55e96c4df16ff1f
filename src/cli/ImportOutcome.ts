/**
 * What became of one line of an import, decided from the service's answer
 * alone (no Effect here): the outcome the summary counts and the report
 * records, or "retry" when the answer says to ask again later.
 *
 *   201                        → created (id)        replayed when Idempotent-Replayed: true
 *   409 duplicate-formula      → duplicate (existing id)
 *   400 / 413 / 415 / 422      → invalid (the problems, with their JSON Pointer paths)
 *   409 key in flight, 429, 503 → retry (after Retry-After, or a backoff)
 *   other 5xx                  → retry a few times, then failed
 *   anything else              → failed (the problem)
 */
import type { Answer } from "./Client.ts"
import { problemOf } from "./Client.ts"

export type Outcome = "created" | "duplicate" | "invalid" | "failed"

export interface LineReport {
  readonly line: number
  readonly outcome: Outcome
  readonly id?: string
  readonly replayed?: boolean
  readonly problems?: ReadonlyArray<{ readonly path: string; readonly message: string }>
}

export type Judgement =
  | { readonly _tag: "Done"; readonly report: LineReport }
  | { readonly _tag: "Retry"; readonly afterMs: number | undefined; readonly why: string; readonly transient: boolean }

const duplicateType = "urn:formula-intake:problem:duplicate-formula"

const retryAfterMs = (answer: Answer): number | undefined => {
  const header = answer.headers["retry-after"]
  const seconds = Number(header)
  return header === undefined || !Number.isFinite(seconds) || seconds < 0 ? undefined : seconds * 1000
}

const problemsOf = (answer: Answer) => {
  const problem = problemOf(answer)
  return problem.errors !== undefined && problem.errors.length > 0
    ? problem.errors.map(({ path, message }) => ({ path, message }))
    : [{ path: "", message: `${answer.status} ${problem.title ?? ""}${problem.detail ? `: ${problem.detail}` : ""}` }]
}

export const judge = (line: number, answer: Answer): Judgement => {
  const replayed = answer.headers["idempotent-replayed"] === "true" ? { replayed: true } : {}
  const done = (report: LineReport): Judgement => ({ _tag: "Done", report })
  switch (answer.status) {
    case 201:
      return done({ line, outcome: "created", id: answer.json?.id, ...replayed })
    case 409:
      return answer.json?.type === duplicateType
        ? done({ line, outcome: "duplicate", id: answer.json.existingId, ...replayed })
        : // The same key still in flight: an identical line earlier in this file, being sent right now.
          { _tag: "Retry", afterMs: undefined, why: "409 in flight", transient: true }
    case 400:
    case 413:
    case 415:
    case 422:
      return done({ line, outcome: "invalid", problems: problemsOf(answer) })
    case 429:
    case 503:
      return { _tag: "Retry", afterMs: retryAfterMs(answer), why: `${answer.status}`, transient: true }
  }
  return answer.status >= 500
    ? { _tag: "Retry", afterMs: retryAfterMs(answer), why: `${answer.status}`, transient: false }
    : done({ line, outcome: "failed", problems: problemsOf(answer) })
}

/** A line that is not JSON is invalid before any request: where, and why. */
export const notJson = (line: number, message: string): LineReport => ({
  line,
  outcome: "invalid",
  problems: [{ path: "", message: `not valid JSON: ${message}` }]
})
