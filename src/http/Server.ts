/**
 * The HTTP server: the API's routes, the OpenAPI document, an offline docs
 * page, and the runtime they call, on a Node `http` server.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Duration, Effect, Exit, Layer, Runtime as EffectRuntime } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiScalar, OpenApi } from "effect/http-api"
import { PrometheusMetrics } from "effect/observability"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Runtime from "../Runtime.ts"
import * as Settings from "../Settings.ts"
import { StartupFailed } from "../Settings.ts"
import * as Logging from "../observability/Logging.ts"
import { MessageQueue } from "../queue/MessageQueue.ts"
import { reasonOf } from "../store/Database.ts"
import { Api, ServedApi } from "./Api.ts"
import { DashboardRoute } from "./DashboardRoute.ts"
import { FormulasHandlers, SystemHandlers } from "./FormulasHandlers.ts"
import { StatsHandlers } from "./StatsHandlers.ts"
import { makeQueueHandlers } from "./QueueHandlers.ts"
import { SubmitRoute } from "./SubmitRoute.ts"
import { WebhooksHandlers } from "./WebhooksHandlers.ts"
import { layerRequestProblems } from "./RequestProblems.ts"
import { responseMiddleware } from "./ResponseMiddleware.ts"
import { recorded, RouteTable } from "./RouteTable.ts"

// The document describes the whole API, POST /formulas included (ServedApi leaves it to SubmitRoute);
// built once, at the first request.
let openApi: HttpServerResponse.HttpServerResponse | undefined
const openApiDocument = HttpRouter.add(
  "GET",
  "/openapi.json",
  Effect.sync(() => (openApi ??= HttpServerResponse.jsonUnsafe(OpenApi.fromApi(Api))))
)

/**
 * All routes, needing only the runtime's services, behind the middleware every
 * answer goes through (ResponseMiddleware.ts). Access log lines as ACCESS_LOG
 * says, unless `accessLog` is given.
 */
export const makeRoutes = (options: { readonly accessLog?: boolean | undefined } = {}) =>
  Layer.mergeAll(
    recorded(
      Layer.mergeAll(
        HttpApiBuilder.layer(ServedApi).pipe(
          Layer.provide([
            FormulasHandlers,
            SystemHandlers,
            WebhooksHandlers,
            StatsHandlers,
            makeQueueHandlers(ServedApi)
          ]),
          Layer.provide(layerRequestProblems)
        ),
        SubmitRoute,
        DashboardRoute,
        openApiDocument,
        // Every tag open, so the sidebar lists every operation; no separate models section (each operation shows
        // its schemas, and the component names carry Effect's "Encoded" suffix). Tested in Chromium: docsPage.test.ts.
        HttpApiScalar.layer(Api, {
          path: "/docs",
          scalar: { withDefaultFonts: false, defaultOpenAllTags: true, hideModels: true }
        }),
        PrometheusMetrics.layerHttp({ path: "/metrics" })
      )
    ),
    responseMiddleware(options)
  ).pipe(Layer.provide(RouteTable.layer))

export const routes = makeRoutes()

export interface ServeOptions {
  readonly port: number
  /** The interface to listen on; default all. */
  readonly host?: string | undefined
  /** How long in-flight requests may run on after shutdown begins before they are cut; default 10 s. */
  readonly gracefulShutdownTimeout?: Duration.Input | undefined
}

/** Why the server cannot listen, naming the setting to change. */
const listenFailure = (error: unknown, options: ServeOptions): StartupFailed => {
  const code = (error as NodeJS.ErrnoException).code
  const host = options.host === undefined ? "all interfaces" : `HOST=${options.host}`
  const message =
    code === "EADDRINUSE"
      ? `PORT=${options.port}: the port is already in use (${host}); stop the other process or choose another PORT`
      : code === "EACCES"
        ? `PORT=${options.port}: not allowed to listen on this port (ports below 1024 need privileges)`
        : code === "EADDRNOTAVAIL"
          ? `HOST=${options.host}: not an address of this machine`
          : code === "ENOTFOUND" || code === "EAI_AGAIN"
            ? `HOST=${options.host}: the name does not resolve`
            : `PORT=${options.port} (${host}): cannot listen: ${(error as Error).message ?? error}`
  return new StartupFailed({ message })
}

/**
 * Fails at once if `PORT` cannot be listened on (in use, not permitted, a
 * `HOST` that is not ours): checked before the database is opened, so a port
 * in use is reported in milliseconds, not after the database has started.
 */
export const checkPort = (options: ServeOptions): Effect.Effect<void, StartupFailed> =>
  Effect.callback<void, StartupFailed>((resume) => {
    const probe = Net.createServer()
    probe.once("error", (error) => resume(Effect.fail(listenFailure(error, options))))
    probe.listen({ port: options.port, host: options.host }, () => probe.close(() => resume(Effect.void)))
  })

