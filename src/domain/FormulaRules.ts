/**
 * The limits and character rules of a formula, shared by the schema
 * (Formula.ts, the definition) and the hot path's check (FormulaCheck.ts),
 * so the two cannot drift apart.
 */

/** A name (the formula's or a material's), trimmed: at most this many characters (code points). */
export const NAME_MAX_LENGTH = 200
export const MATERIALS_MIN = 1
export const MATERIALS_MAX = 500

/** C0/C1 controls except the whitespace ones (\t \n \v \f \r), which trimming and the fingerprint handle. */
export const CONTROL = /[\u0000-\u0008\u000E-\u001F\u007F-\u009F]/u
