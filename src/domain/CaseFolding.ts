/**
 * Unicode full case folding: CaseFolding.txt's mappings with status C and F, nothing else. Locale-free
 * and context-free, unlike `toLowerCase`/`toUpperCase` (final sigma, and a round trip through upper case
 * that equates dotless "ı" with "i"). Some consequences, all per the Unicode data:
 *
 * - "ß", "ẞ" → "ss"; "ς" → "σ"; "İ" (U+0130) → "i̇" (i + U+0307); Kelvin "K" → "k";
 * - dotless "ı" (U+0131) has no C or F mapping (only Turkic T mappings touch the i's): it stays "ı";
 * - Cherokee folds to its capital letters ("ꭰ" U+AB70 → "Ꭰ" U+13A0), the one script that folds upward.
 *
 * The table is generated (scripts/generate-case-folding.ts) from the Unicode version of the pinned Node's
 * ICU, which does the NFKC half of the fingerprint's rules.
 */
import { COMMON, FULL, UNICODE_VERSION } from "./CaseFoldingTable.ts"

export { UNICODE_VERSION as CASE_FOLDING_UNICODE_VERSION }

// Code point → folding, split so the loop below looks up BMP code units without decoding code points.
const BMP = new Map<number, string>()
const ASTRAL = new Map<number, string>()

const fromHex = (fields: ReadonlyArray<string>): Array<number> => fields.map((field) => parseInt(field, 16))
const add = (from: number, to: string) => (from < 0x10000 ? BMP : ASTRAL).set(from, to)

for (const line of COMMON.trim().split("\n")) {
  const [first, last, step, target] = fromHex(line.split(" "))
  for (let from = first!; from <= last!; from += step!) add(from, String.fromCodePoint(target! + from - first!))
}
for (const line of FULL.trim().split("\n")) {
  const [from, ...to] = fromHex(line.split(" "))
  add(from!, String.fromCodePoint(...to))
}

/** Full case folding (C + F) of `text`. Not normalised: folding can leave decomposed sequences ("ǰ" → "ǰ"). */
export const caseFold = (text: string): string => {
  // A loop over code units, copying unchanged stretches whole: 2–3× faster than a `replace` over a
  // character class of every folding code point (most characters of a name fold to themselves).
  let folded = ""
  let copied = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    let to: string | undefined
    let width = 1
    if (unit >= 0x41 && unit <= 0x5a) {
      to = String.fromCharCode(unit + 32)
    } else if (unit < 0xb5) {
      continue // the first non-ASCII character that folds is U+00B5
    } else if (unit >= 0xd800 && unit <= 0xdbff) {
      const codePoint = text.codePointAt(i)!
      if (codePoint > 0xffff) width = 2 // else a lone surrogate, which folds to itself
      to = ASTRAL.get(codePoint)
    } else {
      to = BMP.get(unit)
    }
    if (to !== undefined) {
      folded += text.slice(copied, i) + to
      copied = i + width
    }
    i += width - 1
  }
  return copied === 0 ? text : folded + text.slice(copied)
}

/** Every mapping, for tests: code point → its folding. */
export const caseFoldings = (): ReadonlyMap<number, string> => new Map([...BMP, ...ASTRAL])
