/**
 * The database queue's wake-up channel (QUEUE_BACKEND=postgres): when
 * messages become ready — a submission committed, a publish, a nack without
 * delay, a release, a redrive — the instance that made them ready NOTIFYs
 * it, to every instance LISTENing (queue/PgMessageQueue.ts).
 *
 * The notification is a statement of its own, sent after the one that made
 * the rows ready committed (one in flight per instance, coalescing the rest),
 * never part of that transaction: PostgreSQL serializes the commits of
 * notifying transactions across the whole server (a lock held through the
 * commit's WAL flush), which capped submissions at ~300–470/s whatever the
 * concurrency (BENCHMARKS.md, "What limits the PostgreSQL backend").
 *
 * One channel per schema (tests run many schemas on one database; so may
 * deployments): its name is computed by the database itself from
 * `current_schema()`, hashed so that any schema name fits the 63-byte limit.
 * The payload is how many messages became ready.
 */

/** The channel's name as an SQL expression (the same text wherever it is sent or listened to). */
export const readyChannelExpression = "'formula_queue_' || md5(coalesce(current_schema(), ''))"
