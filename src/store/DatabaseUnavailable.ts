/**
 * How the store modules turn database trouble into something a caller can
 * act on. Three kinds, told apart by the error's class and SQLSTATE, never by
 * its text:
 *
 * - **connection failures** — the client's own (refused, reset, closed, timed
 *   out connecting), SQLSTATE class 08, and the server going away
 *   (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now):
 *   a statement sent may or may not have taken effect. Only these are an
 *   *unknown outcome*, which a write resolves by asking again
 *   (FormulaStore.insert). Then `DatabaseUnavailable` (HTTP 503).
 * - **our SQL is wrong** — syntax, permissions, a constraint the statement
 *   should have respected (a unique violation included: every write here is
 *   `ON CONFLICT DO NOTHING`, so 23505 means that reasoning broke), a data
 *   exception (class 22): a defect, never retried, never a 503.
 * - **anything else the server answered** — a deadlock (40P01), a
 *   serialization failure (40001), a lock or statement timeout, too many
 *   connections: the server says the statement did not happen. Not retried
 *   (a retry would hide whatever produced it); `DatabaseUnavailable`, the
 *   SQLSTATE in its message.
 *
 * No answer within `operationTimeout` is `DatabaseUnavailable` too.
 */
import { Duration, Effect, Predicate, Schema } from "effect"
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

/** The SQLSTATE the server answered with, if it answered. */
export const sqlState = (error: SqlError): string | undefined => {
  const cause = error.reason.cause
  return Predicate.hasProperty(cause, "code") && typeof cause.code === "string" && /^[0-9A-Z]{5}$/.test(cause.code)
    ? cause.code
    : undefined
}

const serverGone = new Set(["57P01", "57P02", "57P03"])

/**
 * The connection failed, not the statement: whatever was sent may or may not
 * have taken effect. The only failure a write may resolve by running again.
 */
export const isConnectionFailure = (error: SqlError): boolean => {
  if (error.reason._tag === "ConnectionError") return true
  const code = sqlState(error)
  return code !== undefined && (code.startsWith("08") || serverGone.has(code))
}

/** Errors that mean our SQL is wrong, not that the database is away. */
export const isBug = (error: SqlError): boolean => {
  switch (error.reason._tag) {
    case "SqlSyntaxError":
    case "AuthorizationError":
    case "ConstraintError":
    case "UniqueViolation":
      return true
    default:
      return sqlState(error)?.startsWith("22") ?? false
  }
}

/** `DatabaseUnavailable` for a connection failure or a refusal the server answered; a defect for a bug. */
export const classify = (error: SqlError): Effect.Effect<never, DatabaseUnavailable> => {
  if (isBug(error)) return Effect.die(error)
  const code = isConnectionFailure(error) ? undefined : sqlState(error)
  const cause = error.reason.cause
  const detail =
    Predicate.hasProperty(cause, "message") && typeof cause.message === "string" && cause.message !== ""
      ? cause.message
      : error.message
  return Effect.fail(
    new DatabaseUnavailable({
      message: `database unavailable: ${detail}${code === undefined ? "" : ` (SQLSTATE ${code}, not retried)`}`
    })
  )
}

/** Maps infrastructure failures and slowness to `DatabaseUnavailable`, within a bounded time. */
export const unavailableOnFailure = <A, R>(
  self: Effect.Effect<A, SqlError, R>
): Effect.Effect<A, DatabaseUnavailable, R> =>
  self.pipe(
    Effect.catchTag("SqlError", classify),
    Effect.timeoutOrElse({ duration: operationTimeout, orElse: () => Effect.fail(timedOut) })
  )
