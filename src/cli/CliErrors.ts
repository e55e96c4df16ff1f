/**
 * What can go wrong in a command, each with the exit code DESIGN.md gives
 * ("Command line") and a message that says what to do next:
 * 1 the user can fix it (bad input, a 4xx), 2 usage, 3 the service is
 * unreachable or failed (5xx). A duplicate submission is not an error.
 */
import { Data } from "effect"

/** Input the user can correct: a missing file, JSON that does not parse, a bad flag value. */
export class InputError extends Data.TaggedError("InputError")<{ readonly message: string }> {
  readonly exitCode = 1
}

/** The service answered 4xx: its problem's title and detail, and every listed error with its path. */
export class Rejected extends Data.TaggedError("Rejected")<{
  readonly status: number
  readonly problem: Problem
}> {
  readonly exitCode = 1
  override get message() {
    return describeProblem(this.status, this.problem)
  }
}

/** Nobody answers at the URL: name it and how to start the service. */
export class Unreachable extends Data.TaggedError("Unreachable")<{ readonly url: string; readonly reason: string }> {
  readonly exitCode = 3
  override get message() {
    return (
      `cannot reach the formula service at ${this.url} (${this.reason}).\n` +
      `Start it with \`npx formulas serve\` (or \`npm start\`) in the project directory, ` +
      `or point --url / FORMULAS_URL at a running one.`
    )
  }
}

/** The service answered 5xx (or something that is not HTTP as we know it). */
export class ServiceFailed extends Data.TaggedError("ServiceFailed")<{
  readonly status: number
  readonly problem: Problem
}> {
  readonly exitCode = 3
  override get message() {
    return `${describeProblem(this.status, this.problem)}\nThe service failed, not your input: try again later, or look at its log.`
  }
}

/** The command line itself is wrong (the parser's own errors are usage errors too). */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {
  readonly exitCode = 2
}

export type CommandError = InputError | Rejected | Unreachable | ServiceFailed | UsageError

/** An RFC 9457 problem as the service sends it; every field optional, since a proxy may send anything. */
export interface Problem {
  readonly type?: string
  readonly title?: string | undefined
  readonly detail?: string | undefined
  readonly errors?: ReadonlyArray<{ readonly path: string; readonly message: string }>
  readonly [field: string]: unknown
}

export const describeProblem = (status: number, problem: Problem): string => {
  const head = `${status} ${problem.title ?? "request failed"}${problem.detail === undefined ? "" : `: ${problem.detail}`}`
  const errors = problem.errors ?? []
  return errors.length === 0
    ? head
    : [head, ...errors.map((error) => `  ${error.path === "" ? "/" : error.path}  ${error.message}`)].join("\n")
}
