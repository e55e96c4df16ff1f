/**
 * One function per SQL statement of the statistics. Values are always bound.
 * Time arithmetic is PostgreSQL's (its time-zone database), and runs the same
 * on PostgreSQL 15+ and PGlite: no `generate_series(…, zone)` (PostgreSQL 16).
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { texts, timestamps } from "../store/SqlArrays.ts"

export type Granularity = "minute" | "hour" | "day" | "week" | "month"
export const granularities: ReadonlyArray<Granularity> = ["minute", "hour", "day", "week", "month"]

/** Minutes and hours are steps of absolute time; days, weeks and months follow the zone's calendar. */
const calendar = (granularity: Granularity) =>
  granularity === "day" || granularity === "week" || granularity === "month"

export interface BucketBounds {
  readonly startMs: number
  readonly endMs: number
  /** The bucket's start on the zone's wall clock, `2026-03-29T00:00:00`. */
  readonly local: string
  /** The zone's offset from UTC at the start, in seconds. */
  readonly offsetSeconds: number
}

export interface ResolvedRange {
  readonly fromMs: number
  readonly toMs: number
  /** Up to `limit + 1` buckets: one more than the limit says the range is too long. */
  readonly buckets: ReadonlyArray<BucketBounds>
}

export interface BucketCounts {
  readonly created: number
  readonly duplicate: number
  readonly invalid: number
}

/** A date-time of the query: with an offset, an instant; without one, a wall-clock time in the zone. */
export interface QueryTime {
  readonly text: string
  readonly hasOffset: boolean
}

