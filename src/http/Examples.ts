/**
 * The story the API's examples tell (Documented.ts): DESIGN.md's "Summer
 * Breeze" submitted, stored, announced, delivered to a consumer and acked.
 * The ids are of the kind the service makes (UUIDv7, receipts as the queue
 * writes them); the fingerprint is the make-up's real one, which
 * test/http/openapi.test.ts checks against a live 201.
 */

/** The formula as a client submits it. */
export const summerBreeze = {
  name: "Summer Breeze",
  materials: [
    { name: "Bergamot Oil", concentration: 15.5 },
    { name: "Lavender Absolute", concentration: 10.0 },
    { name: "Sandalwood", concentration: 5.2 }
  ]
}

export const summerBreezeId = "01a22f66-b2c8-7410-9cab-b37f7e77cb17"
export const summerBreezeMessageId = "01a22f66-b2c9-76f1-91e1-cdd4d565073d"
export const summerBreezeFingerprint = "bb82d51a3e80aae88291e7a2b0d0830e05ff3e6a705be8f127dbb7b127c85eb5"
export const summerBreezeCreatedAt = "2026-12-01T02:19:49.321Z"
export const summerBreezeDeliveredAt = "2026-12-01T02:19:50.877Z"

/** What the consumer that acked Summer Breeze's message found (examples/worker.ts's heuristic). */
export const summerBreezeResult = { concentrationClass: "Parfum", totalConcentration: 30.7 }

/** The receipt of Summer Breeze's first delivery. */
export const receipt = "0.0.a778cc0afcc9"

/** The message announcing Summer Breeze (FormulaSubmitted.ts), as consumers receive it. */
export const summerBreezeSubmitted = {
  type: "FormulaSubmitted" as const,
  formulaId: summerBreezeId,
  fingerprint: summerBreezeFingerprint,
  name: summerBreeze.name,
  submittedAt: summerBreezeCreatedAt
}
