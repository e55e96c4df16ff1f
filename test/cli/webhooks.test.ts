/**
 * `formulas webhooks …` against the webhook API (DESIGN.md "Webhooks"),
 * written before that API was merged: run it after merging the webhooks
 * branch. A receiver on 127.0.0.1 (WEBHOOK_ALLOW_PRIVATE_NETWORKS=true) gets
 * the test event; the commands print what a person needs and exit as
 * documented (2 without --client-id, 1 for another client's endpoint).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createServer } from "node:http"
import { testDatabases } from "../support/Databases.ts"
import { BaseUrl, testServer } from "../support/TestServer.ts"
import { formulas } from "./Cli.ts"

process.env["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "true"

const receiver = Effect.acquireRelease(
  Effect.promise(async () => {
    const received: Array<{ headers: Record<string, unknown>; body: string }> = []
    const server = createServer((request, response) => {
      let body = ""
      request.on("data", (chunk) => (body += chunk))
      request.on("end", () => {
        received.push({ headers: request.headers, body })
        response.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    return { server, received, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook` }
  }),
  ({ server }) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
)

const until = <A>(what: string, check: () => A | undefined) =>
  Effect.gen(function* () {
    for (let tries = 0; tries < 300; tries++) {
      const value = check()
      if (value !== undefined) return value
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
    }
    return yield* Effect.die(new Error(`never happened: ${what}`))
  })

for (const database of testDatabases) {
  describe(`formulas webhooks on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect("add, list, test, deliveries; another client's endpoint is a 404 (exit 1); no client id exit 2", () =>
        Effect.gen(function* () {
          const url = yield* BaseUrl
          const hook = yield* receiver
          const as = (client: string) => ["--url", url, "--client-id", client]

          const added = yield* formulas(["webhooks", "add", hook.url, ...as("cli-a"), "--json"])
          assert.strictEqual(added.code, 0, added.stderr)
          const endpoint = JSON.parse(added.stdout)
          assert.match(endpoint.secret, /^whsec_/)
          const shown = yield* formulas(["webhooks", "add", hook.url, ...as("cli-a")])
          assert.match(shown.stdout, /^secret: whsec_/m)

          const listed = yield* formulas(["webhooks", "list", ...as("cli-a")])
          assert.strictEqual(listed.code, 0, listed.stderr)
          assert.include(listed.stdout, endpoint.id)
          assert.notInclude(listed.stdout, "whsec_", "never the secret")

          const tested = yield* formulas(["webhooks", "test", endpoint.id, ...as("cli-a")])
          assert.strictEqual(tested.code, 0, tested.stderr)
          yield* until("the test event arrives", () =>
            hook.received.find((request) => JSON.parse(request.body).type === "webhook.test")
          )
          const deliveries = yield* formulas(["webhooks", "deliveries", endpoint.id, ...as("cli-a"), "--json"])
          assert.strictEqual(deliveries.code, 0, deliveries.stderr)
          const body = JSON.parse(deliveries.stdout)
          const items = Array.isArray(body) ? body : body.items
          assert.isTrue(items.some((delivery: any) => delivery.type === "webhook.test"))
          const table = yield* formulas(["webhooks", "deliveries", endpoint.id, ...as("cli-a")])
          assert.match(table.stdout, /webhook\.test/)

          const foreign = yield* formulas(["webhooks", "deliveries", endpoint.id, ...as("cli-b")])
          assert.strictEqual(foreign.code, 1)
          assert.include(foreign.stderr, "404")
          const unknownRetry = yield* formulas([
            "webhooks",
            "retry",
            endpoint.id,
            "00000000-0000-4000-8000-000000000000",
            ...as("cli-a")
          ])
          assert.strictEqual(unknownRetry.code, 1)

          const anonymous = yield* formulas(["webhooks", "list", "--url", url])
          assert.strictEqual(anonymous.code, 2)
          assert.include(anonymous.stderr, "--client-id")
        })
      )
    })
  })
}
