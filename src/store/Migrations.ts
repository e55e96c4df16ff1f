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
  "0005_fingerprint_v2": Effect.asVoid(refingerprintAll()),
  // Closing the loop: what came of a message. `delivered_at` (already there) is when it was processed;
  // `result` is the first acknowledging consumer's result (JSON, or NULL when it gave none); `attempts`
  // is the number of deliveries when it was settled or dead-lettered; a dead letter keeps its time and
  // its last error here, so it stays one across restarts until it is redriven (cleared) or purged.
  "0006_message_results": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE outbox ADD COLUMN result jsonb`
    yield* sql`ALTER TABLE outbox ADD COLUMN attempts integer NOT NULL DEFAULT 0`
    yield* sql`ALTER TABLE outbox ADD COLUMN dead_lettered_at timestamptz`
    yield* sql`ALTER TABLE outbox ADD COLUMN last_error text`
  }),
  // Webhooks. A formula remembers the client that created it (X-Client-Id; NULL: none, so no webhooks).
  // An event is written once (`body` is the exact JSON text sent on every attempt, so every retry carries
  // the same bytes and the same `webhook-id`), with one delivery per subscribed endpoint, in the same
  // transaction as the change that causes it. Deliveries are claimed by the dispatcher with
  // FOR UPDATE SKIP LOCKED and a lease (`lease_token` fences a holder whose lease expired); each attempt
  // is a row of `webhook_attempts`. Deleting an endpoint deletes its deliveries (nothing is sent after).
  "0007_webhooks": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE formulas ADD COLUMN client_id text`
    yield* sql`
      CREATE TABLE webhook_endpoints (
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id uuid PRIMARY KEY,
        client_id text NOT NULL,
        url text NOT NULL,
        events text[] NOT NULL,
        description text,
        secret text NOT NULL,
        previous_secret text,
        previous_secret_expires_at timestamptz,
        enabled boolean NOT NULL DEFAULT true,
        disabled_reason text,
        failing_since timestamptz,
        last_success_at timestamptz,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
      )`
    // Events of a client go to its enabled endpoints: looked up inside the transactions that write events.
    yield* sql`CREATE INDEX webhook_endpoints_client ON webhook_endpoints (client_id, seq)`
    yield* sql`
      CREATE TABLE webhook_events (
        id text PRIMARY KEY,
        client_id text NOT NULL,
        type text NOT NULL,
        body text NOT NULL,
        created_at timestamptz NOT NULL
      )`
    yield* sql`
      CREATE TABLE webhook_deliveries (
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id uuid PRIMARY KEY,
        event_id text NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
        endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
        attempt_count integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz,
        lease_token uuid,
        lease_expires_at timestamptz,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
      )`
    // The dispatcher's claim: due pending deliveries, soonest first.
    yield* sql`CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'`
    // An endpoint's deliveries, newest first (the deliveries list and its cursor).
    yield* sql`CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq DESC)`
    yield* sql`
      CREATE TABLE webhook_attempts (
        delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
        number integer NOT NULL,
        at timestamptz NOT NULL,
        duration_ms integer NOT NULL,
        status integer,
        error text,
        response text,
        PRIMARY KEY (delivery_id, number)
      )`
  }),
  // Statistics (src/stats). Duplicate and invalid submissions are counted in memory and added here per
  // minute (UTC, the minute's first instant) by every instance: a flush adds to the row, so several
  // instances' counts add up. The stats query counts formulas by created_at: an index makes a year's
  // range a scan of the index alone.
  "0008_submission_stats": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE submission_stats (
        minute timestamptz PRIMARY KEY,
        duplicate bigint NOT NULL DEFAULT 0 CHECK (duplicate >= 0),
        invalid bigint NOT NULL DEFAULT 0 CHECK (invalid >= 0)
      )`
    yield* sql`CREATE INDEX formulas_created_at ON formulas (created_at)`
  }),
  // The queue in the database (QUEUE_BACKEND=postgres, src/queue/PgMessageQueue.ts): the outbox row is the
  // message. `receipt` is the current delivery's (NULL when none is in flight); `visible_at` is when the
  // row is next due: '-infinity' (a constant default, so adding the column rewrites nothing) means ready
  // now, a time ahead means in flight (receipt set) or delayed by a nack (receipt NULL). `attempts` (0006)
  // counts deliveries. `outbox_due` holds exactly the unsettled rows, in claim order: by when each fell due,
  // `greatest(visible_at, created_at)` (a new row when it was written, a redelivery at its deadline or the end
  // of its delay), so a redelivery queues behind what was ready before it and ahead of what comes after, as in
  // the in-memory queue, instead of behind every new message (claims used to sort by `visible_at`, where new
  // rows are '-infinity'). Rows in flight sort by their deadline, after every due row, so a claim stops early.
  // `outbox_waiting` holds the rows that ever waited (finite `visible_at`: in flight, delayed, redelivered
  // not yet claimed), by `visible_at`, for the sweeps of expiries and the next deadline, which `outbox_due`'s
  // order cannot serve; new rows stay out of it, so it costs a submission nothing.
  // A message published to the queue directly (not by a submission) has no formula.
  // ack / nack / extend / release find their row by receipt: without `outbox_receipt` each was a scan of the
  // whole outbox, settled rows included (62 publish → receive → ack cycles/s with 300,000 settled rows in the
  // table against 1,271/s with it: pgbench, scripts/bench/queue-cycle.pgbench.sql, BENCHMARKS.md). Only rows
  // in flight have a receipt, so the partial index stays as small as what is in flight.
  "0009_queue_in_database": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE outbox ADD COLUMN receipt uuid`
    yield* sql`ALTER TABLE outbox ADD COLUMN visible_at timestamptz NOT NULL DEFAULT '-infinity'`
    yield* sql`ALTER TABLE outbox ALTER COLUMN formula_id DROP NOT NULL`
    yield* sql`
      CREATE INDEX outbox_due ON outbox ((greatest(visible_at, created_at)), created_at)
       WHERE delivered_at IS NULL AND purged_at IS NULL AND dead_lettered_at IS NULL`
    yield* sql`
      CREATE INDEX outbox_waiting ON outbox (visible_at)
       WHERE visible_at > '-infinity' AND delivered_at IS NULL AND purged_at IS NULL AND dead_lettered_at IS NULL`
    yield* sql`CREATE INDEX outbox_receipt ON outbox (receipt) WHERE receipt IS NOT NULL`
  })
} satisfies Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>

export const migrations = Migrator.fromRecord(migrationRecord)

/** Runs every pending migration; safe to call from several processes at once (the migrator locks its table). */
export const runMigrations = Migrator.make({})({ loader: migrations })
