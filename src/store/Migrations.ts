/**
 * Schema changes, in order. Each runs once, inside the migrator's transaction.
 *
 * - `formulas.fingerprint` is UNIQUE: the database, not the application, decides
 *   what a duplicate is (the in-memory cache is only a shortcut in front of it).
 * - `seq` orders formulas for pagination; `id` is what clients see.
 * - `outbox` holds each formula's `FormulaSubmitted` message, written in the
 *   same transaction as the formula: the message exists iff the formula does.
 * - A new `FINGERPRINT_VERSION` comes with a migration that re-fingerprints the
 *   stored formulas in TypeScript (Refingerprint.ts, which says how collisions
 *   are handled): 0005 for version 2 (full Unicode case folding).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as Migrator from "effect/sql/Migrator"
import { refingerprintAll } from "./Refingerprint.ts"

/** Every migration by `<id>_<name>` (tests run a prefix of them to build an older database). */
export const migrationRecord = {
  "0001_create_formulas": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE formulas (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id uuid NOT NULL UNIQUE,
        fingerprint text NOT NULL UNIQUE,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`
    yield* sql`
      CREATE TABLE formula_materials (
        formula_id uuid NOT NULL REFERENCES formulas (id) ON DELETE CASCADE,
        position integer NOT NULL,
        name text NOT NULL,
        -- Unconstrained numeric keeps the exact decimal as written (already normalized).
        concentration numeric NOT NULL
          CHECK (concentration > 0 AND concentration <= 100 AND scale(concentration) <= 6),
        PRIMARY KEY (formula_id, position)
      )`
  }),
  "0002_create_outbox": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE outbox (
        message_id uuid PRIMARY KEY,
        formula_id uuid NOT NULL UNIQUE REFERENCES formulas (id) ON DELETE CASCADE,
        body jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz
      )`
    // Start-up recovery scans only what is still undelivered.
    yield* sql`CREATE INDEX outbox_undelivered ON outbox (created_at) WHERE delivered_at IS NULL`
  }),
  "0003_outbox_purged": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // A dead letter an operator purged is settled too: it must not come back at the next start.
    yield* sql`ALTER TABLE outbox ADD COLUMN purged_at timestamptz`
    yield* sql`DROP INDEX outbox_undelivered`
    yield* sql`CREATE INDEX outbox_undelivered ON outbox (created_at) WHERE delivered_at IS NULL AND purged_at IS NULL`
  }),
  "0004_create_idempotency_keys": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // One row per (client scope, Idempotency-Key): an in-flight claim (status NULL) or a finished
    // response. `scope` holds the SHA-256 hex of the client's X-Client-Id (see IdempotencySql.ts);
    // `claim_token` fences a claim so a holder whose lease was taken over cannot touch its successor's
    // row; `response` is `json`, not `jsonb`, so the replayed body is the stored text, key order included.
    // Timestamps come from the application's Clock, not now(): lease and TTL follow one testable clock.
    yield* sql`
      CREATE TABLE idempotency_keys (
        scope text NOT NULL,
        key text NOT NULL,
        request_hash text NOT NULL,
        claim_token uuid NOT NULL,
        status integer,
        response json,
        claimed_at timestamptz NOT NULL,
        completed_at timestamptz,
        PRIMARY KEY (scope, key),
        CHECK ((status IS NULL) = (response IS NULL) AND (status IS NULL) = (completed_at IS NULL))
      )`
    // The purge deletes by age (claimed_at < cutoff), oldest first.
    yield* sql`CREATE INDEX idempotency_keys_claimed_at ON idempotency_keys (claimed_at)`
  }),
  // Fingerprint version 2: Unicode full case folding (C + F) instead of a round trip through upper case.
  // It only splits version 1's classes of names, so no two stored formulas can meet; Refingerprint.ts
  // would keep both if they did. Always re-fingerprints to the current version.
  "0005_fingerprint_v2": Effect.asVoid(refingerprintAll())
} satisfies Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>

export const migrations = Migrator.fromRecord(migrationRecord)

/** Runs every pending migration; safe to call from several processes at once (the migrator locks its table). */
export const runMigrations = Migrator.make({})({ loader: migrations })
