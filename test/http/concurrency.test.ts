/**
 * Idempotency under a real race: one make-up, 100 spellings, all in flight at
 * once. On PostgreSQL the pool has 10 connections, so transactions truly
 * overlap and only the unique index can decide the winner.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { assertCreated, assertDuplicateOf, postText, summerBreezeSpellings, uniqueTag } from "../support/Formulas.ts"
import { type JsonResponse, request, testServer } from "../support/TestServer.ts"

/**
 * Opens the connections a race needs before it starts: HTTP sockets to the server and the database pool's
 * connections. Cold, the first requests queue behind connection set-up and arrive one by one — no race.
 */
const warmUp = Effect.forEach(Array.from({ length: 100 }), () => request("GET", "/formulas?limit=1"), {
  concurrency: "unbounded",
  discard: true
})

/** Every formula, following `nextCursor` to the last page. */
const listAll = Effect.gen(function* () {
  const items: Array<{ id: string; fingerprint: string }> = []
  let cursor: string | null = null
  do {
    const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`
    const page: JsonResponse = yield* request("GET", `/formulas?limit=100${query}`)
    assert.strictEqual(page.status, 200, page.text)
    items.push(...page.json.items)
    cursor = page.json.nextCursor
  } while (cursor !== null)
  return items
})

for (const database of testDatabases) {
  describe(`concurrent submissions on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect("100 concurrent spellings of one make-up: one 201, 99 × 409 naming it, one stored formula", () =>
        Effect.gen(function* () {
          const tag = uniqueTag()
          const spellings = summerBreezeSpellings(tag, 100, 7)
          assert.strictEqual(new Set(spellings).size, 100)
          yield* warmUp

          const responses = yield* Effect.forEach(spellings, postText, { concurrency: "unbounded" })

          const created = responses.filter((response) => response.status === 201)
          const duplicates = responses.filter((response) => response.status === 409)
          const statuses = responses.map((response) => response.status).join(",")
          assert.strictEqual(created.length, 1, `exactly one 201; statuses: ${statuses}`)
          assert.strictEqual(duplicates.length, 99, `99 × 409; statuses: ${statuses}`)
          const winner = assertCreated(created[0]!)
          for (const duplicate of duplicates) assertDuplicateOf(duplicate, winner.id)

          // GET /formulas, every page of it, shows exactly one formula with that fingerprint.
          const withFingerprint = (yield* listAll).filter((item) => item.fingerprint === winner.fingerprint)
          assert.strictEqual(withFingerprint.length, 1)
          assert.deepStrictEqual(withFingerprint[0], winner)
        })
      )

      it.effect(
        "10 make-ups × 10 concurrent spellings each: one 201 per make-up, every 409 names its own make-up",
        () =>
          Effect.gen(function* () {
            const tags = Array.from({ length: 10 }, uniqueTag)
            const submissions = tags.flatMap((tag, index) =>
              summerBreezeSpellings(tag, 10, index + 11).map((text) => ({ tag, text }))
            )
            const responses = yield* Effect.forEach(
              submissions,
              ({ tag, text }) => Effect.map(postText(text), (response) => ({ tag, response })),
              { concurrency: "unbounded" }
            )
            for (const tag of tags) {
              const mine = responses.filter((entry) => entry.tag === tag).map((entry) => entry.response)
              const created = mine.filter((response) => response.status === 201)
              assert.strictEqual(created.length, 1, `make-up ${tag}: ${mine.map((r) => r.status).join(",")}`)
              const winner = assertCreated(created[0]!)
              assert.include(winner.materials[0].name.normalize("NFKC").toLowerCase(), tag)
              for (const response of mine) if (response.status !== 201) assertDuplicateOf(response, winner.id)
            }
          })
      )
    })
  })
}
