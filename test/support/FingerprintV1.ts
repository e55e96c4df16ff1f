/**
 * Version 1 of the fingerprint, frozen as it was (src/domain/Fingerprint.ts before version 2): what the
 * formulas stored before the re-fingerprinting migration carry. Tests use it to write such a database and
 * to check that version 2 only splits version 1's classes of names.
 */
import { hash } from "node:crypto"
import type { FingerprintInput } from "../../src/domain/Fingerprint.ts"

const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu
const WHITESPACE = /\s+/gu
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/
const SPACES = / {2,}/g

const normalizeOnce = (name: string): string =>
  name
    .replace(IGNORABLE, "")
    .normalize("NFKC")
    .toUpperCase()
    .toLowerCase()
    .normalize("NFKC")
    .replace(IGNORABLE, "")
    .replace(WHITESPACE, " ")
    .trim()

const normalizeUnicodeV1 = (name: string): string => {
  let current = normalizeOnce(name)
  for (let round = 0; round < 4; round++) {
    const next = normalizeOnce(current)
    if (next === current) break
    current = next
  }
  return current
}

/** Version 1's name key. */
export const normalizeMaterialNameV1 = (name: string): string =>
  PRINTABLE_ASCII.test(name) ? name.toLowerCase().replace(SPACES, " ").trim() : normalizeUnicodeV1(name)

const byKey = (a: readonly [string, string], b: readonly [string, string]): number =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0

/** Version 1's fingerprint. */
export const fingerprintV1 = (formula: FingerprintInput): string => {
  const pairs = formula.materials.map((material): readonly [string, string] => [
    normalizeMaterialNameV1(material.name),
    material.concentration
  ])
  return hash("sha256", "formula-fingerprint/v1\n" + JSON.stringify(pairs.sort(byKey)), "hex")
}
