/**
 * The one HTTP client every command uses: plain `node:http` with a keep-alive
 * agent (an import sends tens of thousands of small requests; a fresh
 * connection per request, or fetch's extra layers, would cost the client more
 * CPU than the server spends, on a machine they share).
 *
 * It turns the ways a request can fail into the CLI's errors (CliErrors.ts):
 * no connection → Unreachable (exit 3), 5xx → ServiceFailed (exit 3), and
 * leaves 4xx answers to the caller, who knows which ones are outcomes (a
 * duplicate is a success for `submit`) and which are Rejected (exit 1).
 */
import { Effect } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"
import { type Problem, Rejected, ServiceFailed, Unreachable } from "./CliErrors.ts"

export interface Answer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  readonly json: any
}

export interface ClientOptions {
  /** e.g. http://localhost:8080 */
  readonly url: string
  /** Sent as X-Client-Id: the scope of idempotency keys and the owner of webhooks. */
  readonly clientId?: string | undefined
  /** Connections kept open at once (an import's concurrency). */
  readonly maxSockets?: number | undefined
}

export interface RequestOptions {
  readonly body?: string | undefined
  readonly headers?: Record<string, string> | undefined
}

export interface Client {
  readonly url: string
  /** Any answer from the service; fails only when there is none (Unreachable). */
  readonly send: (method: string, path: string, options?: RequestOptions) => Effect.Effect<Answer, Unreachable>
  /** An answer that must be 2xx: 4xx → Rejected, 5xx → ServiceFailed. */
  readonly expectOk: (
    method: string,
    path: string,
    options?: RequestOptions
  ) => Effect.Effect<Answer, Unreachable | Rejected | ServiceFailed>
  readonly close: () => void
}

const parseJson = (text: string): any => {
  if (text === "") return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** The problem in an answer, or a stand-in naming the status when the body is not one. */
export const problemOf = (answer: Answer): Problem =>
  typeof answer.json === "object" && answer.json !== null
    ? (answer.json as Problem)
    : { title: Http.STATUS_CODES[answer.status] ?? "unexpected answer", detail: answer.text.slice(0, 200) || undefined }

/** 4xx → Rejected, 5xx and anything else not 2xx → ServiceFailed. */
export const failureOf = (answer: Answer): Rejected | ServiceFailed =>
  answer.status >= 400 && answer.status < 500
    ? new Rejected({ status: answer.status, problem: problemOf(answer) })
    : new ServiceFailed({ status: answer.status, problem: problemOf(answer) })

const reasonOf = (error: unknown): string => {
  const { code, message } = error as NodeJS.ErrnoException
  return code ?? message ?? String(error)
}

export const makeClient = (options: ClientOptions): Client => {
  const base = new URL(options.url)
  const transport = base.protocol === "https:" ? Https : Http
  const agent = new transport.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 8 })
  const prefix = base.pathname.replace(/\/$/, "")
  const shownUrl = options.url.replace(/\/$/, "")

  const send = (method: string, path: string, request: RequestOptions = {}) =>
    Effect.callback<Answer, Unreachable>((resume) => {
      const headers: Record<string, string> = { accept: "application/json, application/problem+json" }
      if (request.body !== undefined) {
        headers["content-type"] = "application/json"
        headers["content-length"] = String(Buffer.byteLength(request.body))
      }
      if (options.clientId !== undefined) headers["x-client-id"] = options.clientId
      Object.assign(headers, request.headers)
      const outgoing = transport.request(
        {
          protocol: base.protocol,
          hostname: base.hostname,
          port: base.port,
          path: prefix + path,
          method,
          headers,
          agent
        },
        (incoming) => {
          const chunks: Array<Buffer> = []
          incoming.on("data", (chunk: Buffer) => chunks.push(chunk))
          incoming.on("error", (error) =>
            resume(Effect.fail(new Unreachable({ url: shownUrl, reason: reasonOf(error) })))
          )
          incoming.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8")
            resume(
              Effect.succeed({
                status: incoming.statusCode ?? 0,
                headers: incoming.headers,
                text,
                json: parseJson(text)
              })
            )
          })
        }
      )
      outgoing.on("error", (error) => resume(Effect.fail(new Unreachable({ url: shownUrl, reason: reasonOf(error) }))))
      outgoing.end(request.body)
      // Interrupted (Ctrl-C on a one-off command): drop the request.
      return Effect.sync(() => outgoing.destroy())
    })

  return {
    url: shownUrl,
    send,
    expectOk: (method, path, request) =>
      Effect.flatMap(send(method, path, request), (answer) =>
        answer.status >= 200 && answer.status < 300 ? Effect.succeed(answer) : Effect.fail(failureOf(answer))
      ),
    close: () => agent.destroy()
  }
}
