/**
 * When a statistics bucket is closed: immutable, cached, never recomputed.
 *
 * Two kinds of write can reach a bucket after it has ended:
 * - a formula whose `created_at` was taken from the clock before its
 *   transaction committed: the submit path bounds that by its database
 *   timeouts (a batch within 10 s, its item-by-item fallback within 20 s
 *   more: FormulaStore.ts);
 * - the duplicate / invalid counts of a minute, flushed at most one flush
 *   interval after the minute ended (SubmissionCounters.ts), or later when
 *   the database refused a flush.
 *
 * So a bucket counts as closed only once it ended more than the flush interval
 * plus `lateWriteMargin` (60 s, more than both bounds) ago. Counts that a
 * flush could not write in time are not added to their own minute once it is
 * near closing (`flushTarget`): they go to the current minute instead, so a
 * closed bucket's answer is the same whether it comes from this instance's
 * cache, another instance's or a fresh computation. What is not covered:
 * rows written around the service (SQL inserting formulas with old
 * `created_at`) after the bucket closed; a cache keeps its answer, a fresh
 * computation sees them.
 */

export const minuteMs = 60_000

/** Beyond the flush interval, how long after its end a bucket may still change. */
export const lateWriteMargin = 60_000

/** A bucket ending at `endMs` is closed at `nowMs`: nothing written through the service can change it any more. */
export const isClosed = (endMs: number, nowMs: number, flushIntervalMs: number): boolean =>
  endMs + flushIntervalMs + lateWriteMargin <= nowMs

export const floorMinute = (ms: number): number => Math.floor(ms / minuteMs) * minuteMs

/**
 * The minute a flush starting at `nowMs` adds the counts of `minute` to: their
 * own while it is at least half the margin from closing (the flush statement
 * answers within 10 s, or is retried), else the current minute, which is open.
 */
export const flushTarget = (minute: number, nowMs: number, flushIntervalMs: number): number =>
  minute + minuteMs + flushIntervalMs + lateWriteMargin / 2 > nowMs ? minute : floorMinute(nowMs)
