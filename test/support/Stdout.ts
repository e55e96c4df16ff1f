/**
 * What a piece of code writes to stdout, for the loggers' tests: json log
 * lines leave in one write after the turn of the event loop (JsonLines.ts),
 * so the capture lasts one turn past the effect.
 */
import { Effect } from "effect"

/** The chunks written to stdout while `effect` ran and in the turn after it. */
export const writtenToStdout = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const chunks: Array<string> = []
    const original = process.stdout.write
    process.stdout.write = ((chunk: string) => {
      chunks.push(chunk)
      return true
    }) as typeof process.stdout.write
    try {
      yield* effect
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    } finally {
      process.stdout.write = original
    }
    return chunks
  })
