/**
 * Re-fingerprinting: gives every stored formula the fingerprint of the current `FINGERPRINT_VERSION`,
 * computed in TypeScript from its stored materials (SQL cannot NFKC-normalise and case-fold exactly as
 * Fingerprint.ts does). Run by a migration each time the version changes, inside the migrator's
 * transaction: all formulas move, or none.
 *
 *   for each batch of formulas, oldest first (by seq):
 *     read ids and materials → fingerprint → one UPDATE, skipping any row whose new fingerprint is taken
 *
 * Collisions. If the new rules put two stored formulas in one class, only one row may hold the new
 * fingerprint (it is UNIQUE). The oldest keeps the make-up: it gets the new fingerprint, as it would have
 * won had both been submitted under the new rules (rows are visited oldest first; a row that already holds
 * the fingerprint, written by the new version, keeps it). A later one keeps the fingerprint it has; it stays
 * distinct, since fingerprints of different versions hash different canonical-string headers. Nothing is
 * deleted or merged (each formula has its own id, outbox message and webhook history); the later one is
 * still served by id, and new submissions of the make-up are duplicates of the oldest. Each such formula is
 * logged. For version 2 this cannot happen to a database written by version 1 — version 2 only splits
 * version 1's classes (test/domain/Fingerprint.test.ts) — but rows written by another Node's Unicode data,
 * or by hand, must not be able to fail the start-up or lose a formula (test/store/Refingerprint.test.ts).
 *
 * What keeps its fingerprint as written: `FormulaSubmitted` bodies in the outbox and responses stored for
 * Idempotency-Key replays, which repeat what was sent. Processes of the previous version must be stopped
 * before the new one starts: a row they insert after the migration carries an old-version fingerprint.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { parseConcentration } from "../domain/Decimal.ts"
import { fingerprint } from "../domain/Fingerprint.ts"

/** Formulas read per round trip; each brings its materials (at most 500). */
export const BATCH_SIZE = 500

interface StoredFormula {
  readonly seq: string
  readonly id: string
  readonly fingerprint: string
  readonly materials: ReadonlyArray<{ readonly name: string; readonly concentration: string }> | string
}

/** The next `limit` formulas after `afterSeq`, oldest first, with their materials. */
const selectFormulasAfter = (sql: SqlClient.SqlClient, afterSeq: string, limit: number) =>
  sql<StoredFormula>`
    SELECT f.seq::text AS seq, f.id::text AS id, f.fingerprint,
           (SELECT json_agg(json_build_object('name', m.name, 'concentration', m.concentration::text)
                            ORDER BY m.position)
              FROM formula_materials m WHERE m.formula_id = f.id) AS materials
      FROM formulas f
     WHERE f.seq > ${afterSeq}::bigint
     ORDER BY f.seq
     LIMIT ${limit}`

/**
 * Sets each given formula's fingerprint unless another row already holds it; returns the seqs updated.
 * The statement sees the table as it was before it ran, so the caller passes distinct fingerprints.
 */
const updateFingerprints = (
  sql: SqlClient.SqlClient,
  rows: ReadonlyArray<{ readonly seq: string; readonly fingerprint: string }>
) =>
  sql<{ readonly seq: string }>`
    UPDATE formulas f SET fingerprint = v.fingerprint
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS v (seq bigint, fingerprint text)
     WHERE f.seq = v.seq
       AND NOT EXISTS (SELECT 1 FROM formulas other WHERE other.fingerprint = v.fingerprint)
    RETURNING f.seq::text AS seq`

const fingerprintOf = (formula: StoredFormula): string => {
  const materials = typeof formula.materials === "string" ? JSON.parse(formula.materials) : formula.materials
  return fingerprint({
    materials: (materials ?? []).map((m: { readonly name: string; readonly concentration: string }) => {
      const concentration = parseConcentration(m.concentration)
      // The column's CHECK keeps every stored value parseable; a row that is not stops the migration.
      if (concentration._tag === "Failure") throw new Error(`formula ${formula.id}: ${m.concentration}`)
      return { name: m.name, concentration: concentration.success }
    })
  })
}

/** Re-fingerprints every stored formula (see the header); returns how many moved, and the ids that could not. */
export const refingerprintAll = Effect.fn("Refingerprint.all")(function* (batchSize: number = BATCH_SIZE) {
  const sql = yield* SqlClient.SqlClient
  let afterSeq = "0"
  let updated = 0
  const kept: Array<string> = []
  while (true) {
    const formulas = yield* selectFormulasAfter(sql, afterSeq, batchSize)
    if (formulas.length === 0) break
    afterSeq = formulas[formulas.length - 1]!.seq
    // Within a batch the oldest of a class claims its fingerprint here; across batches the UPDATE's
    // NOT EXISTS sees the rows earlier batches moved.
    const claimed = new Set<string>()
    const rows: Array<{ seq: string; fingerprint: string }> = []
    const current = new Set<string>()
    for (const formula of formulas) {
      const print = fingerprintOf(formula)
      if (claimed.has(print)) continue
      claimed.add(print)
      if (print === formula.fingerprint) current.add(formula.seq)
      else rows.push({ seq: formula.seq, fingerprint: print })
    }
    const moved = rows.length === 0 ? new Set() : new Set((yield* updateFingerprints(sql, rows)).map((row) => row.seq))
    updated += moved.size
    for (const formula of formulas) {
      if (!moved.has(formula.seq) && !current.has(formula.seq)) kept.push(formula.id)
    }
  }
  if (kept.length > 0) {
    yield* Effect.logWarning(
      "re-fingerprinting: these formulas keep their fingerprint, their make-up belongs to an earlier formula",
      kept
    )
  }
  return { updated, kept } as const
})
