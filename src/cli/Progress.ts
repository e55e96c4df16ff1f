/**
 * Import progress on stderr: on a terminal a bar redrawn in place
 * (done/total, percent, rate, ETA); otherwise a plain line every few seconds,
 * which reads well in a CI log or a file.
 */

export interface Figures {
  readonly done: number
  /** Lines in the file, once counted. */
  readonly total: number | undefined
  readonly elapsedMs: number
}

const duration = (seconds: number) =>
  !Number.isFinite(seconds)
    ? "?"
    : seconds >= 3600
      ? `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`
      : seconds >= 60
        ? `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`
        : `${Math.ceil(seconds)}s`

const rateOf = (figures: Figures) => (figures.elapsedMs === 0 ? 0 : (figures.done * 1000) / figures.elapsedMs)

/** `[██████░░░░] 6000/10000  60%  2,345 lines/s  ETA 2s` */
export const bar = (figures: Figures, width = 30): string => {
  const rate = rateOf(figures)
  const rateText = `${Math.round(rate).toLocaleString("en-US")} lines/s`
  if (figures.total === undefined) return `${figures.done}/? lines  ${rateText}  ETA ?`
  const fraction = figures.total === 0 ? 1 : Math.min(1, figures.done / figures.total)
  const filled = Math.round(fraction * width)
  const eta = rate === 0 ? Infinity : (figures.total - figures.done) / rate
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}] ${figures.done}/${figures.total}  ${Math.floor(
    fraction * 100
  )}%  ${rateText}  ETA ${duration(eta)}`
}

/** `progress: 6000/10000 lines (60%), 2345 lines/s, ETA 2s` */
export const plainLine = (figures: Figures): string => {
  const rate = rateOf(figures)
  const total = figures.total === undefined ? "?" : String(figures.total)
  const percent = figures.total ? ` (${Math.floor((figures.done / figures.total) * 100)}%)` : ""
  const eta = figures.total === undefined || rate === 0 ? "?" : duration((figures.total - figures.done) / rate)
  return `progress: ${figures.done}/${total} lines${percent}, ${Math.round(rate)} lines/s, ETA ${eta}`
}
