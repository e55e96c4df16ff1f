/**
 * Paging cursors: the last row's position, encoded so clients treat it as
 * opaque. The `Cursor` schema accepts only what `encodeCursor` returns, so a
 * forged cursor is a problem of the query, listed with the others.
 */
import { Schema } from "effect"

export const encodeCursor = (seq: string): string => Buffer.from(`s${seq}`).toString("base64url")

/** The position a cursor holds, or `null` for a string this API never returned. */
export const decodeCursor = (cursor: string): string | null => {
  const text = Buffer.from(cursor, "base64url").toString()
  return /^s[1-9][0-9]{0,17}$/.test(text) ? text.slice(1) : null
}

export const Cursor = Schema.String.check(
  Schema.makeFilter((cursor: string) => decodeCursor(cursor) !== null, {
    message: "is not a cursor this API returned"
  })
)
