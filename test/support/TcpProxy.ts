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

interface Pair {
  readonly client: Net.Socket
  upstream: Net.Socket | undefined
}

export class TcpProxy extends Context.Service<TcpProxy, TcpProxyService>()("test/TcpProxy") {
  static readonly layer = (target: { readonly host: string; readonly port: number }) =>
    Layer.effect(
      TcpProxy,
      Effect.gen(function* () {
        const pairs = new Set<Pair>()
        let paused = false

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
          pair.client.pipe(upstream)
          upstream.pipe(pair.client)
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
          const pair: Pair = { client, upstream: undefined }
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
