import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { request, testServer } from "../support/TestServer.ts"

for (const database of testDatabases) {
  describe(`smoke on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect("answers /health", () =>
        Effect.gen(function* () {
          const response = yield* request("GET", "/health")
          assert.strictEqual(response.status, 200)
          assert.deepStrictEqual(response.json, { status: "ok" })
        })
      )
    })
  })
}
