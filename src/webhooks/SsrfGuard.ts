/**
 * The SSRF guard: may the service send a request to this host?
 *
 * A webhook URL is the client's to choose, and the request to it leaves from
 * inside our network. So a host is resolved, EVERY address it resolves to is
 * checked, and the caller connects to the address returned here (no second
 * lookup: a name that answers a public address to the check and 127.0.0.1 to
 * the connection — DNS rebinding — never gets that second chance).
 *
 * Refused: loopback, RFC 1918, link-local (169.254.169.254, the cloud
 * metadata service, among them), carrier-grade NAT, unique-local, multicast,
 * unspecified, broadcast, reserved and documentation ranges, IPv6 outside
 * global unicast — and IPv6 addresses that carry a refused IPv4 address
 * (IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4), which reach that IPv4
 * address on a dual-stack host. Only what ipaddr.js calls `unicast` passes:
 * an allow-list, so a range nobody thought of is refused, not let through.
 *
 * `allowPrivateNetworks` (WEBHOOK_ALLOW_PRIVATE_NETWORKS, development and
 * tests) lets every address through, still resolved once.
 */
import { Duration, Effect, Schema } from "effect"
import ipaddr from "ipaddr.js"
import * as Dns from "node:dns"
import * as Net from "node:net"

export class AddressRefused extends Schema.TaggedError<AddressRefused>()("AddressRefused", {
  host: Schema.String,
  address: Schema.String,
  reason: Schema.String
}) {
  // What an attempt's log shows when the guard refuses at delivery time.
  override get message() {
    return `${this.host} resolves to ${this.address} (${this.reason}), which webhooks may not reach`
  }
}

export class HostUnresolvable extends Schema.TaggedError<HostUnresolvable>()("HostUnresolvable", {
  host: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.host} does not resolve: ${this.reason}`
  }
}

export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

const ipv4Reasons: Partial<Record<string, string>> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "carrier-grade NAT",
  private: "private (RFC 1918)"
}

const ipv6Reasons: Partial<Record<string, string>> = {
  unspecified: "unspecified",
  linkLocal: "link-local",
  multicast: "multicast",
  loopback: "loopback",
  uniqueLocal: "unique-local",
  teredo: "reserved (Teredo tunnel)"
}

const ipv4Reason = (address: ipaddr.IPv4): string | undefined => {
  const range = address.range()
  return range === "unicast" ? undefined : (ipv4Reasons[range] ?? "reserved")
}

const ipv4At = (parts: ReadonlyArray<number>, index: number) =>
  new ipaddr.IPv4([parts[index]! >> 8, parts[index]! & 0xff, parts[index + 1]! >> 8, parts[index + 1]! & 0xff])

/** The IPv4 address an IPv6 address carries and reaches, by the form that carries it. */
const embeddedIpv4 = (address: ipaddr.IPv6): { readonly form: string; readonly ipv4: ipaddr.IPv4 } | undefined => {
  const parts = address.parts
  const range = address.range()
  if (range === "ipv4Mapped") return { form: "IPv4-mapped", ipv4: ipv4At(parts, 6) }
  if (range === "rfc6145") return { form: "IPv4-translated", ipv4: ipv4At(parts, 6) }
  if (range === "6to4") return { form: "6to4", ipv4: ipv4At(parts, 1) }
  // 64:ff9b::/96, the well-known NAT64 prefix (64:ff9b:1::/48, local-use, is refused below as a whole).
  if (range === "rfc6052" && parts[2] === 0 && parts[3] === 0 && parts[4] === 0 && parts[5] === 0) {
    return { form: "NAT64", ipv4: ipv4At(parts, 6) }
  }
  // ::a.b.c.d (deprecated "IPv4-compatible"); :: and ::1 are ranges of their own.
  if (parts.slice(0, 6).every((part) => part === 0) && range !== "unspecified" && range !== "loopback") {
    return { form: "IPv4-compatible", ipv4: ipv4At(parts, 6) }
  }
  return undefined
}

const ipv6Reason = (address: ipaddr.IPv6): string | undefined => {
  const embedded = embeddedIpv4(address)
  if (embedded !== undefined) {
    const reason = ipv4Reason(embedded.ipv4)
    if (reason !== undefined) return `${reason} (${embedded.form} form of ${embedded.ipv4.toString()})`
    // A public IPv4 in a form that reaches it is that public address; the deprecated compatible form reaches nothing.
    return embedded.form === "IPv4-compatible" ? "reserved (IPv4-compatible, deprecated)" : undefined
  }
  const range = address.range()
  if (range !== "unicast") return ipv6Reasons[range] ?? "reserved"
  // Outside 2000::/3 nothing is assigned for global unicast.
  return (address.parts[0]! & 0xe000) === 0x2000 ? undefined : "reserved (not global unicast)"
}

/**
 * IPv6 as the WHATWG URL parser writes it (hex groups only, no zone): ipaddr.js
 * reads a dotted tail (`::127.0.0.1`) as IPv4-mapped whatever the groups before it say.
 */
const canonical = (address: string): string =>
  address.includes(":") ? new URL(`http://[${address.split("%")[0]}]`).hostname.slice(1, -1) : address

/**
 * Why a request must not go to `address` (an IPv4 or IPv6 address, IPv6
 * without brackets); `undefined` when it is a public address.
 */
export const refusalReason = (address: string): string | undefined => {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6
  try {
    parsed = ipaddr.parse(canonical(address))
  } catch {
    return "not an IP address"
  }
  return parsed.kind() === "ipv4" ? ipv4Reason(parsed as ipaddr.IPv4) : ipv6Reason(parsed as ipaddr.IPv6)
}

/** How long a lookup may take before the host counts as unresolvable. */
const lookupTimeout = Duration.seconds(10)

const lookupAll = (host: string): Effect.Effect<ReadonlyArray<ResolvedAddress>, HostUnresolvable> =>
  Effect.callback<ReadonlyArray<ResolvedAddress>, HostUnresolvable>((resume) => {
    Dns.lookup(host, { all: true, verbatim: true }, (error, addresses) => {
      if (error !== null) {
        resume(Effect.fail(new HostUnresolvable({ host, reason: error.code ?? error.message })))
      } else {
        resume(
          Effect.succeed(addresses.map((entry) => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 })))
        )
      }
    })
  }).pipe(
    Effect.timeoutOrElse({
      duration: lookupTimeout,
      orElse: () => Effect.fail(new HostUnresolvable({ host, reason: "the lookup timed out" }))
    })
  )

