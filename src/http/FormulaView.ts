/** A stored formula as the API shows it (`FormulaView` in FormulasApi.ts), and its URL. */
import type { FormulaRow } from "../store/FormulaStore.ts"
import type { FormulaView } from "./FormulasApi.ts"

export const formulaUrl = (id: string) => `/formulas/${id}`

export const toFormulaView = (row: FormulaRow): FormulaView => ({
  id: row.id,
  name: row.name,
  fingerprint: row.fingerprint,
  // Exact: a decimal of at most 9 significant digits survives a double and prints back the same.
  materials: row.materials.map((material) => ({ name: material.name, concentration: Number(material.concentration) })),
  createdAt: row.createdAt.toISOString(),
  message: {
    id: row.messageId,
    status: row.deliveredAt === null ? "pending" : "delivered",
    deliveredAt: row.deliveredAt === null ? null : row.deliveredAt.toISOString()
  }
})
