/**
 * The fingerprint: the uniqueness key of a formula's material make-up (its own name is not part of it).
 *
 * Canonical string, version 2 (`FINGERPRINT_VERSION`):
 *
 *     formula-fingerprint/v2\n<JSON array of [name key, concentration] pairs>
 *
 * e.g. `formula-fingerprint/v2\n[["bergamot oil","15.5"],["lavender absolute","10"],["sandalwood","5.2"]]`
 *
 * - name key: `normalizeMaterialName` (below): Default_Ignorable code points removed, NFKC, Unicode full
 *   case folding (CaseFolding.txt statuses C and F, CaseFolding.ts), NFKC again, whitespace runs collapsed
 *   to one space, trimmed — repeated until nothing changes. NFKC is applied again after folding, as
 *   Unicode's NFKC_Casefold does, because folding can leave a string that is not normalised ("ǰ" folds
 *   to "j" + U+030C, which NFKC composes back to "ǰ"; "ΐ" likewise), and a key must be a fixed point of
 *   its own rules (idempotent) and in one normal form, whatever the input's;
 * - concentration: the canonical decimal string (`10` = `10.0` = `"10.000"` → `"10"`), as a JSON string so no
 *   float formatting is involved;
 * - pairs sorted by name key, comparing UTF-16 code units (`<`), which is deterministic and locale-free;
 *   concentration breaks ties, which only an invalid formula (duplicate names) can have;
 * - `JSON.stringify` quotes and escapes every name, so no name can forge a separator or another pair.
 *
 * The fingerprint is the lowercase hex SHA-256 of the UTF-8 canonical string. Any change to these rules is a
 * new version, with a migration that re-fingerprints the stored formulas (src/store/Refingerprint.ts).
 *
 * Version 1 case-folded with `toUpperCase().toLowerCase()`, which also equated dotless "ı" (U+0131) and
 * "𝚤" with "i", and kept Cherokee in small letters. Version 2 only splits version 1's classes, never joins
 * two (test/domain/Fingerprint.test.ts checks v1(v2 key) = v1 key), so stored formulas cannot collide.
 */
import { hash } from "node:crypto"
import { caseFold } from "./CaseFolding.ts"
import type { Concentration } from "./Decimal.ts"

/** Version of the canonical encoding; bump on any change to it or to `normalizeMaterialName`. */
export const FINGERPRINT_VERSION = 2

const HEADER = `formula-fingerprint/v${FINGERPRINT_VERSION}\n`

/** What the fingerprint reads: the materials only. A decoded `Formula` is one. */
export interface FingerprintInput {
  readonly materials: ReadonlyArray<{ readonly name: string; readonly concentration: Concentration }>
}

// Invisible characters (soft hyphen, zero-width space/joiners, variation selectors, BOM, …): Unicode's
// NFKC_Casefold drops them too, so "Lav\u00ADender" and "Lavender" are the same material.
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu
const WHITESPACE = /\s+/gu
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/
const SPACES = / {2,}/g

const normalizeOnce = (name: string): string =>
  // NFKC, then fold, then NFKC again (see the canonical string above); then the whitespace rules, after
  // NFKC since it can produce spaces ("¨" → " ̈") and ignorables (halfwidth Hangul filler).
  caseFold(name.replace(IGNORABLE, "").normalize("NFKC"))
    .normalize("NFKC")
    .replace(IGNORABLE, "")
    .replace(WHITESPACE, " ")
    .trim()

/**
 * The key under which two material names are "the same": NFKC, case-folded, invisible characters removed,
 * whitespace trimmed and inner runs collapsed to one space. Idempotent: a key normalises to itself.
 */
export const normalizeMaterialName = (name: string): string =>
  // Printable ASCII, the usual case, has no invisible or compatibility characters, no case folding beyond
  // A–Z → a–z and no whitespace but the space: the full rules reduce to this (a property test holds it to them).
  PRINTABLE_ASCII.test(name) ? name.toLowerCase().replace(SPACES, " ").trim() : normalizeUnicode(name)

/** `normalizeMaterialName` by the full Unicode rules, for any text. */
export const normalizeUnicode = (name: string): string => {
  // Removing a character can let its neighbours compose under NFKC; iterate to the (quickly reached) fixed point.
  let current = normalizeOnce(name)
  for (let round = 0; round < 4; round++) {
    const next = normalizeOnce(current)
    if (next === current) break
    current = next
  }
  return current
}

const byKey = (a: readonly [string, string], b: readonly [string, string]): number =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0

/** The versioned canonical string that `fingerprint` hashes (exposed for tests and documentation). */
export const canonicalString = (formula: FingerprintInput): string => {
  const pairs = formula.materials.map((material): readonly [string, string] => [
    normalizeMaterialName(material.name),
    material.concentration
  ])
  return HEADER + JSON.stringify(pairs.sort(byKey))
}

/** SHA-256 (lowercase hex, 64 characters) of the canonical string. */
export const fingerprint = (formula: FingerprintInput): string => hash("sha256", canonicalString(formula), "hex")
