/**
 * The access log: one info-level line per answered request, written through
 * Effect's logger — the loggers in `CurrentLoggers`, the minimum level in
 * `MinimumLogLevel` — so LOG_LEVEL and LOG_FORMAT apply to it like to any
 * line. `ACCESS_LOG=false` turns it off.
 *
 * The line's fields are log annotations (`method`, `path`, `status`,
 * `durationMs`, `requestId`); its message repeats the first three for a
 * reader of the pretty format. `path` leaves out the query string (cursors,
 * whatever a client put there). The duration runs from the router receiving
 * the request to its response being ready to write.
 *
 * `logRequest` does what `Effect.annotateLogs(Effect.logInfo(…), …)` does,
 * synchronously inside the request's fiber: built as effects, the line cost
 * a few µs before any logger ran (a loop of them, .bench/micro.ts), a
 * tenth of a duplicate submission's whole CPU time.
 */
import { Cause, Clock, Context, type Fiber, Logger, LogLevel, References } from "effect"
import { AccessLogSetting } from "../Settings.ts"

export const accessLogSetting = AccessLogSetting.config

/** The path of a request target, without its query string. */
export const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/** Whether an info line would be written at all (a logger, and a level that lets info through). */
export const infoLogged = (fiber: Fiber.Fiber<unknown, unknown>): boolean =>
  !LogLevel.isGreaterThan(fiber.getRef(References.MinimumLogLevel), "Info") &&
  fiber.getRef(Logger.CurrentLoggers).size > 0

/** Writes the line of one request to the fiber's loggers (check `infoLogged` first). */
export const logRequest = (
  fiber: Fiber.Fiber<unknown, unknown>,
  method: string,
  path: string,
  status: number,
  durationMs: number,
  requestId: string
): void => {
  const previous = fiber.context
  fiber.setContext(
    Context.add(previous, References.CurrentLogAnnotations, {
      ...fiber.getRef(References.CurrentLogAnnotations),
      method,
      path,
      status,
      durationMs: Math.round(durationMs * 1000) / 1000,
      requestId
    })
  )
  try {
    const options = {
      message: [`${method} ${path} ${status}`],
      logLevel: "Info" as const,
      cause: Cause.empty,
      fiber,
      date: new Date(fiber.getRef(Clock.Clock).currentTimeMillisUnsafe())
    }
    for (const logger of fiber.getRef(Logger.CurrentLoggers)) logger.log(options)
  } finally {
    fiber.setContext(previous)
  }
}
