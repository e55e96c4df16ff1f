/**
 * The server process's logger: Effect's own, configured by `LOG_LEVEL` and
 * `LOG_FORMAT` (Settings.ts). Every log line of the process — lifecycle,
 * requests, background fibers — goes through it, one line per entry: JSON for
 * log collectors (JsonLines.ts: cheap enough for a line per request), pretty
 * for a person at a terminal.
 */
import { Layer, Logger, type LogLevel, References } from "effect"
import type { LogFormat } from "../Settings.ts"
import * as JsonLines from "./JsonLines.ts"

export interface LoggingOptions {
  readonly level: LogLevel.LogLevel
  readonly format: LogFormat
}

export const layer = (options: LoggingOptions): Layer.Layer<never> =>
  Layer.mergeAll(
    Logger.layer([options.format === "json" ? JsonLines.logger : Logger.consolePretty()]),
    Layer.succeed(References.MinimumLogLevel, options.level)
  )