const urlOf = (address: Net.AddressInfo | string | null): string =>
  address === null || typeof address === "string"
    ? String(address)
    : `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`

/**
 * The server's lifecycle around the running routes: logs where it listens,
 * and when shutdown begins (its finalizer runs before the routes' and the
 * runtime's): stops accepting, answers waiting long polls at once with no
 * messages, lets in-flight requests finish (for at most the grace period),
 * then the runtime closes (the database last).
 */
const lifecycle = (server: Http.Server, grace: Duration.Input) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const queue = yield* MessageQueue
      const address = urlOf(server.address())
      yield* Effect.logInfo(`listening on ${address}`).pipe(Effect.annotateLogs({ address }))
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* Effect.logInfo("shutting down")
          const closed = new Promise<void>((resolve) => server.close(() => resolve()))
          yield* queue.stopWaiting
          // close() drops only the connections idle at that moment; a kept-alive
          // connection whose request finishes later would hold the server open
          // until the client's keep-alive timeout (seconds), so drop those as they go idle.
          const idle = setInterval(() => server.closeIdleConnections(), 20)
          yield* Effect.promise(() => closed).pipe(
            Effect.timeoutOrElse({ duration: grace, orElse: () => Effect.sync(() => server.closeAllConnections()) }),
            Effect.ensuring(Effect.sync(() => clearInterval(idle)))
          )
        })
      )
    })
  )

/**
 * Routes served on `options.port`, with `runtime` behind them.
 *
 * The runtime is built first and the socket opened after it: a server that
 * listened while the database was still starting would accept connections it
 * has no handler for yet, and those requests would hang. Closing runs the
 * other way round (see `lifecycle`): stop accepting and finish requests, then the runtime.
 */
export const serve = <E, R>(runtime: Layer.Layer<Runtime.RuntimeServices, E, R>, options: ServeOptions) =>
  Layer.unwrap(
    Effect.sync(() => {
      const server = Http.createServer()
      const grace = options.gracefulShutdownTimeout ?? Duration.seconds(10)
      const listening = NodeHttpServer.layer(() => server, {
        port: options.port,
        host: options.host,
        gracefulShutdownTimeout: grace
      }).pipe(Layer.catchTag("ServeError", (error) => failing(listenFailure(error.cause, options))))
      // The platform's request logger is off: it cost ~8% of a request's CPU (npm run bench).
      // ResponseMiddleware writes a cheaper access log line instead.
      const app = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provide(listening)
      )
      return lifecycle(server, grace).pipe(Layer.provide(app), Layer.provide(runtime))
    })
  )

/** A layer that fails; of any output type, so it can stand in for the one that could not be built. */
const failing = <A>(error: StartupFailed): Layer.Layer<A, StartupFailed> => {
  const failed: Effect.Effect<Layer.Layer<A>, StartupFailed> = Effect.fail(error)
  return Layer.unwrap(failed)
}

/** The server as the environment describes it (library use; `launch` adds the logger and the checks). */
export const layer = Layer.unwrap(
  Effect.map(Settings.load, (settings) =>
    serve(Runtime.layerFromSettings(settings), { port: settings.port, host: settings.host })
  )
)

/** A failure already told to the operator: exit 1 without Effect's error report (a stack trace). */
class Reported extends Error {
  override readonly [EffectRuntime.errorReported] = false
}

// SIGINT/SIGTERM interrupt the server: that is the normal way to stop it, so
// exit 0 (the default maps interruption to 130, which process supervisors
// record as a failure).
const teardown: EffectRuntime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : EffectRuntime.defaultTeardown(exit, onExit)

/** With valid settings: the port checked, then the database and the runtime, then the socket, until interrupted. */
const run = (settings: Settings.Settings) =>
  Effect.gen(function* () {
    const options = { port: settings.port, host: settings.host }
    yield* checkPort(options)
    return yield* Layer.launch(serve(Runtime.layerFromSettings(settings), options))
  }).pipe(
    Effect.onInterrupt(() => Effect.logInfo("stopped")),
    // Whatever stops start-up is told as one plain line, never as a stack trace.
    Effect.catch((error) =>
      Effect.andThen(
        Effect.logError(error instanceof StartupFailed ? error.message : `start-up failed: ${reasonOf(error)}`),
        Effect.fail(new Reported())
      )
    ),
    Effect.provide(Logging.layer({ level: settings.logLevel, format: settings.logFormat }))
  )

/**
 * Runs the server with `settings` (read and checked by `Settings.loadSync`,
 * main.ts) until SIGINT/SIGTERM, then closes it (answering long polls,
 * finishing in-flight requests) and the database. Exit 0 after a signal, 1
 * when it cannot start.
 */
export const launch = (settings: Settings.Settings) => run(settings).pipe(NodeRuntime.runMain({ teardown }))
