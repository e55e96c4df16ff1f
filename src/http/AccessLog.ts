/**
 * The access log: one info-level line per answered request, written through
 * Effect's logger, so LOG_LEVEL and LOG_FORMAT apply to it like to any line.
 * `ACCESS_LOG=false` turns it off.
 *
 * The line's fields are log annotations (`method`, `path`, `status`,
 * `durationMs`, `requestId`); its message repeats the first three for a
 * reader of the pretty format. `path` leaves out the query string (cursors,
 * whatever a client put there). The duration runs from the router receiving
 * the request to its response being ready to write.
 */
import { Config, Effect } from "effect"

export const accessLogSetting = Config.Boolean("ACCESS_LOG").pipe(Config.withDefault(true))

/** The path of a request target, without its query string. */
export const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

export const logRequest = (
  method: string,
  path: string,
  status: number,
  durationMs: number,
  requestId: string
): Effect.Effect<void> =>
  Effect.annotateLogs(Effect.logInfo(`${method} ${path} ${status}`), {
    method,
    path,
    status,
    durationMs: Math.round(durationMs * 1000) / 1000,
    requestId
  })
