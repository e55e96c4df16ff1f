/**
 * A TCP proxy in front of a server (PostgreSQL), so a test can take the
 * database away and give it back without touching the database itself:
 *
 * - `stop`: close the listener and destroy every open connection (the database
 *   is gone: connections reset, new ones refused);
 * - `start`: listen again on the same port;
 * - `pause`: keep everything open but move no bytes, and accept new
 *   connections without answering (a network partition: nothing is refused,
 *   nothing answers);
 * - `resume`: move the held bytes on, as TCP does when a partition heals.
 *
 * With an `Interceptor`, every chunk each way is shown to it first, and it
 * may hold what the server sends on one connection from some point on: the
 * server has done the work, the client never hears of it (e.g. a COMMIT that
 * committed, whose answer is lost — test/support/PgWire.ts finds those).
 *
 * Built scoped: the listener and every connection close with the scope.
 */
import { Context, Effect, Layer } from "effect"
import * as Net from "node:net"

export interface TcpProxyService {
  /** The port the proxy listens on, on 127.0.0.1; the same across `stop`/`start`. */
  readonly port: number
  readonly stop: Effect.Effect<void>
  readonly start: Effect.Effect<void>
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /** Connections currently open through the proxy. */
  readonly connections: Effect.Effect<number>
}

/** Sees the bytes of every proxied connection (numbered from 0 in order of arrival). */
export interface Interceptor {
  readonly fromClient?: ((connection: number, chunk: Buffer) => void) | undefined
  /**
   * "hold": this chunk and everything after it from the server on this connection are never
   * passed on (the connection stays open until either side closes it).
   */
  readonly fromServer?: ((connection: number, chunk: Buffer) => "forward" | "hold") | undefined
}

interface Pair {
  readonly id: number
  readonly client: Net.Socket
  upstream: Net.Socket | undefined
  /** Interceptor listeners attached (once: `link` runs again after every `resume`). */
  wired: boolean
  held: boolean
}

export class TcpProxy extends Context.Service<TcpProxy, TcpProxyService>()("test/TcpProxy") {
  static readonly layer = (target: { readonly host: string; readonly port: number }, interceptor?: Interceptor) =>
    Layer.effect(
      TcpProxy,
      Effect.gen(function* () {
        const pairs = new Set<Pair>()
        let paused = false
        let connections = 0

        const destroy = (pair: Pair) => {
          pairs.delete(pair)
          pair.client.destroy()
          pair.upstream?.destroy()
        }

        const link = (pair: Pair) => {
          const upstream = pair.upstream ?? Net.connect(target.port, target.host)
          if (pair.upstream === undefined) {
            pair.upstream = upstream
            upstream.on("error", () => destroy(pair))
            upstream.on("close", () => destroy(pair))
          }
          if (interceptor === undefined) {
            pair.client.pipe(upstream)
            upstream.pipe(pair.client)
            return
          }
          if (!pair.wired) {
            pair.wired = true
            pair.client.on("data", (chunk: Buffer) => {
              interceptor.fromClient?.(pair.id, chunk)
              upstream.write(chunk)
            })
            upstream.on("data", (chunk: Buffer) => {
              if (pair.held) return
              if (interceptor.fromServer?.(pair.id, chunk) === "hold") pair.held = true
              else pair.client.write(chunk)
            })
          }
          pair.client.resume()
          upstream.resume()
        }

        const unlink = (pair: Pair) => {
          pair.client.unpipe()
          pair.client.pause()
          if (pair.upstream !== undefined) {
            pair.upstream.unpipe()
            pair.upstream.pause()
          }
        }

        const server = Net.createServer((client) => {
          const pair: Pair = { id: connections++, client, upstream: undefined, wired: false, held: false }
          pairs.add(pair)
          client.on("error", () => destroy(pair))
          client.on("close", () => destroy(pair))
          if (paused) client.pause()
          else link(pair)
        })

        const listen = (port: number) =>
          Effect.callback<number>((resume) => {
            const onError = (error: Error) => resume(Effect.die(error))
            server.once("error", onError)
            server.listen(port, "127.0.0.1", () => {
              server.off("error", onError)
              resume(Effect.succeed((server.address() as Net.AddressInfo).port))
            })
          })

        const port = yield* listen(0)

        const stop = Effect.callback<void>((resume) => {
          if (!server.listening) return resume(Effect.void)
          server.close(() => resume(Effect.void))
          for (const pair of pairs) destroy(pair)
        })

        const start = Effect.suspend(() => (server.listening ? Effect.void : Effect.asVoid(listen(port))))

        const pause = Effect.sync(() => {
          paused = true
          for (const pair of pairs) unlink(pair)
        })

        const resume = Effect.sync(() => {
          paused = false
          for (const pair of pairs) link(pair)
        })

        yield* Effect.addFinalizer(() => stop)

        return TcpProxy.of({ port, stop, start, pause, resume, connections: Effect.sync(() => pairs.size) })
      })
    )
}

/** `url` with its host and port replaced by the proxy's. */
export const throughProxy = (url: string, port: number): string => {
  const parsed = new URL(url)
  parsed.hostname = "127.0.0.1"
  parsed.port = String(port)
  return parsed.toString()
}
