/**
 * Statistics: submissions over time and the most used materials; and the
 * dashboard page that shows them (described here, served by a plain route:
 * DashboardRoute.ts). Described apart from their handlers (StatsHandlers.ts).
 */
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { dateTimeSpellings, isTimeZoneName, parseQueryTime } from "../stats/QueryTimes.ts"
import { granularities } from "../stats/StatsSql.ts"
import { maxBuckets } from "../stats/SubmissionStats.ts"
import { documented, example } from "./Documented.ts"
import { InvalidRequest, ServiceUnavailable } from "./Problems.ts"
import { QueryInt } from "./QueryInt.ts"

const Count = Schema.Natural

export const Granularity = Schema.Literals(granularities)

const TimeZone = Schema.String.check(
  Schema.makeFilter((zone: string) =>
    isTimeZoneName(zone) ? undefined : "must be an IANA time-zone name, such as UTC, Europe/Berlin or America/New_York"
  )
)

const DateTime = Schema.String.check(
  Schema.makeFilter((text: string) => (parseQueryTime(text) !== undefined ? undefined : `must be ${dateTimeSpellings}`))
)

export const SubmissionBucket = Schema.Struct({
  start: Schema.String.annotate({
    description: "The bucket's first instant, on the zone's wall clock with its offset (ISO 8601)"
  }),
  created: Count.annotate({ description: "New formulas stored (by their createdAt)" }),
  duplicate: Count.annotate({ description: "Submissions answered 409: the make-up was already stored" }),
  invalid: Count.annotate({ description: "Submissions answered 400" })
})

export const SubmissionStatsView = Schema.Struct({
  granularity: Granularity,
  timeZone: Schema.String,
  buckets: Schema.Array(SubmissionBucket)
})

export const MaterialUseView = Schema.Struct({
  name: Schema.String.annotate({ description: "As stored: trimmed, spelled as first submitted in each formula" }),
  formulas: Count.annotate({ description: "Formulas that use it" }),
  medianConcentration: Schema.String.annotate({
    description:
      "The median of its concentrations in those formulas, an exact decimal: the lower median (percentile_disc(0.5)), a stored value"
  })
})

export const MaterialsView = Schema.Struct({ materials: Schema.Array(MaterialUseView) })

const databaseUnavailable = example(
  ServiceUnavailable,
  "Database unavailable",
  new ServiceUnavailable({ detail: "database did not answer in time" })
)

const submissions = HttpApiEndpoint.get("submissions", "/stats/submissions", {
  query: {
    granularity: Schema.optional(Granularity).annotate({ description: "minute, hour (default), day, week or month" }),
    timeZone: Schema.optional(TimeZone).annotate({
      description: "IANA name of the zone whose wall clock sets bucket boundaries; default UTC"
    }),
    from: Schema.optional(DateTime).annotate({
      description: `${dateTimeSpellings}; without an offset, in timeZone. Default: to minus 60 minutes, 48 hours, 30 days, 26 weeks or 12 months`
    }),
    to: Schema.optional(DateTime).annotate({ description: "The same spellings; exclusive. Default: now" })
  },
  success: SubmissionStatsView,
  error: [InvalidRequest, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Submissions over time",
    description:
      "New, duplicate and invalid submissions per bucket: every bucket whose start lies in [the start of the bucket holding `from`, `to`), empty ones as zeros. " +
      "Boundaries follow `timeZone`'s wall clock: a day of a daylight-saving change has 23 or 25 hours; weeks start on Monday (ISO 8601). " +
      `At most ${maxBuckets} buckets, else 400. ` +
      "`created` counts the stored formulas exactly. Duplicates and invalid submissions are counted in memory and written every second, per minute; " +
      "a crash loses at most the last second of them. A bucket that ended more than a minute ago (the flush interval plus 60 s) is closed: its answer never changes, and is served from memory.",
    parameters: {
      granularity: "day",
      timeZone: "Europe/Berlin",
      from: "2026-11-30",
      to: "2026-12-02"
    },
    responses: {
      200: example(SubmissionStatsView, "Two days in Berlin", {
        granularity: "day",
        timeZone: "Europe/Berlin",
        buckets: [
          { start: "2026-11-30T00:00:00+01:00", created: 0, duplicate: 0, invalid: 0 },
          { start: "2026-12-01T00:00:00+01:00", created: 1, duplicate: 1, invalid: 1 }
        ]
      }),
      400: example(
        InvalidRequest,
        "Every problem of the query",
        new InvalidRequest({
          errors: [
            {
              path: "/query/granularity",
              message: 'Expected "minute" | "hour" | "day" | "week" | "month", got "decade"'
            },
            {
              path: "/query/timeZone",
              message: "must be an IANA time-zone name, such as UTC, Europe/Berlin or America/New_York"
            }
          ]
        })
      ),
      503: databaseUnavailable
    }
  })
)

const materials = HttpApiEndpoint.get("materials", "/stats/materials", {
  query: {
    top: Schema.optional(QueryInt({ minimum: 1, maximum: 100 })).annotate({ description: "1–100, default 20" })
  },
  success: MaterialsView,
  error: [InvalidRequest, ServiceUnavailable]
}).annotateMerge(
  documented({
    summary: "Most used materials",
    description:
      "The `top` materials used by the most formulas, by name as stored (names spelled differently count apart), most used first, with the median concentration as an exact decimal (the lower median, `percentile_disc(0.5)`).",
    parameters: { top: "3" },
    responses: {
      200: example(MaterialsView, "Three materials", {
        materials: [
          { name: "Bergamot Oil", formulas: 12, medianConcentration: "15.5" },
          { name: "Lavender Absolute", formulas: 9, medianConcentration: "10" },
          { name: "Sandalwood", formulas: 4, medianConcentration: "5.2" }
        ]
      }),
      400: example(
        InvalidRequest,
        "Top out of range",
        new InvalidRequest({ errors: [{ path: "/query/top", message: "must be between 1 and 100" }] })
      ),
      503: databaseUnavailable
    }
  })
)

const statsTag = OpenApi.annotations({
  title: "Statistics",
  description: "What the intake has been doing: submissions per period in any time zone, and the materials in use."
})

export class StatsApi extends HttpApiGroup.make("stats").add(submissions, materials).annotateMerge(statsTag) {}

const Html = Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/html; charset=utf-8" })).annotate({
  description: "An HTML page"
})

const dashboard = HttpApiEndpoint.get("dashboard", "/dashboard", { success: Html }).annotateMerge(
  documented({
    summary: "Open the dashboard",
    description:
      "One HTML page for people: submissions over time (any granularity, in the browser's time zone), the queue's sizes every 2 s, recent formulas with their processing status, and dead letters with a button that redrives them all. It loads nothing from another host.",
    responses: {
      200: example(Html, "The page", '<!doctype html>\n<html lang="en">\n<title>Formula intake</title>\n…')
    }
  })
)

/** The dashboard, as documented; served by DashboardRoute.ts, not HttpApi (a page, not an API answer). */
export class DashboardApi extends HttpApiGroup.make("dashboard", { topLevel: true })
  .add(dashboard)
  .annotateMerge(
    OpenApi.annotations({ title: "Dashboard", description: "The service's state at a glance, in a browser." })
  ) {}
