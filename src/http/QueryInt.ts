/**
 * Integers in the query string, spelled one way: plain decimal digits
 * (`limit=20`). `0x10`, `1e1`, `+5`, ` 5`, `5.0` and `05` all denote numbers
 * to `Number()`, which is what a looser schema would accept; here each is a
 * 400, so a query means what it says and each value has one spelling.
 * Shared by every query number of the API.
 */
import { Schema, SchemaTransformation } from "effect"

const decimalInteger = /^(?:0|-?[1-9][0-9]{0,14})$/

/** A query parameter holding an integer in [minimum, maximum], written as plain decimal digits. */
export const QueryInt = (bounds: { readonly minimum: number; readonly maximum: number }) =>
  Schema.String.check(
    Schema.isPattern(decimalInteger, {
      message: "must be an integer written in plain decimal digits (at most 15), such as 20"
    })
  ).pipe(
    Schema.decodeTo(
      Schema.Int.check(
        Schema.isBetween(bounds, { message: `must be between ${bounds.minimum} and ${bounds.maximum}` })
      ),
      SchemaTransformation.numberFromString
    )
  )
