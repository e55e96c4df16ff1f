/** The running counts of an import and the summary printed at its end. */
import type { LineReport, Outcome } from "./ImportOutcome.ts"
import { table } from "./Output.ts"

/** Line numbers kept per outcome for the summary; the report file has all of them. */
const shownLines = 20

export class Tally {
  readonly counts: Record<Outcome, number> = { created: 0, duplicate: 0, invalid: 0, failed: 0 }
  replayed = 0
  readonly lines: Record<"invalid" | "failed", Array<number>> = { invalid: [], failed: [] }

  get done() {
    return this.counts.created + this.counts.duplicate + this.counts.invalid + this.counts.failed
  }

  add(report: LineReport) {
    this.counts[report.outcome]++
    if (report.replayed) this.replayed++
    if (report.outcome === "invalid" || report.outcome === "failed") {
      const lines = this.lines[report.outcome]
      if (lines.length < shownLines) lines.push(report.line)
    }
  }

  /** Lines in the order they were answered; sorted for the reader. */
  private linesOf(outcome: "invalid" | "failed") {
    const lines = [...this.lines[outcome]].sort((a, b) => a - b)
    const more = this.counts[outcome] - lines.length
    return lines.length === 0 ? "" : `lines ${lines.join(", ")}${more > 0 ? `, … ${more} more in the report` : ""}`
  }

  summary(options: { readonly interrupted: boolean; readonly report: string; readonly seconds: number }): string {
    const head = options.interrupted
      ? `import interrupted after ${this.done} lines: run the same command again to finish (nothing is sent twice)`
      : `import finished: ${this.done} lines in ${options.seconds.toFixed(1)} s`
    const rows = [
      ["created", String(this.counts.created), ""],
      ["duplicate", String(this.counts.duplicate), ""],
      ["invalid", String(this.counts.invalid), this.linesOf("invalid")],
      ["failed", String(this.counts.failed), this.linesOf("failed")]
    ]
    const replayed =
      this.replayed === 0
        ? []
        : [`${this.replayed} answered from an earlier run or an identical earlier line (Idempotent-Replayed)`]
    return [head, table(["OUTCOME", "LINES", ""], rows, 200), ...replayed, `report: ${options.report}`].join("\n")
  }

  toJson(options: { readonly interrupted: boolean; readonly report: string }) {
    return { ...this.counts, replayed: this.replayed, interrupted: options.interrupted, report: options.report }
  }
}
