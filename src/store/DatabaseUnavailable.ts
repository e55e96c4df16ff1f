/**
 * How the store modules turn database trouble into something a caller can
 * act on: a refused or lost connection, or no answer within
 * `operationTimeout`, is `DatabaseUnavailable` (HTTP 503, retry later);
 * an error that means our own SQL is wrong is a defect, never a 503.
 */
import { Duration, Effect, Schema } from "effect"
import type { SqlError } from "effect/sql/SqlError"

/** The database did not answer in time or refused the connection; the caller may retry. */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()(
  "DatabaseUnavailable",
  { message: Schema.String },
  { httpApiStatus: 503 }
) {}

/** Longest a request waits for the database before answering 503. */
export const operationTimeout = Duration.seconds(10)

export const timedOut = new DatabaseUnavailable({ message: "database did not answer in time" })

/** Errors that mean our SQL is wrong, not that the database is away. */
export const isBug = (error: SqlError): boolean =>
  error.reason._tag === "SqlSyntaxError" || error.reason._tag === "ConstraintError"

/** Maps infrastructure failures and slowness to `DatabaseUnavailable`, within a bounded time. */
export const unavailableOnFailure = <A, R>(
  self: Effect.Effect<A, SqlError, R>
): Effect.Effect<A, DatabaseUnavailable, R> =>
  self.pipe(
    Effect.catchTag("SqlError", (error) =>
      isBug(error)
        ? Effect.die(error)
        : Effect.fail(new DatabaseUnavailable({ message: `database unavailable: ${error.reason.message}` }))
    ),
    Effect.timeoutOrElse({ duration: operationTimeout, orElse: () => Effect.fail(timedOut) })
  )
