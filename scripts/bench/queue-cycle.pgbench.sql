-- pgbench script for scripts/bench/pg-queue.ts (`npm run bench:queue`): one
-- publish → receive → ack cycle per transaction, with the postgres queue
-- backend's own statements (src/queue/PgQueueSql.ts `publish`, `announce` and `claim`,
-- src/store/FormulaSql.ts `settleByReceipt` through `changeWithEvent`), as
-- PgMessageQueue sends them for publish(message), receive({ max: 1 }) and
-- ack(receipt) without a result.
--
--   pgbench -n -M prepared -j 1 -c 16 -T 5 -D visibility_ms=3600000 -D receipt=00000000-0000-0000-0000-000000000000 -f scripts/bench/queue-cycle.pgbench.sql postgres://…/bench_queue_<pid>
--
-- Differences, none of which changes the work PostgreSQL does: the backend
-- binds its clock ("now") and the deadline as timestamptz parameters (here
-- now() and now() + :visibility_ms), the message id and body (here
-- gen_random_uuid() and a literal), and the event's id and body texts (here
-- literals: they are read only when the formula's client has a webhook
-- endpoint, and these messages have no formula). The claim keeps its receipt
-- with \aset; a claim that finds nothing (another client's claim took the row
-- it could see) leaves the previous receipt, whose ack then changes nothing —
-- the benchmark counts settled rows, not transactions.
\set max 1
\set max_deliveries 5
WITH added AS (
  INSERT INTO outbox (message_id, body) VALUES (gen_random_uuid(), '{"type":"FormulaSubmitted"}'::jsonb)
  ON CONFLICT DO NOTHING
  RETURNING message_id
)
SELECT count(*)::int AS added FROM added;
-- The announcement, a statement of its own after the publish committed (PgQueueSql.ts `announce`). The
-- backend coalesces concurrent ones (one in flight per instance); a lone publisher's each get one, as here.
SELECT set_config('synchronous_commit', 'off', true), pg_notify('formula_queue_' || md5(coalesce(current_schema(), '')), '1');
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
 ORDER BY greatest(due.visible_at, due.created_at), due.created_at \aset
WITH changed AS (
  UPDATE outbox o SET receipt = NULL,
         delivered_at = coalesce(o.delivered_at, now()),
         result = CASE WHEN o.delivered_at IS NULL THEN NULL::jsonb ELSE o.result END
    FROM (SELECT message_id, delivered_at IS NOT NULL AS settled FROM outbox WHERE receipt = :receipt) old
   WHERE o.message_id = old.message_id AND o.receipt = :receipt
     AND (old.settled OR (o.visible_at > now() AND o.purged_at IS NULL AND o.dead_lettered_at IS NULL))
  RETURNING CASE WHEN old.settled THEN NULL ELSE o.formula_id END AS formula_id, o.message_id
), endpoints AS (
  SELECT e.id, f.client_id, f.id AS formula_id
    FROM changed c
    JOIN formulas f ON f.id = c.formula_id
    JOIN webhook_endpoints e ON e.client_id = f.client_id
   WHERE e.enabled AND 'formula.processed'::text = ANY (e.events)
     FOR KEY SHARE OF e
), event AS (
  INSERT INTO webhook_events (id, client_id, type, body, created_at)
  SELECT 'evt_bench'::text, client_id, 'formula.processed'::text,
         '{"type":"formula.processed","data":{"formulaId":'::text || to_json(formula_id::text)::text || '}}'::text,
         now()
    FROM endpoints LIMIT 1
  RETURNING id
), deliveries AS (
  INSERT INTO webhook_deliveries
         (id, event_id, endpoint_id, status, attempt_count, next_attempt_at, created_at, updated_at)
  SELECT gen_random_uuid(), event.id, endpoints.id, 'pending', 0, now(), now(), now()
    FROM event CROSS JOIN endpoints
  RETURNING id
)
SELECT (SELECT count(*) FROM changed)::int AS changed, (SELECT count(*) FROM deliveries)::int AS deliveries;
