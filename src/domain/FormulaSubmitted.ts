/**
 * The message announced once for every new formula. Consumers receive it as
 * the queue message body; its `messageId` travels beside it.
 */
import { Schema } from "effect"

export const FormulaSubmitted = Schema.Struct({
  type: Schema.Literal("FormulaSubmitted"),
  formulaId: Schema.String,
  fingerprint: Schema.String,
  name: Schema.String,
  submittedAt: Schema.String
})
export type FormulaSubmitted = typeof FormulaSubmitted.Type

export const formulaSubmitted = (fields: {
  readonly formulaId: string
  readonly fingerprint: string
  readonly name: string
  readonly submittedAt: Date
}): FormulaSubmitted => ({
  type: "FormulaSubmitted",
  formulaId: fields.formulaId,
  fingerprint: fields.fingerprint,
  name: fields.name,
  submittedAt: fields.submittedAt.toISOString()
})
