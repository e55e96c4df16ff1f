/**
 * The database queue's wake-up channel (QUEUE_BACKEND=postgres): a statement
 * that makes messages ready — a submission's insert, a publish, a nack
 * without delay, a release, a redrive — also NOTIFYs it, inside its own
 * transaction, so PostgreSQL delivers the notification exactly when the rows
 * become visible, to every instance LISTENing (queue/PgMessageQueue.ts).
 *
 * One channel per schema (tests run many schemas on one database; so may
 * deployments): its name is computed by the database itself from
 * `current_schema()`, hashed so that any schema name fits the 63-byte limit.
 * The payload is how many messages became ready.
 */
import type { PgClient } from "@effect/sql-pg"

/** The channel's name as an SQL expression (the same text wherever it is sent or listened to). */
export const readyChannelExpression = "'formula_queue_' || md5(coalesce(current_schema(), ''))"

/**
 * A CTE named `notified` telling the channel how many rows the CTE `from`
 * returned (nothing when none). Being a SELECT, it runs only if the statement
 * reads it: the statement's result must refer to `notified`.
 */
export const notifyReadyCte = (sql: PgClient.PgClient, from: string) =>
  sql`notified AS (
    SELECT pg_notify(${sql.literal(readyChannelExpression)}, count(*)::text) FROM ${sql.literal(from)} HAVING count(*) > 0
  )`
