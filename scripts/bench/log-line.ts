/**
 * The CPU time of one access log line, in a loop in one process (no HTTP,
 * no load generator): `node scripts/bench/log-line.ts MODE [LINES]`, its
 * stdout to a file; prints `{ "mode", "lines", "cpuUs" }` (µs per line) on
 * stderr. MODE picks the loggers the line goes to: `none` (a logger that
 * does nothing: the cost of making the line), `default` (Effect's default
 * logger), `consoleJson` (Logger.consoleJson), `jsonLines` (the service's
 * LOG_FORMAT=json logger, src/observability/JsonLines.ts). Being one process
 * on one core, the figure moves less than a throughput with the machine's
 * other load.
 */
import { Effect, Logger } from "effect"
import { logRequest } from "../../src/http/AccessLog.ts"
import * as JsonLines from "../../src/observability/JsonLines.ts"

const loggers = {
  none: Logger.layer([Logger.make(() => {})]),
  default: Logger.layer([Logger.defaultLogger]),
  consoleJson: Logger.layer([Logger.consoleJson]),
  jsonLines: JsonLines.layer
} as const

const mode = process.argv[2] as keyof typeof loggers
const lines = Number(process.argv[3] ?? 50_000)
if (!(mode in loggers)) {
  process.stderr.write(`usage: node scripts/bench/log-line.ts ${Object.keys(loggers).join("|")} [LINES]\n`)
  process.exit(2)
}

const program = Effect.provide(
  Effect.withFiber((fiber) => {
    for (let i = 0; i < lines; i++) {
      logRequest(fiber, "POST", "/formulas", 409, 0.123, `3f9a1c2e7b0d-${i.toString(36)}`)
    }
    return Effect.void
  }),
  loggers[mode]
)

const turn = () => new Promise((resolve) => setImmediate(resolve))

// A warm-up round, then the measured one; each includes the batched writes of its turn.
Effect.runSync(program)
await turn()
const before = process.cpuUsage()
Effect.runSync(program)
await turn()
const used = process.cpuUsage(before)
process.stderr.write(JSON.stringify({ mode, lines, cpuUs: (used.user + used.system) / lines }) + "\n")
