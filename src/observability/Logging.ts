/**
 * The server process's logger: Effect's own, configured by `LOG_LEVEL` and
 * `LOG_FORMAT` (Settings.ts). Every log line of the process — lifecycle,
 * requests, background fibers — goes through it, one line per entry: JSON for
 * log collectors, pretty for a person at a terminal.
 */
import { Layer, Logger, type LogLevel, References } from "effect"
import type { LogFormat } from "../Settings.ts"

export interface LoggingOptions {
  readonly level: LogLevel.LogLevel
  readonly format: LogFormat
}

export const layer = (options: LoggingOptions): Layer.Layer<never> =>
  Layer.mergeAll(
    Logger.layer([options.format === "json" ? Logger.consoleJson : Logger.consolePretty()]),
    Layer.succeed(References.MinimumLogLevel, options.level)
  )