/** Every address of a name (`dns.lookup`'s, or a test's). */
export type Lookup = (host: string) => Effect.Effect<ReadonlyArray<ResolvedAddress>, HostUnresolvable>

/** `resolveAllowed` with its own lookup (tests give a name several addresses). */
export const resolveAllowedWith =
  (lookup: Lookup) =>
  (
    host: string,
    options: { readonly allowPrivateNetworks: boolean }
  ): Effect.Effect<ResolvedAddress, AddressRefused | HostUnresolvable> =>
    Effect.gen(function* () {
      const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host
      const family = Net.isIP(bare)
      const addresses: ReadonlyArray<ResolvedAddress> =
        family === 0 ? yield* lookup(bare) : [{ address: bare, family: family === 6 ? 6 : 4 }]
      if (addresses.length === 0) return yield* new HostUnresolvable({ host, reason: "no addresses" })
      if (!options.allowPrivateNetworks) {
        // Every address, not only the one returned: a client picking another one must not reach a refused one.
        for (const { address } of addresses) {
          const reason = refusalReason(address)
          if (reason !== undefined) return yield* new AddressRefused({ host, address, reason })
        }
      }
      return addresses[0]!
    })

/**
 * Resolves `host` (a name, an IPv4 address, or an IPv6 address, bracketed as
 * in a URL or not) to every address it has; fails if any of them is refused,
 * otherwise answers the first: the address to connect to.
 */
export const resolveAllowed: (
  host: string,
  options: { readonly allowPrivateNetworks: boolean }
) => Effect.Effect<ResolvedAddress, AddressRefused | HostUnresolvable> = resolveAllowedWith(lookupAll)
