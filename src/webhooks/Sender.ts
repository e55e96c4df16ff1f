/**
 * One delivery attempt: a POST of the event body to the endpoint, over
 * node:http / node:https, to the address the SSRF guard checked.
 *
 * The host is resolved once, by `resolve` (in the service: SsrfGuard.resolveAllowed,
 * which refuses loopback, private, link-local… addresses), and the socket goes
 * to exactly that address: `Host` and the TLS server name come from the URL,
 * so nothing looks the name up a second time (a DNS answer that changes
 * between check and connect — rebinding — cannot slip past the guard).
 *
 * Redirects are not followed (node's client never does): a 3xx is an answer
 * like any other non-2xx, a failure. The first 1 KiB of the response is kept
 * for the attempt log; the rest is not read. The whole attempt — resolving,
 * connecting, the answer and that first KiB — has one timeout; an interrupted
 * attempt destroys its socket.
 */
import { Duration, Effect } from "effect"
import * as Dns from "node:dns"
import * as Http from "node:http"
import * as Https from "node:https"
import { isIP } from "node:net"

/** An address the guard allowed: the socket connects to it and nothing else. */
export interface CheckedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** Why a host may not be contacted (the guard's AddressRefused / HostUnresolvable fit this shape). */
export interface ResolveFailure {
  readonly _tag: string
  readonly message?: string | undefined
}

/** Resolves and checks a host name (without brackets): SsrfGuard.resolveAllowed's signature. */
export type Resolve = (
  host: string,
  options: { readonly allowPrivateNetworks: boolean }
) => Effect.Effect<CheckedAddress, ResolveFailure>

/**
 * The operating system's resolver with no check at all: for tests and for
 * library users who bring no guard. The service passes SsrfGuard.resolveAllowed.
 */
export const resolveUnchecked: Resolve = (host) => {
  const literal = isIP(host)
  if (literal !== 0) return Effect.succeed({ address: host, family: literal as 4 | 6 })
  return Effect.callback<CheckedAddress, ResolveFailure>((resume) => {
    Dns.lookup(host, (error, address, family) => {
      if (error !== null)
        resume(Effect.fail({ _tag: "HostUnresolvable", message: `${host}: ${error.code ?? error.message}` }))
      else resume(Effect.succeed({ address, family: family === 6 ? 6 : 4 }))
    })
  })
}

/** What one attempt came to. */
export type AttemptResult =
  | {
      readonly _tag: "Answered"
      readonly status: number
      /** The Retry-After header, as sent. */
      readonly retryAfter: string | undefined
      /** The first 1 KiB of the body, as text. */
      readonly body: string
    }
  | { readonly _tag: "Failed"; readonly error: string }

export const responseLimitBytes = 1024

export const userAgent = "formula-intake-webhooks/0.1 (+Standard Webhooks)"

export interface SendOptions {
  readonly resolve: Resolve
  readonly allowPrivateNetworks: boolean
  readonly timeout: Duration.Input
  /** Connections kept alive between attempts; destroyed with `close`. */
  readonly agents?: Agents | undefined
}

export interface Agents {
  readonly http: Http.Agent
  readonly https: Https.Agent
}

export const makeAgents = (): Agents => ({
  http: new Http.Agent({ keepAlive: true }),
  https: new Https.Agent({ keepAlive: true })
})

export const closeAgents = (agents: Agents) => {
  agents.http.destroy()
  agents.https.destroy()
}

/** The attempt's request: the URL, the body, and the event's headers (signature etc.). */
export interface AttemptRequest {
  readonly url: string
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
}

const describe = (error: unknown): string => {
  const e = error as NodeJS.ErrnoException
  return e.code !== undefined ? `${e.code}: ${e.message}` : String(e?.message ?? error)
}

/** POSTs to `address` what `url` names, with `Host` and TLS server name of the URL. */
const post = (url: URL, address: CheckedAddress, request: AttemptRequest, agents: Agents | undefined) =>
  Effect.callback<AttemptResult>((resume) => {
    const secure = url.protocol === "https:"
    const hostname = url.hostname.replace(/^\[|\]$/g, "")
    const body = Buffer.from(request.body, "utf8")
    let settled = false
    const finish = (result: AttemptResult) => {
      if (settled) return
      settled = true
      resume(Effect.succeed(result))
    }
    const options: Https.RequestOptions = {
      method: "POST",
      host: address.address,
      family: address.family,
      port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: {
        ...request.headers,
        host: url.host,
        "content-type": "application/json",
        "content-length": String(body.length),
        "user-agent": userAgent
      },
      agent: agents === undefined ? false : secure ? agents.https : agents.http,
      // The certificate must match the URL's name, not the address we connect to.
      ...(secure && isIP(hostname) === 0 ? { servername: hostname } : {})
    }
    const req = (secure ? Https : Http).request(options, (res) => {
      const chunks: Array<Buffer> = []
      let kept = 0
      const done = () => {
        const retryAfter = res.headers["retry-after"]
        finish({
          _tag: "Answered",
          status: res.statusCode ?? 0,
          retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
          body: Buffer.concat(chunks).subarray(0, responseLimitBytes).toString("utf8")
        })
      }
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk)
        kept += chunk.length
        // Enough for the log: stop reading (the connection is not reused).
        if (kept >= responseLimitBytes) {
          done()
          res.destroy()
        }
      })
      res.on("end", done)
      res.on("error", done)
      res.on("aborted", done)
    })
    req.on("error", (error) => finish({ _tag: "Failed", error: describe(error) }))
    req.end(body)
    return Effect.sync(() => {
      settled = true
      req.destroy()
    })
  })

/** One attempt; never fails: every problem is a `Failed` result naming it. */
export const send = (request: AttemptRequest, options: SendOptions): Effect.Effect<AttemptResult> =>
  Effect.gen(function* () {
    let url: URL
    try {
      url = new URL(request.url)
    } catch {
      return { _tag: "Failed", error: `not a URL: ${request.url}` } as const
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return { _tag: "Failed", error: `not http or https: ${url.protocol}` } as const
    }
    const hostname = url.hostname.replace(/^\[|\]$/g, "")
    const address = yield* Effect.result(
      options.resolve(hostname, { allowPrivateNetworks: options.allowPrivateNetworks })
    )
    if (address._tag === "Failure") {
      const failure = address.failure
      return {
        _tag: "Failed",
        error: `${failure._tag}${failure.message === undefined || failure.message === "" ? "" : `: ${failure.message}`}`
      } as const
    }
    return yield* post(url, address.success, request, options.agents)
  }).pipe(
    Effect.timeoutOrElse({
      duration: options.timeout,
      orElse: () =>
        Effect.succeed<AttemptResult>({
          _tag: "Failed",
          error: `timed out after ${Duration.format(Duration.fromInputUnsafe(options.timeout))}`
        })
    })
  )
