/**
 * A JSON-lines logger for Effect's logging: lines of the same shape as
 * `Logger.consoleJson` (`message`, `level`, `timestamp`, `annotations`,
 * `spans`, `fiberId`, and `cause` when there is one), made cheaply enough
 * for a line per request.
 *
 * `Logger.consoleJson` cost about as much CPU per line as a whole duplicate
 * submission does (npm run bench, the access log section; ~20 µs a line in a
 * loop): a generic, cycle-safe formatter, and `console.log`, which formats
 * its argument again and makes one synchronous write per line. Here a line is
 * one `JSON.stringify` of a plain object (the generic formatter only for
 * values that cannot be stringified), and lines are written in batches: they
 * collect in memory and leave in one write per turn of the event loop, or
 * sooner past 64 KiB, and at exit. A process killed outright (SIGKILL) loses
 * the lines of its last turn.
 */
import { Cause, Formatter, Layer, Logger, References } from "effect"

let pending: Array<string> = []
let pendingBytes = 0
let scheduled = false

const flush = () => {
  scheduled = false
  if (pending.length === 0) return
  const text = pending.join("")
  pending = []
  pendingBytes = 0
  process.stdout.write(text)
}

let exitHook = false

const write = (line: string) => {
  pending.push(line)
  pendingBytes += line.length
  if (pendingBytes > 65_536) return flush()
  if (!scheduled) {
    scheduled = true
    setImmediate(flush)
  }
  if (!exitHook) {
    exitHook = true
    process.once("exit", flush)
  }
}

const structured = (value: unknown): unknown =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean" || value === null
    ? value
    : Formatter.format(value)

// Many lines share a millisecond under load: format its timestamp once.
let isoMillis = NaN
let iso = ""
const timestamp = (date: Date) => {
  const millis = date.getTime()
  if (millis !== isoMillis) {
    isoMillis = millis
    iso = date.toISOString()
  }
  return iso
}

const levels: Record<string, string> = {}
const levelJson = (level: string) => (levels[level] ??= JSON.stringify(level.toUpperCase()))

export const logger: Logger.Logger<unknown, void> = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const messages = Array.isArray(message) ? message : [message]
  const annotations = fiber.getRef(References.CurrentLogAnnotations)
  const spans = fiber.getRef(References.CurrentLogSpans)
  const spanTimes: Record<string, number> = {}
  if (spans.length > 0) {
    const now = date.getTime()
    for (const [label, start] of spans) spanTimes[label] = now - start
  }
  let line: string
  try {
    // The members in Logger.formatStructured's order; `cause` only when there is one, as JSON.stringify leaves it.
    line =
      `{"message":${JSON.stringify(messages.length === 1 ? messages[0] : messages)},"level":${levelJson(logLevel)},` +
      `"timestamp":"${timestamp(date)}",` +
      (cause.reasons.length > 0 ? `"cause":${JSON.stringify(Cause.pretty(cause))},` : "") +
      `"annotations":${JSON.stringify(annotations)},"spans":${JSON.stringify(spanTimes)},"fiberId":"#${fiber.id}"}\n`
  } catch {
    // A BigInt, a cycle: what Logger.consoleJson would write.
    line =
      Formatter.formatJson({
        message: messages.length === 1 ? structured(messages[0]) : messages.map(structured),
        level: logLevel.toUpperCase(),
        timestamp: date.toISOString(),
        cause: cause.reasons.length > 0 ? Cause.pretty(cause) : undefined,
        annotations: Object.fromEntries(Object.entries(annotations).map(([key, value]) => [key, structured(value)])),
        spans: spanTimes,
        fiberId: `#${fiber.id}`
      }) + "\n"
  }
  write(line)
})

/** Every log line as a JSON line on stdout, in batches. */
export const layer: Layer.Layer<never> = Logger.layer([logger])
