/**
 * What every answer goes through on its way out. A global router middleware,
 * so it wraps the router itself: POST /formulas (SubmitRoute.ts), the HttpApi
 * endpoints, and requests no route matches.
 *
 *   X-Request-Id: the client's if sane, else a new one (RequestId.ts)
 *     → the router's answer; or, when no route matched, a 404 problem, or a
 *       405 problem with `Allow` when the path is served for other methods
 *       (RouteTable.ts); or a failure, turned into its response here as the
 *       server would turn it, so that it is counted and logged too
 *     → `X-Request-Id` on the response, `requestId` in a problem body,
 *       `Retry-After: 1` on a 503 that has none (RFC 9110 §10.2.3)
 *     → http_requests_total{method,status} + 1, one access log line (AccessLog.ts)
 *
 * `requestId` is added to problem bodies here, as bytes, rather than by each
 * of the places that build problems (SubmitRoute, HttpApi's encoder, the
 * stored answers an Idempotency-Key replays): none can forget it, a replay
 * names the request that got it, and the hot path's 409 costs a copy of a
 * few hundred bytes instead of a parse and a new encoding.
 */
import { Cause, Context, Effect, Metric, type Types } from "effect"
import {
  HttpBody,
  HttpRouter,
  HttpServerError,
  HttpServerRequest,
  HttpServerRespondable,
  HttpServerResponse
} from "effect/http"
import { counterFamily } from "../observability/Counters.ts"
import { accessLogSetting, infoLogged, logRequest, pathOf } from "./AccessLog.ts"
import { MethodNotAllowed, NotFound } from "./Problems.ts"
import { requestIdHeader, requestIdOf } from "./RequestId.ts"
import { RouteTable } from "./RouteTable.ts"

const httpRequests = Metric.counter("http_requests_total", { description: "HTTP responses by method and status" })

const isRouteNotFound = (cause: Cause.Cause<unknown>): boolean => {
  if (cause.reasons.length !== 1) return false
  const reason = cause.reasons[0]!
  return (
    reason._tag === "Fail" &&
    HttpServerError.isHttpServerError(reason.error) &&
    reason.error.reason._tag === "RouteNotFound"
  )
}

/** The answer to a request no route matched: 405 if its path is served for other methods, else 404. */
const unmatched = (table: RouteTable["Service"], request: HttpServerRequest.HttpServerRequest) => {
  const path = pathOf(request.url)
  const allowed = table.allowed(request.url)
  if (allowed.length === 0) {
    return HttpServerRespondable.toResponse(new NotFound({ detail: `nothing is served at ${path}` }))
  }
  const allow = allowed.join(", ")
  return Effect.map(
    HttpServerRespondable.toResponse(
      new MethodNotAllowed({ detail: `${path} is served for ${allow}, not ${request.method}`, allowed })
    ),
    (response) => HttpServerResponse.setHeader(response, "allow", allow)
  )
}

const problemJson = "application/problem+json"

/** A problem body (a JSON object) with `"requestId": id` as its last member. */
const withRequestId = (body: HttpBody.Uint8Array, requestId: string): HttpBody.Uint8Array => {
  const bytes = body.body
  const last = bytes.length - 1
  if (last < 1 || bytes[0] !== 0x7b || bytes[last] !== 0x7d) return body
  const member = Buffer.from(`${last > 1 ? "," : ""}"requestId":${JSON.stringify(requestId)}}`)
  const out = new Uint8Array(last + member.length)
  out.set(bytes.subarray(0, last))
  out.set(member, last)
  return HttpBody.uint8Array(out, body.contentType)
}

const decorate = (
  response: HttpServerResponse.HttpServerResponse,
  requestId: string
): HttpServerResponse.HttpServerResponse => {
  const body = response.body
  if (body._tag === "Uint8Array" && body.contentType?.startsWith(problemJson) === true) {
    response = HttpServerResponse.setBody(response, withRequestId(body, requestId))
  }
  return HttpServerResponse.setHeaders(
    response,
    response.status === 503 && response.headers["retry-after"] === undefined
      ? { [requestIdHeader]: requestId, "retry-after": "1" }
      : { [requestIdHeader]: requestId }
  )
}

/** The middleware; access log lines as `accessLog` says, by default as ACCESS_LOG does. */
export const responseMiddleware = (options: { readonly accessLog?: boolean | undefined } = {}) =>
  HttpRouter.middleware(
    Effect.gen(function* () {
      const accessLog = options.accessLog ?? (yield* accessLogSetting)
      const count = yield* counterFamily(httpRequests, ["method", "status"])
      const table = yield* RouteTable
      return (httpEffect) =>
        Effect.withFiber((fiber) => {
          const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
          const started = performance.now()
          const requestId = requestIdOf(request.headers[requestIdHeader])
          const logs = accessLog && infoLogged(fiber)

          const finish = (response: HttpServerResponse.HttpServerResponse) => {
            const sent = decorate(response, requestId)
            count(request.method, String(sent.status))
            if (logs) {
              logRequest(
                fiber,
                request.method,
                pathOf(request.url),
                sent.status,
                performance.now() - started,
                requestId
              )
            }
            return Effect.succeed(sent)
          }

          return Effect.matchCauseEffect(httpEffect, {
            onSuccess: finish,
            onFailure: (cause) => {
              if (isRouteNotFound(cause)) return Effect.flatMap(unmatched(table, request), finish)
              // As the server would answer it (a 500, a Respondable error's response, 499 for a client
              // gone), then failing on with the same cause, so the server still reports it; a response
              // carried as a defect is the one the server sends.
              return Effect.flatMap(HttpServerError.causeResponse(cause), ([response, rest]) =>
                Effect.flatMap(finish(response), (sent) =>
                  Effect.failCause(
                    Cause.fromReasons([
                      ...rest.reasons.filter((reason) => !(reason._tag === "Die" && reason.defect === response)),
                      Cause.makeDieReason(sent)
                    ]) as Cause.Cause<Types.unhandled>
                  )
                )
              )
            }
          })
        })
    }),
    { global: true }
  )