export const makeStatsSql = (sql: PgClient.PgClient) => {
  // Counts travel as decimal text and are read back as bigint.
  const counts_ = (values: ReadonlyArray<number>) => texts(values.map(String))

  /** Whether PostgreSQL knows the zone (asked once per zone by the caller). */
  const zoneKnown = (zone: string) =>
    Effect.map(
      sql<{ readonly name: string }>`SELECT name FROM pg_timezone_names WHERE name = ${zone} LIMIT 1`,
      (rows) => rows.length === 1
    )

  /**
   * The range as instants and its buckets: those whose start is in
   * [the start of the bucket holding `from`, `to`). `from` left out: `to - span`.
   */
  const buckets = (options: {
    readonly granularity: Granularity
    readonly zone: string
    readonly from: QueryTime | undefined
    readonly to: QueryTime
    readonly span: string
    readonly limit: number
  }) => {
    const { granularity, zone, from, to, span, limit } = options
    const step = `1 ${granularity}`
    const time = (t: QueryTime | undefined) =>
      t === undefined
        ? sql`NULL::timestamptz`
        : t.hasOffset
          ? sql`${t.text}::timestamptz`
          : sql`(${t.text}::timestamp AT TIME ZONE ${zone})`
    const range = sql`
      SELECT coalesce(${time(from)}, t - ${span}::interval) AS f, t
        FROM (SELECT ${time(to)} AS t) AS given`
    const series = calendar(granularity)
      ? sql`
          SELECT extract(epoch FROM g AT TIME ZONE ${zone}) * 1000 AS start_ms,
                 extract(epoch FROM (g + ${step}::interval) AT TIME ZONE ${zone}) * 1000 AS end_ms,
                 to_char(g, 'YYYY-MM-DD"T"HH24:MI:SS') AS local,
                 extract(epoch FROM g - ((g AT TIME ZONE ${zone}) AT TIME ZONE 'UTC'))::int AS offset_s
            FROM generate_series(date_trunc(${granularity}, r.f AT TIME ZONE ${zone}),
                                 r.t AT TIME ZONE ${zone}, ${step}::interval) AS g
           WHERE g AT TIME ZONE ${zone} < r.t
           LIMIT ${limit + 1}`
      : sql`
          SELECT extract(epoch FROM g) * 1000 AS start_ms,
                 extract(epoch FROM g + ${step}::interval) * 1000 AS end_ms,
                 to_char(g AT TIME ZONE ${zone}, 'YYYY-MM-DD"T"HH24:MI:SS') AS local,
                 extract(epoch FROM (g AT TIME ZONE ${zone}) - (g AT TIME ZONE 'UTC'))::int AS offset_s
            FROM generate_series(
                   r.f - ((r.f AT TIME ZONE ${zone}) - date_trunc(${granularity}, r.f AT TIME ZONE ${zone})),
                   r.t - interval '1 microsecond', ${step}::interval) AS g
           LIMIT ${limit + 1}`
    return Effect.map(
      sql<{
        readonly from_ms: number
        readonly to_ms: number
        readonly start_ms: number | null
        readonly end_ms: number | null
        readonly local: string | null
        readonly offset_s: number | null
      }>`
        SELECT (extract(epoch FROM r.f) * 1000)::float8 AS from_ms, (extract(epoch FROM r.t) * 1000)::float8 AS to_ms,
               s.start_ms::float8 AS start_ms, s.end_ms::float8 AS end_ms, s.local, s.offset_s
          FROM (${range}) AS r
          LEFT JOIN LATERAL (${series}) AS s ON r.f < r.t
         ORDER BY s.start_ms`,
      (rows): ResolvedRange => ({
        fromMs: Number(rows[0]!.from_ms),
        toMs: Number(rows[0]!.to_ms),
        buckets: rows
          .filter((row) => row.start_ms !== null)
          .map((row) => ({
            startMs: Number(row.start_ms),
            endMs: Number(row.end_ms),
            local: row.local!,
            offsetSeconds: Number(row.offset_s)
          }))
      })
    )
  }

  /**
   * The counts of each bucket [start, end): formulas by `created_at` (one
   * index range scan each), duplicates and invalid submissions from the
   * per-minute rows.
   */
  const counts = (bounds: ReadonlyArray<{ readonly startMs: number; readonly endMs: number }>) =>
    Effect.map(
      sql<{ readonly i: number; readonly created: number; readonly duplicate: number; readonly invalid: number }>`
        SELECT b.i::int AS i,
               (SELECT count(*) FROM formulas f WHERE f.created_at >= b.s AND f.created_at < b.e)::float8 AS created,
               coalesce(m.duplicate, 0)::float8 AS duplicate,
               coalesce(m.invalid, 0)::float8 AS invalid
          FROM unnest(${timestamps(bounds.map((b) => new Date(b.startMs)))}::timestamptz[],
                      ${timestamps(bounds.map((b) => new Date(b.endMs)))}::timestamptz[]) WITH ORDINALITY AS b (s, e, i)
          LEFT JOIN LATERAL (
            SELECT sum(duplicate) AS duplicate, sum(invalid) AS invalid
              FROM submission_stats WHERE minute >= b.s AND minute < b.e
          ) AS m ON true
         ORDER BY b.i`,
      (rows): Array<BucketCounts> =>
        rows.map((row) => ({
          created: Number(row.created),
          duplicate: Number(row.duplicate),
          invalid: Number(row.invalid)
        }))
    )

  /** Adds counts to their minutes' rows (several instances add up). */
  const addCounts = (rows: ReadonlyArray<{ readonly minuteMs: number } & Omit<BucketCounts, "created">>) =>
    Effect.asVoid(sql`
      INSERT INTO submission_stats (minute, duplicate, invalid)
      SELECT minute, duplicate, invalid
        FROM unnest(${timestamps(rows.map((row) => new Date(row.minuteMs)))}::timestamptz[],
                    ${counts_(rows.map((row) => row.duplicate))}::text[]::bigint[],
                    ${counts_(rows.map((row) => row.invalid))}::text[]::bigint[]) AS t (minute, duplicate, invalid)
      ON CONFLICT (minute) DO UPDATE
        SET duplicate = submission_stats.duplicate + excluded.duplicate,
            invalid = submission_stats.invalid + excluded.invalid`)

  /**
   * The materials used by the most formulas, by name as stored (trimmed, as
   * submitted), with the median concentration: `percentile_disc(0.5)`, the
   * lower median, an exact stored decimal (`percentile_cont` would go
   * through double precision).
   */
  const topMaterials = (top: number) =>
    sql<{ readonly name: string; readonly formulas: number; readonly median: string }>`
      SELECT name, count(*)::float8 AS formulas,
             (percentile_disc(0.5) WITHIN GROUP (ORDER BY concentration))::text AS median
        FROM formula_materials
       GROUP BY name
       ORDER BY count(*) DESC, name
       LIMIT ${top}`

  return { zoneKnown, buckets, counts, addCounts, topMaterials }
}
