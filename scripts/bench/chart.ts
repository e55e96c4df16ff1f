/**
 * A small hand-made SVG: throughput and p99 latency against concurrency, one
 * line per series, both on log scales. No charting dependency.
 */

export interface Series {
  readonly name: string
  readonly color: string
  readonly dashed?: boolean
  readonly points: ReadonlyArray<{ readonly concurrency: number; readonly rate: number; readonly p99Ms: number }>
}

const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const niceLabel = (value: number) =>
  value >= 1000 ? `${value / 1000}k` : value >= 1 ? String(value) : String(Number(value.toPrecision(2)))

/** Powers of ten (and 2×, 5× when the range is short) spanning [min, max]. */
const logTicks = (min: number, max: number) => {
  const lo = Math.floor(Math.log10(min))
  const hi = Math.ceil(Math.log10(max))
  const steps = hi - lo <= 3 ? [1, 2, 5] : [1]
  const ticks: Array<number> = []
  for (let e = lo; e <= hi; e++) for (const s of steps) ticks.push(s * 10 ** e)
  return { ticks: ticks.filter((t) => t >= 10 ** lo && t <= 10 ** hi), lo: 10 ** lo, hi: 10 ** hi }
}

const panel = (options: {
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
  readonly title: string
  readonly unit: string
  readonly levels: ReadonlyArray<number>
  readonly series: ReadonlyArray<Series>
  readonly value: (point: Series["points"][number]) => number
}) => {
  const values = options.series.flatMap((s) => s.points.map(options.value)).filter((v) => v > 0 && Number.isFinite(v))
  const { ticks, lo, hi } = logTicks(Math.min(...values), Math.max(...values))
  const left = options.x + 56
  const right = options.x + options.width - 12
  const top = options.y + 28
  const bottom = options.y + options.height - 36
  const xOf = (c: number) => {
    const i = options.levels.indexOf(c)
    return options.levels.length === 1 ? (left + right) / 2 : left + ((right - left) * i) / (options.levels.length - 1)
  }
  const yOf = (v: number) =>
    bottom - ((bottom - top) * (Math.log10(v) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo))
  const parts: Array<string> = []
  parts.push(
    `<text x="${(left + right) / 2}" y="${options.y + 16}" text-anchor="middle" font-weight="bold">${escape(options.title)}</text>`
  )
  for (const t of ticks) {
    const y = yOf(t).toFixed(1)
    parts.push(`<line x1="${left}" x2="${right}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`)
    parts.push(`<text x="${left - 6}" y="${y}" dy="4" text-anchor="end" font-size="11">${niceLabel(t)}</text>`)
  }
  for (const c of options.levels) {
    const x = xOf(c).toFixed(1)
    parts.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${bottom}" stroke="#f0f0f0"/>`)
    parts.push(`<text x="${x}" y="${bottom + 16}" text-anchor="middle" font-size="11">${c}</text>`)
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#888"/>`
  )
  parts.push(
    `<text x="${(left + right) / 2}" y="${bottom + 32}" text-anchor="middle" font-size="11">concurrent connections</text>`
  )
  parts.push(
    `<text transform="translate(${options.x + 14} ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="11">${escape(options.unit)} (log scale)</text>`
  )
  for (const s of options.series) {
    const points = s.points.filter((p) => options.value(p) > 0 && Number.isFinite(options.value(p)))
    if (points.length === 0) continue
    const coords = points.map((p) => `${xOf(p.concurrency).toFixed(1)},${yOf(options.value(p)).toFixed(1)}`)
    parts.push(
      `<polyline points="${coords.join(" ")}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ""}/>`
    )
    for (const xy of coords) {
      const [cx, cy] = xy.split(",")
      parts.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${s.color}"/>`)
    }
  }
  return parts.join("\n")
}

export const renderChart = (options: {
  readonly title: string
  readonly levels: ReadonlyArray<number>
  readonly series: ReadonlyArray<Series>
}): string => {
  const panelWidth = 440
  const panelHeight = 300
  const legendRows = Math.ceil(options.series.length / 3)
  const width = panelWidth * 2 + 20
  const height = 30 + panelHeight + 12 + legendRows * 18
  const legend = options.series
    .map((s, i) => {
      const x = 20 + (i % 3) * 300
      const y = 30 + panelHeight + 14 + Math.floor(i / 3) * 18
      return [
        `<line x1="${x}" x2="${x + 26}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ""}/>`,
        `<text x="${x + 32}" y="${y}" dy="4" font-size="12">${escape(s.name)}</text>`
      ].join("\n")
    })
    .join("\n")
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escape(options.title)}</text>`,
    panel({
      x: 0,
      y: 26,
      width: panelWidth,
      height: panelHeight,
      title: "Throughput",
      unit: "responses / s",
      levels: options.levels,
      series: options.series,
      value: (p) => p.rate
    }),
    panel({
      x: panelWidth + 20,
      y: 26,
      width: panelWidth,
      height: panelHeight,
      title: "p99 latency",
      unit: "ms",
      levels: options.levels,
      series: options.series,
      value: (p) => p.p99Ms
    }),
    legend,
    `</svg>`,
    ""
  ].join("\n")
}
