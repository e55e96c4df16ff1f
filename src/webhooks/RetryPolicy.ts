/**
 * What an attempt's result means for its delivery: pure, no Effect inside.
 *
 *   2xx                         → succeeded
 *   410 Gone                    → the endpoint is disabled at once, the delivery failed
 *   429 / 503 with Retry-After  → retried after it, capped at the schedule's next step × 2
 *   anything else (3xx too)     → retried after the schedule's next step, ±20 % jitter
 *   no next step                → failed
 *
 * `schedule[n]` is the delay before attempt n + 1 (schedule[0], usually 0,
 * is the first attempt's: new deliveries are due at once).
 */
import type { AttemptResult } from "./Sender.ts"

export type Verdict =
  | { readonly _tag: "Succeeded" }
  | { readonly _tag: "Gone" }
  | { readonly _tag: "Retry"; readonly delayMs: number }
  | { readonly _tag: "Exhausted" }

export const jitter = 0.2

/**
 * A Retry-After value in milliseconds from `nowMs`: delta-seconds or an HTTP
 * date (RFC 9110 §10.2.3); undefined when it is neither. A date in the past is 0.
 */
export const parseRetryAfter = (value: string | undefined, nowMs: number): number | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000
  // HTTP dates name the day and the zone; Date.parse accepts other shapes too, so require them.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return undefined
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

/**
 * The verdict on attempt number `attemptsMade` (1 for the first). `random`
 * is uniform in [0, 1): the jitter.
 */
export const judge = (options: {
  readonly result: AttemptResult
  readonly attemptsMade: number
  readonly schedule: ReadonlyArray<number>
  readonly nowMs: number
  readonly random: number
}): Verdict => {
  const { result } = options
  if (result._tag === "Answered" && result.status >= 200 && result.status < 300) return { _tag: "Succeeded" }
  if (result._tag === "Answered" && result.status === 410) return { _tag: "Gone" }
  const step = options.schedule[options.attemptsMade]
  if (step === undefined) return { _tag: "Exhausted" }
  if (result._tag === "Answered" && (result.status === 429 || result.status === 503)) {
    const asked = parseRetryAfter(result.retryAfter, options.nowMs)
    if (asked !== undefined) return { _tag: "Retry", delayMs: Math.min(asked, step * 2) }
  }
  return { _tag: "Retry", delayMs: Math.round(step * (1 - jitter + 2 * jitter * options.random)) }
}
