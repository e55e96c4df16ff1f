/**
 * The duplicate hammer through the HTTP API, on every database: random
 * formulas, each POSTed concurrently in several random spellings. Protects
 * the end-to-end promise — exactly one 201 and one queue message per
 * distinct make-up, every other response a 409 naming the winner.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { hammer, spelledSubmissions } from "../support/FormulaGenerators.ts"
import { request, testServer } from "../support/TestServer.ts"
import { testDatabases } from "../support/Databases.ts"

let runs = 0

/** Receives and acks every queued message over HTTP; returns the formula ids they announce. */
const drainQueue = Effect.gen(function* () {
  const formulaIds: Array<string> = []
  while (true) {
    const received = yield* request("POST", "/queue/receive", { body: { max: 100 } })
    const messages: Array<{ receipt: string; body: { formulaId: string } }> = received.json.messages
    if (messages.length === 0) return formulaIds
    for (const message of messages) {
      formulaIds.push(message.body.formulaId)
      assert.strictEqual((yield* request("POST", "/queue/ack", { body: { receipt: message.receipt } })).status, 204)
    }
  }
})

for (const database of testDatabases) {
  describe(`duplicate submissions over HTTP on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect.prop(
        "one 201 and one message per distinct make-up; every other response a 409 naming it",
        [hammer({ makeUps: 3, copies: 5 })],
        ([drawn]) =>
          Effect.gen(function* () {
            const bodies = spelledSubmissions(drawn, `h${runs++}`)
            const responses = yield* Effect.forEach(
              bodies,
              (body) => Effect.map(request("POST", "/formulas", { body: body.json }), (r) => ({ ...r, body })),
              { concurrency: "unbounded" }
            )

            const winners = new Map<string, string>()
            for (const response of responses) {
              assert.oneOf(response.status, [201, 409], response.text)
              if (response.status !== 201) continue
              assert.isFalse(winners.has(response.body.fingerprint), "two spellings of one make-up were both created")
              assert.strictEqual(response.json.fingerprint, response.body.fingerprint)
              winners.set(response.body.fingerprint, response.json.id)
            }
            assert.strictEqual(winners.size, new Set(bodies.map((b) => b.fingerprint)).size)
            for (const response of responses) {
              if (response.status === 409)
                assert.strictEqual(response.json.existingId, winners.get(response.body.fingerprint))
            }
            assert.sameMembers(yield* drainQueue, [...winners.values()], "exactly one message per created formula")
          }),
        { arbitrary: { runs: 8 } }
      )
    })
  })
}
