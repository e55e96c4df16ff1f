/**
 * The fingerprint: the uniqueness key of a formula's material make-up (its own name is not part of it).
 *
 * Canonical string, version 1 (`FINGERPRINT_VERSION`):
 *
 *     formula-fingerprint/v1\n<JSON array of [name key, concentration] pairs>
 *
 * e.g. `formula-fingerprint/v1\n[["bergamot oil","15.5"],["lavender absolute","10"],["sandalwood","5.2"]]`
 *
 * - name key: `normalizeMaterialName` (below);
 * - concentration: the canonical decimal string (`10` = `10.0` = `"10.000"` → `"10"`), as a JSON string so no
 *   float formatting is involved;
 * - pairs sorted by name key, comparing UTF-16 code units (`<`), which is deterministic and locale-free;
 *   concentration breaks ties, which only an invalid formula (duplicate names) can have;
 * - `JSON.stringify` quotes and escapes every name, so no name can forge a separator or another pair.
 *
 * The fingerprint is the lowercase hex SHA-256 of the UTF-8 canonical string. Any change to these rules is a
 * new version: stored fingerprints of the old version stay comparable only among themselves.
 */
import { hash } from "node:crypto"
import type { Concentration } from "./Decimal.ts"

/** Version of the canonical encoding; bump on any change to it or to `normalizeMaterialName`. */
export const FINGERPRINT_VERSION = 1

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
  name
    .replace(IGNORABLE, "")
    .normalize("NFKC")
    // Full case mapping up then down (locale-independent) approximates Unicode full case folding:
    // "ß" = "SS" = "ss", final "ς" = "σ", "ǅ" = "ǆ". Unlike true folding it also equates dotless "ı" with "i".
    .toUpperCase()
    .toLowerCase()
    // Case mapping can produce unnormalised sequences (e.g. a decomposed "i̇"), and NFKC can produce spaces
    // ("¨" → " ̈") and ignorables (halfwidth Hangul filler), so normalise again before the whitespace rules.
    .normalize("NFKC")
    .replace(IGNORABLE, "")
    .replace(WHITESPACE, " ")
    .trim()

/**
 * The key under which two material names are "the same": NFKC, case-folded, invisible characters removed,
 * whitespace trimmed and inner runs collapsed to one space. Idempotent: a key normalises to itself.
 */
export const normalizeMaterialName = (name: string): string =>
  // Printable ASCII, the usual case, has no invisible or compatibility characters, no case mapping beyond
  // A–Z and no whitespace but the space: the full rules reduce to this (a property test holds it to them).
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
