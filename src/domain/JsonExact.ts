/**
 * JSON parsing that never rounds a number behind the schema's back.
 *
 * `JSON.parse` turns `15.50000000000000001` into 15.5 before any validation sees it, so a concentration
 * with 17 decimal places would be accepted as a valid one with 1. `parseJsonExact` reads each number's
 * source text (the reviver's `context.source`, Node ≥ 21) and keeps a plain JS number only when that number
 * denotes exactly the decimal written; otherwise the value becomes a `JsonNumberText` holding the text, so
 * the concentration schema can judge the digits the client actually sent. Every other schema rejects a
 * `JsonNumberText` as a type mismatch ("expected a number"), which is right: it is not a number we can hold.
 */
import { Result, Schema } from "effect"
import { sameDecimal } from "./Decimal.ts"

/** Source text of a JSON number that no JS number represents exactly (`1e400`, `0.10000000000000000001`). */
export class JsonNumberText {
  readonly source: string
  constructor(source: string) {
    this.source = source
  }
  toString(): string {
    return this.source
  }
}

/** The request body is not JSON. Maps to HTTP 400 "body is not valid JSON". */
export class InvalidJson extends Schema.TaggedError<InvalidJson>()(
  "InvalidJson",
  { message: Schema.String },
  { httpApiStatus: 400 }
) {}

interface ReviverContext {
  readonly source?: string
}

const keepExactNumbers = (_key: string, value: unknown, context?: ReviverContext): unknown => {
  if (typeof value !== "number" || context?.source === undefined) return value
  const source = context.source
  // Fast path: the usual spelling is already the shortest one ("15.5", "10").
  if (String(value) === source || sameDecimal(source, value)) return value
  return new JsonNumberText(source)
}

// Without source text access the reviver cannot see rounding; fail at start-up rather than round silently.
const hasSourceAccess = JSON.parse("1", (_key, value, context?: ReviverContext) => context?.source ?? value) === "1"
if (!hasSourceAccess) {
  throw new Error("parseJsonExact needs JSON.parse source text access (reviver context.source, Node.js 21 or later)")
}

/**
 * Text in which a number could be rounded: 16 or more digits in a row (dots
 * included), or an exponent. A decimal of at most 15 significant digits
 * without an exponent is always held exactly by a double, so text without
 * either needs no reviver — the common case, and JSON.parse is several times
 * faster without one. (Digits inside strings only send text the slow way.)
 */
export const mayRound = /[0-9.]{16}|[0-9][eE]/

/**
 * Parses JSON text like `JSON.parse`, except that numbers a double cannot hold exactly become
 * `JsonNumberText`. Fails with `InvalidJson` for malformed text and for nesting too deep to revive.
 */
export const parseJsonExact = (text: string): Result.Result<unknown, InvalidJson> => {
  try {
    return Result.succeed(mayRound.test(text) ? JSON.parse(text, keepExactNumbers) : JSON.parse(text))
  } catch (error) {
    // The reviver walks the parsed tree recursively, so absurd nesting overflows the stack: still a client error.
    const reason =
      error instanceof RangeError ? "it is nested too deeply" : error instanceof Error ? error.message : String(error)
    return Result.fail(new InvalidJson({ message: `body is not valid JSON: ${reason}` }))
  }
}
