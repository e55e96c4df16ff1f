/**
 * The spellings the statistics accept for time zones and date-times, checked
 * without the database so every problem of a request can be listed at once.
 *
 * - A time zone is an IANA name (`Europe/Berlin`, `UTC`, `Etc/GMT+5`) that
 *   the runtime's time-zone data knows; offsets (`+01:00`) and POSIX strings
 *   are not accepted (PostgreSQL reads `+01:00` as a POSIX zone, west of
 *   Greenwich). The stats service also asks PostgreSQL, whose data decides.
 * - A date-time is ISO 8601: `2026-03-29`, `2026-03-29T02:30`,
 *   `2026-03-29T02:30:00.5`, each optionally with `Z` or an offset (`+02:00`).
 *   With one it is an instant; without one, a wall-clock time in the query's
 *   zone. A space where the offset's `+` was is read as `+`: in a query string
 *   an unencoded `+` arrives as a space.
 */
import type { QueryTime } from "./StatsSql.ts"

const zoneName = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,2}$/

/** Whether `zone` is an IANA time-zone name the runtime knows. */
export const isTimeZoneName = (zone: string): boolean => {
  if (zone.length > 64 || !zoneName.test(zone)) return false
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone })
    return true
  } catch {
    return false
  }
}

const dateTime = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?(Z|[+\- ](\d{2}):(\d{2}))?$/

/** The date-time `text` for SQL, or undefined when it is not one of the accepted spellings of a real time. */
export const parseQueryTime = (text: string): QueryTime | undefined => {
  const match = dateTime.exec(text)
  if (match === null) return undefined
  const [, y, mo, d, h = "00", mi = "00", s = "00", fraction, offset, oh, om] = match
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  if (year < 1000 || month < 1 || month > 12 || day < 1) return undefined
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined
  if (offset !== undefined && offset !== "Z" && (Number(oh) > 14 || Number(om) > 59)) return undefined
  // An offset belongs to a time of day: `2026-03-29Z` is not a spelling.
  if (offset !== undefined && match[4] === undefined) return undefined
  const time = `${y}-${mo}-${d}T${h}:${mi}:${s}${fraction === undefined ? "" : `.${fraction}`}`
  const zone = offset === undefined ? "" : offset === "Z" ? "Z" : `${offset.startsWith("-") ? "-" : "+"}${oh}:${om}`
  return { text: time + zone, hasOffset: offset !== undefined }
}

export const dateTimeSpellings =
  "an ISO 8601 date or date-time, e.g. 2026-03-29, 2026-03-29T02:30 (in timeZone) or 2026-03-29T00:30:00Z"
