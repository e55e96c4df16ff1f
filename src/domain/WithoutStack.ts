/**
 * Builds an expected, frequent error (a duplicate submission) without
 * capturing a stack trace: it is an answer, not a bug, and capturing the
 * stack cost more than the rest of the duplicate check (npm run bench).
 */
export const withoutStack = <A>(make: () => A): A => {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return make()
  } finally {
    Error.stackTraceLimit = limit
  }
}
