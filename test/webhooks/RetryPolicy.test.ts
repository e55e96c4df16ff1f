import { assert, describe, it } from "@effect/vitest"
import { judge, parseRetryAfter } from "../../src/webhooks/RetryPolicy.ts"
import type { AttemptResult } from "../../src/webhooks/Sender.ts"

const schedule = [0, 5_000, 300_000]
const answered = (status: number, retryAfter?: string): AttemptResult => ({
  _tag: "Answered",
  status,
  retryAfter,
  body: ""
})
const verdict = (result: AttemptResult, attemptsMade = 1, random = 0.5) =>
  judge({ result, attemptsMade, schedule, nowMs: Date.UTC(2026, 0, 1), random })

describe("RetryPolicy", () => {
  it("2xx succeeds, 410 is gone, everything else (3xx too) retries on the schedule", () => {
    for (const status of [200, 201, 204, 299]) assert.deepStrictEqual(verdict(answered(status)), { _tag: "Succeeded" })
    assert.deepStrictEqual(verdict(answered(410)), { _tag: "Gone" })
    for (const status of [301, 302, 307, 400, 404, 500]) {
      assert.deepStrictEqual(verdict(answered(status)), { _tag: "Retry", delayMs: 5_000 })
    }
    assert.deepStrictEqual(verdict({ _tag: "Failed", error: "ECONNREFUSED" }, 2), { _tag: "Retry", delayMs: 300_000 })
  })

  it("jitter stays within ±20 %", () => {
    assert.deepStrictEqual(verdict(answered(500), 1, 0), { _tag: "Retry", delayMs: 4_000 })
    assert.deepStrictEqual(verdict(answered(500), 1, 0.999999), { _tag: "Retry", delayMs: 6_000 })
  })

  it("after the last step the delivery is exhausted, whatever Retry-After says", () => {
    assert.deepStrictEqual(verdict(answered(500), 3), { _tag: "Exhausted" })
    assert.deepStrictEqual(verdict(answered(429, "1"), 3), { _tag: "Exhausted" })
  })

  it("429 / 503 honour Retry-After within twice the next step; other statuses ignore it", () => {
    assert.deepStrictEqual(verdict(answered(429, "7")), { _tag: "Retry", delayMs: 7_000 })
    assert.deepStrictEqual(verdict(answered(503, "0")), { _tag: "Retry", delayMs: 0 })
    assert.deepStrictEqual(verdict(answered(503, "3600")), { _tag: "Retry", delayMs: 10_000 })
    assert.deepStrictEqual(verdict(answered(500, "1")), { _tag: "Retry", delayMs: 5_000 })
    assert.deepStrictEqual(verdict(answered(429, "soon")), { _tag: "Retry", delayMs: 5_000 })
  })

  it("Retry-After: delta-seconds or an HTTP date", () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0)
    assert.strictEqual(parseRetryAfter("120", now), 120_000)
    assert.strictEqual(parseRetryAfter(" 5 ", now), 5_000)
    assert.strictEqual(parseRetryAfter("Thu, 01 Jan 2026 12:00:30 GMT", now), 30_000)
    assert.strictEqual(parseRetryAfter("Thu, 01 Jan 2026 11:00:00 GMT", now), 0)
    for (const bad of ["-1", "1.5", "", "2026-01-01T12:00:30Z", "tomorrow"]) {
      assert.isUndefined(parseRetryAfter(bad, now), bad)
    }
  })
})
