-- pgbench script for scripts/bench.ts: one new formula submission per
-- transaction, as the one statement FormulaStore.insert sends for a batch of
-- one new make-up (FormulaSql.insertNewFormulas: formula, materials and outbox
-- row in data-modifying CTEs, committed together), against the schema of
-- src/store/Migrations.ts. The service binds one array per column; here each
-- array is built from pgbench variables, one element long.
--
--   pgbench -n -M prepared -j 1 -c 16 -T 6 -f scripts/bench/submission.pgbench.sql postgres://…/bench_<pid>
--
-- Run with -M prepared: @effect/sql-pg prepares named statements. Ids and
-- fingerprints are derived server-side from :client_id and a random 50-bit
-- number (pgbench has no string variables): md5 gives a uuid, sha256 a
-- 64-hex-digit fingerprint, as random as the real SHA-256 fingerprints. (The
-- service's uuidv7 ids are time-ordered; these are not — the tables stay
-- small enough during a run for that not to matter.)
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
)
SELECT id::text AS id FROM inserted;
