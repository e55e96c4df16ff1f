/**
 * A real node:http server on 127.0.0.1 that receives webhook attempts: it
 * keeps every request (path, headers, body), answers as the test says (or
 * holds the request open), and counts requests in progress per path and
 * `webhook-id`, so a test can tell whether one attempt was sent twice at once.
 */
import { Deferred, Effect } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"

export interface Received {
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
  /** Real time of arrival (ms), for the benchmark only. */
  readonly arrivedAt: number
}

export type Answer =
  | { readonly status: number; readonly headers?: Readonly<Record<string, string>>; readonly body?: string }
  /** Keep the request open until `release()` or the receiver closes. */
  | "hold"
  /** Wait `ms` of real time, then answer. */
  | { readonly delayMs: number; readonly then: Answer }

export interface Receiver {
  readonly port: number
  readonly url: (path: string) => string
  readonly received: Array<Received>
  /** Requests on `path`. */
  readonly on: (path: string) => ReadonlyArray<Received>
  /** The most requests with one path and webhook-id that were in progress at once. */
  readonly maxConcurrentPerId: () => number
  /** Requests in progress now on `path`. */
  readonly inProgress: (path: string) => number
  /** Answers every held request with `status`. */
  readonly release: (status?: number) => void
  /** Completes once `count` requests arrived on `path` (any path when undefined). */
  readonly awaitCount: (count: number, path?: string) => Effect.Effect<void>
}

/** `answer(request, n)` decides the answer to the n-th request (0-based) on that path. */
export const makeReceiver = (answer: (request: Received, index: number) => Answer = () => ({ status: 204 })) =>
  Effect.acquireRelease(
    Effect.callback<{ receiver: Receiver; server: Http.Server }>((resume) => {
      const received: Array<Received> = []
      const held: Array<Http.ServerResponse> = []
      const inProgress = new Map<string, number>()
      let maxConcurrent = 0
      const waiters: Array<{ count: number; path: string | undefined; done: () => void }> = []
      const countOn = (path: string | undefined) =>
        path === undefined ? received.length : received.filter((r) => r.path === path).length
      const notify = () => {
        for (const waiter of [...waiters]) {
          if (countOn(waiter.path) >= waiter.count) {
            waiters.splice(waiters.indexOf(waiter), 1)
            waiter.done()
          }
        }
      }
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const path = req.url ?? "/"
          const request: Received = {
            path,
            headers: req.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            arrivedAt: Date.now()
          }
          const index = countOn(path)
          received.push(request)
          const key = `${path} ${req.headers["webhook-id"]}`
          const now = (inProgress.get(key) ?? 0) + 1
          inProgress.set(key, now)
          maxConcurrent = Math.max(maxConcurrent, now)
          const byPath = `path ${path}`
          inProgress.set(byPath, (inProgress.get(byPath) ?? 0) + 1)
          res.on("close", () => {
            inProgress.set(key, inProgress.get(key)! - 1)
            inProgress.set(byPath, inProgress.get(byPath)! - 1)
          })
          const respond = (a: Answer) => {
            if (a === "hold") {
              held.push(res)
            } else if ("delayMs" in a) {
              setTimeout(() => respond(a.then), a.delayMs)
            } else {
              res.writeHead(a.status, a.headers).end(a.body ?? "")
            }
          }
          respond(answer(request, index))
          notify()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as Net.AddressInfo).port
        resume(
          Effect.succeed({
            server,
            receiver: {
              port,
              url: (path) => `http://127.0.0.1:${port}${path}`,
              received,
              on: (path) => received.filter((r) => r.path === path),
              maxConcurrentPerId: () => maxConcurrent,
              inProgress: (path) => inProgress.get(`path ${path}`) ?? 0,
              release: (status = 204) => {
                for (const res of held.splice(0)) if (!res.destroyed) res.writeHead(status).end()
              },
              awaitCount: (count, path) =>
                Effect.gen(function* () {
                  const done = yield* Deferred.make<void>()
                  waiters.push({ count, path, done: () => Deferred.doneUnsafe(done, Effect.void) })
                  notify()
                  yield* Deferred.await(done)
                })
            }
          })
        )
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ receiver }) => receiver))
