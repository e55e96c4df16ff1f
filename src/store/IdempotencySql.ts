/**
 * One function per SQL statement on `idempotency_keys` (migration 0004). Values are always bound
 * through the `sql` tag. Timestamps are parameters taken from Effect's `Clock` by the caller, never
 * the database's `now()`, so the lease and the TTL follow one clock that tests can move.
 *
 * A row is either a claim (status NULL: some process is executing the request) or a finished
 * response. `claim_token` fences a claim: `complete` and `release` touch the row only while the
 * caller still owns it, so a holder whose claim was taken over after its lease cannot overwrite or
 * delete its successor's row.
 *
 * The client's scope (`X-Client-Id`, any string) is stored as its SHA-256 (`storedScope`): a fixed
 * 64-character key, whatever its length or characters (PostgreSQL text cannot hold NUL, and a
 * B-tree entry is limited to ~2.7 kB), and client ids are not copied into another table.
 */
import { createHash } from "node:crypto"
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"

export interface KeyId {
  /** The client's scope as given (`X-Client-Id`, or "" when absent); stored as `storedScope(scope)`. */
  readonly scope: string
  readonly key: string
}

export interface Claim extends KeyId {
  readonly requestHash: string
  /** Random per claim; proves ownership to `complete` and `release`. */
  readonly claimToken: string
  readonly claimedAt: Date
}

export interface KeyRow {
  readonly requestHash: string
  readonly claimToken: string
  readonly claimedAt: Date
  /** null while the request is in flight. */
  readonly status: number | null
  /** The stored `{ headers, body }`, once finished. */
  readonly response: { readonly headers: Readonly<Record<string, string>>; readonly body: unknown } | null
}

interface KeySelectRow {
  readonly request_hash: string
  readonly claim_token: string
  readonly claimed_at: Date
  readonly status: number | null
  readonly response: unknown
}

/** The column value for a client scope: lowercase hex SHA-256 of its UTF-8 text. */
export const storedScope = (scope: string): string => createHash("sha256").update(scope, "utf8").digest("hex")

const toKeyRow = (row: KeySelectRow): KeyRow => ({
  requestHash: row.request_hash,
  claimToken: row.claim_token,
  claimedAt: row.claimed_at,
  status: row.status,
  response:
    row.response === null
      ? null
      : ((typeof row.response === "string" ? JSON.parse(row.response) : row.response) as KeyRow["response"])
})

export const makeIdempotencySql = (sql: PgClient.PgClient) => {
  /** Inserts an in-flight claim unless the key exists; true when this call claimed it. */
  const claim = (claim: Claim) =>
    Effect.map(
      sql`
        INSERT INTO idempotency_keys (scope, key, request_hash, claim_token, claimed_at)
        VALUES (${storedScope(claim.scope)}, ${claim.key}, ${claim.requestHash}, ${claim.claimToken}, ${claim.claimedAt})
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING 1`,
      (rows) => rows.length > 0
    )

  /**
   * The key's row, read after a conflicting claim: at READ COMMITTED the insert waited for any
   * concurrent claimer to commit, and this statement's fresh snapshot sees its row (unless it was
   * released or purged in between: then undefined, and the caller claims again).
   */
  const read = (id: KeyId) =>
    Effect.map(
      sql<KeySelectRow>`
        SELECT request_hash, claim_token::text AS claim_token, claimed_at, status, response
          FROM idempotency_keys
         WHERE scope = ${storedScope(id.scope)} AND key = ${id.key}`,
      (rows) => (rows.length === 0 ? undefined : toKeyRow(rows[0]!))
    )

  /**
   * Stores the finished response on the caller's own claim; false when the claim is no longer
   * the caller's (taken over after its lease, or purged). `responseJson` is the JSON text of
   * `{ headers, body }`, kept as written (a `json` column, not `jsonb`) so a replay sends the same document.
   */
  const complete = (options: {
    readonly claim: Claim
    readonly status: number
    readonly responseJson: string
    readonly completedAt: Date
  }) =>
    Effect.map(
      sql`
        UPDATE idempotency_keys
           SET status = ${options.status}, response = ${options.responseJson}::json, completed_at = ${options.completedAt}
         WHERE scope = ${storedScope(options.claim.scope)} AND key = ${options.claim.key}
           AND claim_token = ${options.claim.claimToken} AND status IS NULL
        RETURNING 1`,
      (rows) => rows.length > 0
    )

  /** Deletes the caller's own in-flight claim (the request failed: nothing to replay). */
  const release = (claim: Claim) =>
    Effect.map(
      sql`
        DELETE FROM idempotency_keys
         WHERE scope = ${storedScope(claim.scope)} AND key = ${claim.key}
           AND claim_token = ${claim.claimToken} AND status IS NULL
        RETURNING 1`,
      (rows) => rows.length > 0
    )

  /**
   * Gives an in-flight claim whose lease ran out (claimed at or before `staleBefore`) to `claim`,
   * for the same request only. One statement, so of several processes taking over at once exactly
   * one wins: the others re-check the row after the winner commits and find a fresh `claimed_at`.
   */
  const takeOverStale = (options: { readonly claim: Claim; readonly staleBefore: Date }) =>
    Effect.map(
      sql`
        UPDATE idempotency_keys
           SET claim_token = ${options.claim.claimToken}, claimed_at = ${options.claim.claimedAt}
         WHERE scope = ${storedScope(options.claim.scope)} AND key = ${options.claim.key}
           AND request_hash = ${options.claim.requestHash}
           AND status IS NULL AND claimed_at <= ${options.staleBefore}
        RETURNING 1`,
      (rows) => rows.length > 0
    )

  /**
   * Deletes up to `limit` keys claimed before `claimedBefore` (finished ones and abandoned claims);
   * returns how many. Batches keep each statement short; SKIP LOCKED lets processes purge side by side.
   */
  const purgeClaimedBefore = (options: { readonly claimedBefore: Date; readonly limit: number }) =>
    Effect.map(
      sql`
        DELETE FROM idempotency_keys
         WHERE (scope, key) IN (
           SELECT scope, key FROM idempotency_keys
            WHERE claimed_at < ${options.claimedBefore}
            ORDER BY claimed_at
            LIMIT ${options.limit}
            FOR UPDATE SKIP LOCKED)
        RETURNING 1`,
      (rows) => rows.length
    )

  return { claim, read, complete, release, takeOverStale, purgeClaimedBefore }
}
