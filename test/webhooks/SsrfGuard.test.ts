/**
 * The SSRF guard's address table (no database): every refused range, the
 * IPv6 forms that carry a refused IPv4 address, public addresses that pass,
 * and a name that resolves to loopback. It protects the rule that a webhook
 * request never goes to an address inside our network.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { refusalReason, resolveAllowed, resolveAllowedWith } from "../../src/webhooks/SsrfGuard.ts"

/** address → why it is refused, or undefined for a public address. */
const table: ReadonlyArray<readonly [string, string | undefined]> = [
  // IPv4
  ["127.0.0.1", "loopback"],
  ["127.255.0.9", "loopback"],
  ["10.0.0.1", "private (RFC 1918)"],
  ["10.255.255.255", "private (RFC 1918)"],
  ["172.16.0.1", "private (RFC 1918)"],
  ["172.31.255.254", "private (RFC 1918)"],
  ["192.168.1.1", "private (RFC 1918)"],
  ["169.254.169.254", "link-local"],
  ["100.64.0.1", "carrier-grade NAT"],
  ["100.127.255.254", "carrier-grade NAT"],
  ["0.0.0.0", "unspecified"],
  ["224.0.0.1", "multicast"],
  ["239.255.255.250", "multicast"],
  ["255.255.255.255", "broadcast"],
  ["192.0.2.10", "reserved"],
  ["240.0.0.1", "reserved"],
  ["172.15.255.255", undefined],
  ["172.32.0.1", undefined],
  ["100.128.0.1", undefined],
  ["8.8.8.8", undefined],
  ["93.184.215.14", undefined],
  // IPv6
  ["::1", "loopback"],
  ["::", "unspecified"],
  ["fe80::1", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["fc00::1", "unique-local"],
  ["fd00::1", "unique-local"],
  ["fd12:3456:789a::1", "unique-local"],
  ["ff02::1", "multicast"],
  ["2001:db8::1", "reserved"],
  ["4000::1", "reserved (not global unicast)"],
  ["2001:4860:4860::8888", undefined],
  ["2606:4700:4700::1111", undefined],
  // IPv6 carrying IPv4
  ["::ffff:127.0.0.1", "loopback (IPv4-mapped form of 127.0.0.1)"],
  ["::ffff:7f00:1", "loopback (IPv4-mapped form of 127.0.0.1)"],
  ["::ffff:10.0.0.1", "private (RFC 1918) (IPv4-mapped form of 10.0.0.1)"],
  ["::ffff:169.254.169.254", "link-local (IPv4-mapped form of 169.254.169.254)"],
  ["::ffff:8.8.8.8", undefined],
  ["::127.0.0.1", "loopback (IPv4-compatible form of 127.0.0.1)"],
  ["::7f00:1", "loopback (IPv4-compatible form of 127.0.0.1)"],
  ["::8.8.8.8", "reserved (IPv4-compatible, deprecated)"],
  ["::ffff:0:10.0.0.1", "private (RFC 1918) (IPv4-translated form of 10.0.0.1)"],
  ["64:ff9b::127.0.0.1", "loopback (NAT64 form of 127.0.0.1)"],
  ["64:ff9b::a9fe:a9fe", "link-local (NAT64 form of 169.254.169.254)"],
  ["64:ff9b::8.8.8.8", undefined],
  ["64:ff9b:1::1", "reserved"],
  ["2002:7f00:1::1", "loopback (6to4 form of 127.0.0.1)"],
  ["2002:c0a8:101::1", "private (RFC 1918) (6to4 form of 192.168.1.1)"],
  ["2002:808:808::1", undefined],
  // not an address at all
  ["example.com", "not an IP address"]
]

describe("SsrfGuard", () => {
  describe("refusalReason", () => {
    for (const [address, reason] of table) {
      it(`${address} → ${reason ?? "allowed"}`, () => {
        assert.strictEqual(refusalReason(address), reason)
      })
    }
  })

  describe("resolveAllowed", () => {
    const refused = { allowPrivateNetworks: false }
    const allowed = { allowPrivateNetworks: true }

    it.effect("a name that resolves to loopback is refused, naming the address", () =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(resolveAllowed("localhost", refused))
        assert.isTrue(Exit.isFailure(exit))
        const error = yield* Effect.flip(resolveAllowed("localhost", refused))
        assert.strictEqual(error._tag, "AddressRefused")
        if (error._tag === "AddressRefused") {
          assert.strictEqual(error.host, "localhost")
          assert.strictEqual(error.reason, "loopback")
          assert.include(["127.0.0.1", "::1"], error.address)
        }
      })
    )

    it.effect("…and allowed, resolved, with WEBHOOK_ALLOW_PRIVATE_NETWORKS", () =>
      Effect.gen(function* () {
        const resolved = yield* resolveAllowed("localhost", allowed)
        assert.include(["127.0.0.1", "::1"], resolved.address)
        assert.strictEqual(resolved.family, resolved.address === "::1" ? 6 : 4)
      })
    )

    it.effect("literals, bracketed IPv6 included, are checked without a lookup", () =>
      Effect.gen(function* () {
        const loopback6 = yield* Effect.flip(resolveAllowed("[::1]", refused))
        assert.deepInclude(loopback6, { _tag: "AddressRefused", address: "::1", reason: "loopback" })
        const mapped = yield* Effect.flip(resolveAllowed("[::ffff:7f00:1]", refused))
        assert.strictEqual(mapped._tag, "AddressRefused")
        const metadata = yield* Effect.flip(resolveAllowed("169.254.169.254", refused))
        assert.deepInclude(metadata, { _tag: "AddressRefused", reason: "link-local" })
        assert.deepStrictEqual(yield* resolveAllowed("8.8.8.8", refused), { address: "8.8.8.8", family: 4 })
        assert.deepStrictEqual(yield* resolveAllowed("[2001:4860:4860::8888]", refused), {
          address: "2001:4860:4860::8888",
          family: 6
        })
      })
    )

    it.effect("a name is refused if ANY of its addresses is, and answers the first when all are allowed", () =>
      Effect.gen(function* () {
        const resolving =
          (...addresses: Array<string>) =>
          () =>
            Effect.succeed(addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }) as const))
        const mixed = yield* Effect.flip(
          resolveAllowedWith(resolving("8.8.8.8", "10.0.0.1"))("rebind.example", refused)
        )
        assert.deepInclude(mixed, { _tag: "AddressRefused", address: "10.0.0.1", reason: "private (RFC 1918)" })
        const mapped = yield* Effect.flip(
          resolveAllowedWith(resolving("2001:4860:4860::8888", "::ffff:169.254.169.254"))("rebind.example", refused)
        )
        assert.deepInclude(mapped, { _tag: "AddressRefused", address: "::ffff:169.254.169.254" })
        const publicOnly = yield* resolveAllowedWith(resolving("1.1.1.1", "8.8.8.8"))("public.example", refused)
        assert.deepStrictEqual(publicOnly, { address: "1.1.1.1", family: 4 })
        const none = yield* Effect.flip(resolveAllowedWith(resolving())("empty.example", refused))
        assert.strictEqual(none._tag, "HostUnresolvable")
      })
    )

    it.effect("a name that does not resolve is HostUnresolvable", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(resolveAllowed("no-such-host.invalid", refused))
        assert.strictEqual(error._tag, "HostUnresolvable")
      })
    )
  })
})
