-- pgbench script for scripts/bench.ts: one new formula submission per
-- transaction, the same statements, in the same order and as the same five
-- round trips, that FormulaStore.insert sends for a new make-up
-- (src/store/FormulaSql.ts), against the schema of src/store/Migrations.ts.
--
--   pgbench -n -M prepared -j 1 -c 16 -T 6 -f scripts/bench/submission.pgbench.sql postgres://…/bench_<pid>
--
-- Run with -M prepared: @effect/sql-pg prepares named statements, BEGIN and
-- COMMIT included. Ids and fingerprints are derived server-side from
-- :client_id and a random 50-bit number (pgbench has no string variables):
-- md5 gives a uuid, sha256 a 64-hex-digit fingerprint, as random as the real
-- SHA-256 fingerprints. (The service's uuidv7 ids are time-ordered; these are
-- not — the tables stay small enough during a run for that not to matter.)
\set r random(1, 1000000000000000)
BEGIN;
INSERT INTO formulas (id, fingerprint, name, created_at)
  VALUES (md5(:client_id::text || ':' || :r::text)::uuid,
          encode(sha256(convert_to(:client_id::text || ':' || :r::text, 'UTF8')), 'hex'),
          'Bench', now())
  ON CONFLICT (fingerprint) DO NOTHING
  RETURNING 1;
INSERT INTO formula_materials (formula_id, position, name, concentration)
  VALUES (md5(:client_id::text || ':' || :r::text)::uuid, 0, 'Bergamot Oil', 15.5),
         (md5(:client_id::text || ':' || :r::text)::uuid, 1, 'Lavender Absolute', 10.0),
         (md5(:client_id::text || ':' || :r::text)::uuid, 2, 'Sandalwood', 5.2);
INSERT INTO outbox (message_id, formula_id, body)
  VALUES (md5('m:' || :client_id::text || ':' || :r::text)::uuid,
          md5(:client_id::text || ':' || :r::text)::uuid,
          jsonb_build_object('type', 'FormulaSubmitted',
                             'formulaId', md5(:client_id::text || ':' || :r::text)::uuid,
                             'fingerprint', encode(sha256(convert_to(:client_id::text || ':' || :r::text, 'UTF8')), 'hex'),
                             'name', 'Bench',
                             'submittedAt', now()));
COMMIT;
