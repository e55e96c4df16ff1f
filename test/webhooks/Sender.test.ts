/**
 * One attempt over node:http against a real receiver on 127.0.0.1: the
 * request goes to the address the resolver checked, named by the URL's host;
 * the answer's first KiB is kept; redirects are answers, not followed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Resolve, responseLimitBytes, send } from "../../src/webhooks/Sender.ts"
import { makeReceiver } from "../support/WebhookReceiver.ts"

/** A resolver that knows one made-up name, counting its calls. */
const fakeDns = (name: string) => {
  const calls: Array<string> = []
  const resolve: Resolve = (host) => {
    calls.push(host)
    return host === name
      ? Effect.succeed({ address: "127.0.0.1", family: 4 })
      : Effect.fail({ _tag: "AddressRefused", message: `${host} is not allowed` })
  }
  return { calls, resolve }
}

describe("Sender", () => {
  it.live("connects to the checked address, with the URL's Host, resolving once", () =>
    Effect.gen(function* () {
      const receiver = yield* makeReceiver(() => ({ status: 202, body: "ok" }))
      const dns = fakeDns("hooks.example.test")
      const result = yield* send(
        {
          url: `http://hooks.example.test:${receiver.port}/in?x=1`,
          body: '{"type":"webhook.test"}',
          headers: { "webhook-id": "evt_1" }
        },
        { resolve: dns.resolve, allowPrivateNetworks: true, timeout: "5 seconds" }
      )
      assert.deepStrictEqual(result, { _tag: "Answered", status: 202, retryAfter: undefined, body: "ok" })
      assert.deepStrictEqual(dns.calls, ["hooks.example.test"])
      const [request] = receiver.received
      assert.strictEqual(request!.path, "/in?x=1")
      assert.strictEqual(request!.headers.host, `hooks.example.test:${receiver.port}`)
      assert.strictEqual(request!.headers["webhook-id"], "evt_1")
      assert.strictEqual(request!.body, '{"type":"webhook.test"}')
    })
  )

  it.live("a host the resolver refuses is a failed attempt naming why; nothing is sent", () =>
    Effect.gen(function* () {
      const receiver = yield* makeReceiver()
      const dns = fakeDns("allowed.example.test")
      const result = yield* send(
        { url: `http://127.0.0.1:${receiver.port}/`, body: "{}", headers: {} },
        { resolve: dns.resolve, allowPrivateNetworks: false, timeout: "5 seconds" }
      )
      assert.deepStrictEqual(result, { _tag: "Failed", error: "AddressRefused: 127.0.0.1 is not allowed" })
      assert.lengthOf(receiver.received, 0)
    })
  )

  it.live("keeps the first KiB of a long answer", () =>
    Effect.gen(function* () {
      const receiver = yield* makeReceiver(() => ({ status: 500, body: "x".repeat(1_000_000) }))
      const dns = fakeDns("big.example.test")
      const result = yield* send(
        { url: `http://big.example.test:${receiver.port}/`, body: "{}", headers: {} },
        { resolve: dns.resolve, allowPrivateNetworks: true, timeout: "5 seconds" }
      )
      assert.strictEqual(result._tag, "Answered")
      if (result._tag === "Answered") {
        assert.strictEqual(result.status, 500)
        assert.strictEqual(result.body, "x".repeat(responseLimitBytes))
      }
    })
  )

  it.live("IPv6 literal URLs connect to the literal", () =>
    Effect.gen(function* () {
      const result = yield* send(
        { url: "http://[::1]:1/", body: "{}", headers: {} },
        {
          resolve: (host) => Effect.succeed({ address: host, family: 6 }),
          allowPrivateNetworks: true,
          timeout: "5 seconds"
        }
      )
      // Nobody listens on port 1: refused (or unreachable without IPv6), never a lookup of "[::1]".
      assert.strictEqual(result._tag, "Failed")
      if (result._tag === "Failed") assert.match(result.error, /ECONNREFUSED|EADDRNOTAVAIL|ENETUNREACH/)
    })
  )
})
