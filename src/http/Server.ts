/**
 * The HTTP server: the API's routes, the OpenAPI document, an offline docs
 * page, and the runtime they call, on a Node `http` server.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Effect, Exit, Layer, Runtime as EffectRuntime } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiScalar, OpenApi } from "effect/http-api"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import * as Runtime from "../Runtime.ts"
import * as JsonLines from "../observability/JsonLines.ts"
import { Api, ServedApi } from "./Api.ts"
import { FormulasHandlers, SystemHandlers } from "./FormulasHandlers.ts"
import { makeQueueHandlers } from "./QueueHandlers.ts"
import { SubmitRoute } from "./SubmitRoute.ts"
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
          Layer.provide([FormulasHandlers, SystemHandlers, makeQueueHandlers(ServedApi)]),
          Layer.provide(layerRequestProblems)
        ),
        SubmitRoute,
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

/**
 * Routes served on `PORT`, with `runtime` behind them.
 *
 * The runtime is built first and the socket opened after it: a server that
 * listened while the database was still starting would accept connections it
 * has no handler for yet, and those requests would hang. Closing runs the
 * other way round: stop accepting and finish requests, then the runtime.
 */
export const serve = <E, R>(runtime: Layer.Layer<Runtime.RuntimeServices, E, R>) =>
  // The platform's request logger is off: it cost ~8% of a request's CPU (npm run bench).
  // ResponseMiddleware writes a cheaper access log line instead.
  HttpRouter.serve(routes, { disableLogger: true }).pipe(
    Layer.provide(
      NodeHttpServer.layerConfig(createServer, {
        port: Config.withDefault(Config.Port("PORT"), 8080),
        gracefulShutdownTimeout: Config.succeed("10 seconds")
      })
    ),
    Layer.provide(runtime)
  )

// LOG_FORMAT=json writes log lines through the batched JSON-lines logger. The logging configuration
// (LOG_LEVEL, LOG_FORMAT and its default, lifecycle lines) belongs to observability/Logging.ts, another
// change: this is only what the access log's benchmark (npm run bench) needs until that lands.
const logFormat = Layer.unwrap(
  Effect.map(Config.withDefault(Config.String("LOG_FORMAT"), ""), (format) =>
    format === "json" ? JsonLines.layer : Layer.empty
  )
)

export const layer = serve(Runtime.layer).pipe(Layer.provide(logFormat))

// SIGINT/SIGTERM interrupt the server: that is the normal way to stop it, so
// exit 0 (the default maps interruption to 130, which process supervisors
// record as a failure).
const teardown: EffectRuntime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : EffectRuntime.defaultTeardown(exit, onExit)

/** Runs the server until SIGINT/SIGTERM, then closes it (finishing in-flight requests) and the database. */
export const launch = () => Layer.launch(layer).pipe(NodeRuntime.runMain({ teardown }))
