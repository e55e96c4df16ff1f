/**
 * Which methods each path serves, so that a request the router cannot match
 * is answered truthfully: a path nothing serves is a 404, a path served for
 * other methods a 405 whose `Allow` lists them (RFC 9110 §15.5.6).
 *
 * The router keeps its routes to itself, so the table is filled by the routes
 * themselves: `recorded(routes)` hands them a router that writes every route
 * into the table as it passes it on. Nothing is listed by hand, so a route
 * added later cannot be forgotten here.
 */
import { Context, Effect, Layer } from "effect"
import { FindMyWay, HttpRouter } from "effect/http"

type Record = (method: string, path: string) => void

const recording = (router: HttpRouter.HttpRouter, record: Record): HttpRouter.HttpRouter =>
  HttpRouter.HttpRouter.of({
    ...router,
    prefixed: (prefix) =>
      recording(router.prefixed(prefix), (method, path) => record(method, HttpRouter.prefixPath(path, prefix))),
    add: (method, path, handler, options) =>
      Effect.map(router.add(method, path, handler, options), () => record(method, path)),
    addAll: (routes) =>
      Effect.map(router.addAll(routes), () => {
        for (const route of routes) record(route.method, route.path)
      })
  })

export class RouteTable extends Context.Service<
  RouteTable,
  {
    readonly record: Record
    /** The methods `url`'s path is served for (HEAD wherever GET is, as the router does); empty if none. */
    readonly allowed: (url: string) => ReadonlyArray<string>
  }
>()("formula-intake/http/RouteTable") {
  static readonly layer = Layer.sync(RouteTable, () => {
    const paths = FindMyWay.make<true>()
    const methods = new Set<string>()
    const add = (method: string, path: string) => {
      // A route for every method ("*") is never missed by the router: no 405 can concern its path.
      if (method === "*") return
      paths.on(method, path as FindMyWay.PathInput, true)
      methods.add(method)
    }
    return RouteTable.of({
      record: (method, path) => {
        // As the router registers them: "/a/*" also matches "/a".
        add(method, path)
        if (path.endsWith("/*")) add(method, path.slice(0, -2))
      },
      allowed: (url) => {
        const allowed = [...methods].filter((method) => paths.find(method, url) !== undefined)
        if (allowed.includes("GET") && !allowed.includes("HEAD")) allowed.push("HEAD")
        return allowed.sort()
      }
    })
  })
}

/** `routes`, registered with the router and recorded in the `RouteTable`. */
export const recorded = <A, E, R>(routes: Layer.Layer<A, E, R>) =>
  Layer.provide(
    routes,
    Layer.effect(
      HttpRouter.HttpRouter,
      Effect.gen(function* () {
        const router = yield* HttpRouter.HttpRouter
        const table = yield* RouteTable
        return recording(router, table.record)
      })
    )
  )
