/** A stored formula as the API shows it (`FormulaView` in FormulasApi.ts), and its URL. */
import type { FormulaRow } from "../store/FormulaStore.ts"
import type { FormulaView, MessageStatus } from "./FormulasApi.ts"

export const formulaUrl = (id: string) => `/formulas/${id}`

const iso = (date: Date | null) => (date === null ? null : date.toISOString())

/** The outbox row says how the message ended; a purge or an ack is final, a dead letter can be redriven. */
const statusOf = (row: FormulaRow): MessageStatus =>
  row.purgedAt !== null
    ? "purged"
    : row.deliveredAt !== null
      ? "processed"
      : row.deadLetteredAt !== null
        ? "dead-lettered"
        : "pending"

/**
 * `liveAttempts`: the queue's count of a message it holds. A pending
 * message's attempts are only in the queue (the row records them when the
 * message is settled or dead-lettered).
 */
export const toFormulaView = (
  row: FormulaRow,
  liveAttempts: (messageId: string) => number | undefined = () => undefined
): FormulaView => {
  const status = statusOf(row)
  return {
    id: row.id,
    name: row.name,
    fingerprint: row.fingerprint,
    // Exact: a decimal of at most 9 significant digits survives a double and prints back the same.
    materials: row.materials.map((material) => ({
      name: material.name,
      concentration: Number(material.concentration)
    })),
    createdAt: row.createdAt.toISOString(),
    message: {
      id: row.messageId,
      status,
      attempts: status === "pending" ? (liveAttempts(row.messageId) ?? row.attempts) : row.attempts,
      processedAt: iso(row.deliveredAt),
      result: row.result,
      lastError: status === "dead-lettered" || status === "purged" ? row.lastError : null,
      deadLetteredAt: status === "dead-lettered" || status === "purged" ? iso(row.deadLetteredAt) : null,
      deliveredAt: iso(row.deliveredAt)
    }
  }
}
