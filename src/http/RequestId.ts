/**
 * `X-Request-Id`: the client's own id when it is sane, else a new one. Every
 * response carries it, every problem body repeats it (`requestId`) and the
 * access log line names it, so one id ties a client's report to a log line.
 *
 * Sane is what a log line and a header can carry unescaped: 1–200 characters
 * of visible ASCII (no spaces, no control characters). Anything else (too
 * long, spaces, a list Node joined from repeated headers) is replaced, not
 * repaired. New ids are a random per-process prefix and a counter: unique
 * among processes in practice, and nearly free (no random bytes per request).
 */
import { randomBytes } from "node:crypto"

export const requestIdHeader = "x-request-id"

export const maxRequestIdLength = 200

const sane = /^[\x21-\x7e]{1,200}$/

const prefix = randomBytes(6).toString("hex") + "-"
let issued = 0

/** A fresh id, e.g. `3f9a1c2e7b0d-1a`. */
export const newRequestId = (): string => prefix + (++issued).toString(36)

/** The id of a request that sent `header` (undefined when it sent none). */
export const requestIdOf = (header: string | undefined): string =>
  header !== undefined && sane.test(header) ? header : newRequestId()
