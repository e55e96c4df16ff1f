-- pgbench script for scripts/bench/pg-queue.ts (`npm run bench:queue`): the
-- postgres queue backend's claim alone, one per transaction, as
-- PgMessageQueue.receive({ max: 1 }) sends it (src/queue/PgQueueSql.ts,
-- `claim`; max and maxDeliveries bound as the backend binds them). The backend
-- binds its clock ("now") and the visibility deadline as
-- timestamptz parameters; here they are now() and now() + :visibility_ms.
--
--   pgbench -n -M prepared -j 1 -c 16 -T 5 -D visibility_ms=3600000 -f scripts/bench/queue-claim.pgbench.sql postgres://…/bench_queue_<pid>
\set max 1
\set max_deliveries 5
WITH due AS (
  SELECT message_id, visible_at, created_at, attempts >= :max_deliveries AS exhausted,
         receipt IS NOT NULL AS expired
    FROM outbox
   WHERE visible_at <= now() AND delivered_at IS NULL AND purged_at IS NULL AND dead_lettered_at IS NULL
   ORDER BY greatest(visible_at, created_at), created_at
   LIMIT :max
     FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE outbox o SET receipt = gen_random_uuid(), visible_at = now() + :visibility_ms * interval '1 millisecond', attempts = o.attempts + 1
    FROM due
   WHERE o.message_id = due.message_id AND NOT due.exhausted
  RETURNING o.message_id, o.receipt, o.attempts, o.body
)
SELECT due.message_id::text AS message_id, c.receipt::text AS receipt, c.attempts, c.body, due.exhausted,
       due.expired
  FROM due LEFT JOIN claimed c ON c.message_id = due.message_id
 ORDER BY greatest(due.visible_at, due.created_at), due.created_at;
