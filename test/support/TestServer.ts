/**
 * The whole application on a real socket (an ephemeral port on 127.0.0.1),
 * on a given database. Tests talk to it with plain `fetch`, so they see
 * exactly the bytes a client would: status, headers and body.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { createServer } from "node:http"
import { makeRoutes } from "../../src/http/Server.ts"
import * as Runtime from "../../src/Runtime.ts"
import type { DatabaseLayer } from "./Databases.ts"

/** Where the test server listens, e.g. `http://127.0.0.1:40123`. */
export class BaseUrl extends Context.Service<BaseUrl, string>()("test/BaseUrl") {}

const baseUrl = Layer.effect(
  BaseUrl,
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    return HttpServer.formatAddress(server.address)
  })
)

export interface TestServerOptions {
  /** Access log lines: on, off (the default), or as the ACCESS_LOG setting says. */
  readonly accessLog?: boolean | "ACCESS_LOG"
  /** Queue, cache and relay settings; default: from the environment. */
  readonly runtime?: Runtime.RuntimeOptions
}

/**
 * The application and its runtime services, served on `database`. No access
 * log lines unless asked for (test/http/accessLog.test.ts captures them).
 */
export const testServer = (database: DatabaseLayer, options: TestServerOptions = {}) =>
  HttpRouter.serve(
    makeRoutes({ accessLog: options.accessLog === "ACCESS_LOG" ? undefined : (options.accessLog ?? false) }),
    { disableLogger: true, disableListenLog: true }
  ).pipe(
    Layer.provideMerge(baseUrl),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(Runtime.layerWith(database, options.runtime))
  )

export interface JsonResponse {
  readonly status: number
  readonly headers: Headers
  readonly json: any
  readonly text: string
}

/** Any request, sent as given (raw bytes, streams, any or no content type); the answer read whole. */
export const send = (path: string, init: RequestInit & { readonly duplex?: "half" }) =>
  Effect.gen(function* () {
    const base = yield* BaseUrl
    const response = yield* Effect.promise((signal) => fetch(base + path, { signal, ...init }))
    const text = yield* Effect.promise(() => response.text())
    let json: unknown = undefined
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, headers: response.headers, json, text } satisfies JsonResponse as JsonResponse
  })

/** One HTTP request; `body` objects are sent as JSON, strings as they are. */
export const request = (
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly headers?: Record<string, string> } = {}
) => {
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === "string"
        ? options.body
        : JSON.stringify(options.body)
  return send(path, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
    ...(body === undefined ? {} : { body })
  })
}
