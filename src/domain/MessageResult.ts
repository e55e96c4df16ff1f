/**
 * A consumer's result: any JSON value, stored as the text it serializes to
 * (at most `maxResultBytes` bytes of UTF-8), so the webhook event that
 * carries it and the formula that shows it say the same thing.
 *
 * Numbers the request parser kept as source text (`JsonNumberText`: more
 * digits than a double holds) are written back as that text, never rounded.
 */
import { Effect, Schema } from "effect"
import { JsonNumberText } from "./JsonExact.ts"

/** 64 KiB: the largest result an ack may carry, serialized. */
export const maxResultBytes = 65_536

export type EncodedResult =
  | { readonly _tag: "Encoded"; readonly text: string | null }
  | { readonly _tag: "TooLarge"; readonly bytes: number }
  | { readonly _tag: "NotJson"; readonly reason: string }

// ES2025's JSON.rawJSON (Node 21+), not yet in TypeScript's lib.
const rawJSON = (JSON as unknown as { readonly rawJSON: (text: string) => unknown }).rawJSON

const exactNumbers = (_key: string, value: unknown): unknown =>
  value instanceof JsonNumberText ? rawJSON(value.source) : value

/** The result's JSON text (null: no result, i.e. undefined), or why it cannot be stored. */
export const encodeResult = (result: unknown): EncodedResult => {
  if (result === undefined) return { _tag: "Encoded", text: null }
  let text: string | undefined
  try {
    text = JSON.stringify(result, exactNumbers)
  } catch (error) {
    return { _tag: "NotJson", reason: error instanceof Error ? error.message : String(error) }
  }
  // Functions and symbols serialize to nothing: not a result.
  if (text === undefined) return { _tag: "NotJson", reason: `a ${typeof result} is not JSON` }
  // UTF-16 length ≤ bytes ≤ 3 × length: only texts near the limit need counting.
  const bytes = text.length * 3 <= maxResultBytes ? text.length : Buffer.byteLength(text, "utf8")
  return bytes > maxResultBytes ? { _tag: "TooLarge", bytes } : { _tag: "Encoded", text }
}

/**
 * An in-process ack whose result cannot be stored (too large, not JSON): the
 * ack fails (`AckNotRecorded`) and the message stays in flight. The HTTP ack
 * checks first and answers 400.
 */
export class ResultNotStored extends Schema.TaggedError<ResultNotStored>()("ResultNotStored", {
  message: Schema.String
}) {}

/** The result's JSON text to store (null: none), or `ResultNotStored` saying why it cannot be stored. */
export const storableResult = (result: unknown): Effect.Effect<string | null, ResultNotStored> => {
  const encoded = encodeResult(result)
  switch (encoded._tag) {
    case "Encoded":
      return Effect.succeed(encoded.text)
    case "TooLarge":
      return Effect.fail(
        new ResultNotStored({ message: `result is ${encoded.bytes} bytes serialized; at most ${maxResultBytes}` })
      )
    case "NotJson":
      return Effect.fail(new ResultNotStored({ message: `result is not JSON: ${encoded.reason}` }))
  }
}
