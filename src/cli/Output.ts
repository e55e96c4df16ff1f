/** Printing for people (aligned tables, sentences) and for scripts (`--json`). */
import { Console } from "effect"

export const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

/** Columns padded to their widest cell; long cells are cut with an ellipsis so a row fits a terminal. */
export const table = (
  headers: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  maxWidth = 48
): string => {
  const cut = (cell: string) => (cell.length > maxWidth ? cell.slice(0, maxWidth - 1) + "…" : cell)
  const cells = [headers, ...rows].map((row) => row.map(cut))
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)))
  return cells
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}
