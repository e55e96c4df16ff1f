-- pgbench script for scripts/bench.ts (the postgres queue backend's phase): one
-- new formula submission per transaction, as the submit path sent it with
-- QUEUE_BACKEND=postgres before the queue announced submissions after their
-- commit — submission.pgbench.sql (FormulaSql's insertNewFormulas) plus a
-- `notified` CTE (pg_notify on the schema's channel, read by the final
-- SELECT's always-true condition). Kept as a reference: what a NOTIFY inside
-- every submission costs (PostgreSQL serializes notifying commits).
--
--   pgbench -n -M prepared -j 1 -c 16 -T 6 -f scripts/bench/submission-notify.pgbench.sql postgres://…/bench_pgq_<pid>
--
\set r random(1, 1000000000000000)
WITH input AS (
  SELECT * FROM unnest(
    ARRAY[md5(:client_id::text || ':' || :r::text)::uuid],
    ARRAY[encode(sha256(convert_to(:client_id::text || ':' || :r::text, 'UTF8')), 'hex')],
    ARRAY['Bench'],
    ARRAY[now()],
    ARRAY[md5('m:' || :client_id::text || ':' || :r::text)::uuid],
    ARRAY[jsonb_build_object('type', 'FormulaSubmitted',
                             'formulaId', md5(:client_id::text || ':' || :r::text)::uuid,
                             'fingerprint', encode(sha256(convert_to(:client_id::text || ':' || :r::text, 'UTF8')), 'hex'),
                             'name', 'Bench',
                             'submittedAt', now())]
  ) WITH ORDINALITY AS t (id, fingerprint, name, created_at, message_id, body, ord)
), inserted AS (
  INSERT INTO formulas (id, fingerprint, name, created_at)
  SELECT id, fingerprint, name, created_at FROM input ORDER BY ord
  ON CONFLICT DO NOTHING
  RETURNING id
), materials AS (
  INSERT INTO formula_materials (formula_id, position, name, concentration)
  SELECT m.formula_id, m.position, m.name, m.concentration
    FROM unnest(
      ARRAY[md5(:client_id::text || ':' || :r::text)::uuid, md5(:client_id::text || ':' || :r::text)::uuid, md5(:client_id::text || ':' || :r::text)::uuid],
      ARRAY[0, 1, 2],
      ARRAY['Bergamot Oil', 'Lavender Absolute', 'Sandalwood'],
      ARRAY[15.5, 10, 5.2]::numeric[]
    ) AS m (formula_id, position, name, concentration)
    JOIN inserted ON inserted.id = m.formula_id
), messages AS (
  INSERT INTO outbox (message_id, formula_id, body)
  SELECT input.message_id, input.id, input.body FROM input JOIN inserted ON inserted.id = input.id
), notified AS (
  SELECT pg_notify('formula_queue_' || md5(coalesce(current_schema(), '')), count(*)::text) FROM inserted HAVING count(*) > 0
)
SELECT id::text AS id FROM inserted WHERE (SELECT count(*) FROM notified) >= 0;
