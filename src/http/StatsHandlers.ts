import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { parseQueryTime } from "../stats/QueryTimes.ts"
import { SubmissionStats } from "../stats/SubmissionStats.ts"
import { ServedApi } from "./Api.ts"
import { InvalidRequest, ServiceUnavailable } from "./Problems.ts"

const unavailable = (error: { readonly message: string }) => new ServiceUnavailable({ detail: error.message })

/** `GET /stats/submissions` and `GET /stats/materials`. The query's schemas have checked every spelling already. */
export const StatsHandlers = HttpApiBuilder.group(
  ServedApi,
  "stats",
  Effect.fn(function* (handlers) {
    const stats = yield* SubmissionStats
    return handlers
      .handle("submissions", ({ query }) =>
        stats
          .submissions({
            granularity: query.granularity ?? "hour",
            timeZone: query.timeZone ?? "UTC",
            from: query.from === undefined ? undefined : parseQueryTime(query.from),
            to: query.to === undefined ? undefined : parseQueryTime(query.to)
          })
          .pipe(
            Effect.catchTags({
              StatsQueryInvalid: (error) => Effect.fail(new InvalidRequest({ errors: error.errors })),
              DatabaseUnavailable: (error) => Effect.fail(unavailable(error))
            })
          )
      )
      .handle("materials", ({ query }) =>
        stats.materials(query.top ?? 20).pipe(
          Effect.map((materials) => ({ materials })),
          Effect.mapError(unavailable)
        )
      )
  })
)
