/**
 * JSON checked on the client before it is sent, so a typo is reported with
 * its line and column in the user's file rather than as the server's 400.
 * The text itself is what is sent (not a re-serialisation): the service
 * judges exactly the bytes the user wrote.
 */

export type Checked = { readonly ok: true } | { readonly ok: false; readonly message: string }

const lineAndColumn = (text: string, position: number) => {
  let line = 1
  let start = 0
  for (let index = text.indexOf("\n"); index !== -1 && index < position; index = text.indexOf("\n", index + 1)) {
    line++
    start = index + 1
  }
  return { line, column: position - start + 1 }
}

/** Whether `text` is JSON; if not, where and why, e.g. "line 3, column 2: expected double-quoted property name". */
export const checkJson = (text: string): Checked => {
  try {
    JSON.parse(text)
    return { ok: true }
  } catch (error) {
    const raw = (error as Error).message
    const reason = raw.replace(/ in JSON at position \d+.*$/, "").replace(/^./, (first) => first.toLowerCase())
    const position = /at position (\d+)/.exec(raw)
    const where = position === null ? lineAndColumn(text, text.length) : lineAndColumn(text, Number(position[1]))
    return { ok: false, message: `line ${where.line}, column ${where.column}: ${reason}` }
  }
}
