/**
 * The design card's duplicate hammer, through the Layer API, on every
 * database: random formulas, each submitted concurrently in several random
 * spellings. Protects idempotency and atomicity together — exactly one stored
 * row and exactly one queue message per distinct make-up, every other
 * submission a `Duplicate` naming the winner.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Result } from "effect"
import { SqlClient } from "effect/sql"
import { parseJsonExact } from "../../src/domain/JsonExact.ts"
import { FormulaIntake } from "../../src/intake/FormulaIntake.ts"
import { MessageQueue } from "../../src/queue/MessageQueue.ts"
import * as Runtime from "../../src/Runtime.ts"
import { testDatabases } from "../support/Databases.ts"
import { hammer, spelledSubmissions } from "../support/FormulaGenerators.ts"

let runs = 0

/** Receives and acks everything in the queue; returns the FormulaSubmitted bodies. */
const drainQueue = Effect.gen(function* () {
  const queue = yield* MessageQueue
  const bodies: Array<{ readonly messageId: string; readonly formulaId: string }> = []
  while (true) {
    const batch = yield* queue.receive({ max: 100 })
    if (batch.length === 0) return bodies
    for (const delivery of batch) {
      bodies.push({ messageId: delivery.messageId, formulaId: (delivery.body as { formulaId: string }).formulaId })
      yield* queue.ack(delivery.receipt)
    }
  }
})

// Group commit must not weaken anything: every formula written alone, and in batches.
const groupCommits = [
  { maxBatch: 1, linger: 0, workers: 1 },
  { maxBatch: 64, linger: 2, workers: 2 }
]

for (const database of testDatabases) {
  for (const groupCommit of groupCommits) {
    describe(`FormulaIntake on ${database.name}, batches of up to ${groupCommit.maxBatch}`, () => {
      const db = database.layer()
      const runtime = Runtime.layerWith(db, {
        queue: { capacity: 100_000 },
        cacheCapacity: 1_000,
        relayInterval: "1 hour",
        groupCommit
      }).pipe(Layer.provideMerge(db))

      layer(runtime, { excludeTestServices: true })((it) => {
        it.effect.prop(
          "one row and one message per distinct make-up, however spelled and however concurrent",
          [hammer({ makeUps: 4, copies: 6 })],
          ([drawn]) =>
            Effect.gen(function* () {
              const intake = yield* FormulaIntake
              const sql = yield* SqlClient.SqlClient
              // Every make-up several times, each time spelled differently, all at once.
              const bodies = spelledSubmissions(drawn, `${runs++}`)
              const outcomes = yield* Effect.forEach(
                bodies,
                (body) => {
                  const parsed = parseJsonExact(body.json)
                  if (Result.isFailure(parsed)) return Effect.die(parsed.failure)
                  return intake.submit(parsed.success).pipe(
                    Effect.map((row) => ({ fingerprint: body.fingerprint, created: row.id, duplicateOf: undefined })),
                    Effect.catchTag("Duplicate", (error) =>
                      Effect.succeed({
                        fingerprint: body.fingerprint,
                        created: undefined,
                        duplicateOf: error.existingId
                      })
                    )
                  )
                },
                { concurrency: "unbounded" }
              )

              const distinct = new Set(bodies.map((body) => body.fingerprint))
              const winners = new Map<string, string>()
              for (const outcome of outcomes) {
                if (outcome.created === undefined) continue
                assert.isFalse(winners.has(outcome.fingerprint), "two submissions of one make-up were both created")
                winners.set(outcome.fingerprint, outcome.created)
              }
              assert.strictEqual(winners.size, distinct.size, "every distinct make-up is created once")
              for (const outcome of outcomes) {
                if (outcome.duplicateOf !== undefined) {
                  assert.strictEqual(
                    outcome.duplicateOf,
                    winners.get(outcome.fingerprint),
                    "a duplicate names the winner"
                  )
                }
              }

              const rows = yield* sql<{ fingerprint: string; id: string; messages: number }>`
              SELECT f.fingerprint, f.id::text AS id, (SELECT count(*)::int FROM outbox o WHERE o.formula_id = f.id) AS messages
                FROM formulas f WHERE f.fingerprint IN ${sql.in([...distinct])}`
              assert.strictEqual(rows.length, distinct.size, "one stored row per make-up")
              for (const row of rows) {
                assert.strictEqual(row.id, winners.get(row.fingerprint))
                assert.strictEqual(row.messages, 1, "one outbox message per stored formula")
              }

              const delivered = yield* drainQueue
              assert.sameMembers(
                delivered.map((message) => message.formulaId),
                [...winners.values()],
                "exactly one queue message per created formula, none for duplicates"
              )
            }),
          { arbitrary: { runs: 12 } }
        )
      })
    })
  }
}
