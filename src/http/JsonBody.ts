/**
 * Reads a JSON request body the way the contract wants it: only JSON media
 * types (415 otherwise), at most 1 MiB (413), valid JSON (400), and numbers
 * kept exact (`parseJsonExact`) so concentrations are never rounded through
 * binary floating point before validation sees them.
 *
 * `readJsonBytes` stops at the bytes: `POST /formulas` has them judged off
 * the event loop when they are large (SubmissionJudge.ts).
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { ByteSize, Effect, Result, Schema } from "effect"
import { HttpIncomingMessage, type HttpServerRequest } from "effect/http"
import { IncomingMessage } from "node:http"
import { parseJsonExact } from "../domain/JsonExact.ts"
import { type InvalidRequest, MalformedJson, PayloadTooLarge, UnsupportedMediaType } from "./Problems.ts"
import { invalidRequest, requestErrors } from "./RequestProblems.ts"

const MiB = 1024 * 1024

export const maxBodyBytes = MiB

// application/json, or any application/*+json, with optional parameters (charset=utf-8).
const jsonMediaType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;.*)?$/i

const utf8 = new TextDecoder("utf-8", { fatal: true })

const unreadable = () => new MalformedJson({ detail: "the request body could not be read" })

const sizeText = (bytes: number) => (bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes / 1024} KiB`)

const tooLarge = (maxBytes: number) =>
  new PayloadTooLarge({ detail: `this request takes a body of at most ${sizeText(maxBytes)}` })

/** The body as JSON, parsed on the event loop: for bodies that are small (`readJsonBytes`' `maxBytes`). */
export const parseJsonBody = (bytes: Uint8Array): Effect.Effect<unknown, MalformedJson> => {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return Effect.fail(new MalformedJson({ detail: "the request body is not UTF-8" }))
  }
  const parsed = parseJsonExact(text)
  return parsed._tag === "Failure"
    ? Effect.fail(new MalformedJson({ detail: parsed.failure.message }))
    : Effect.succeed(parsed.success)
}

/**
 * The body of a request that declared its length (at most `maxBodyBytes`,
 * which Node's parser then enforces) and expects no `100 Continue`, read
 * straight from Node's message. The platform's reader (`request.arrayBuffer`)
 * handles every case but cost as much as the whole rest of a duplicate
 * answer (npm run bench), so the common case takes this path and the others
 * (chunked bodies, `Expect: 100-continue`) take the platform's.
 */
const readDeclared = (source: IncomingMessage): Effect.Effect<Uint8Array, MalformedJson> =>
  Effect.callback((resume) => {
    const chunks: Array<Buffer> = []
    const onData = (chunk: Buffer) => void chunks.push(chunk)
    const onEnd = () => {
      stop()
      resume(Effect.succeed(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
    }
    const onFailure = () => {
      stop()
      resume(Effect.fail(unreadable()))
    }
    const stop = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onFailure)
      source.off("close", onFailure)
    }
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onFailure)
    source.on("close", onFailure)
    return Effect.sync(stop)
  })

const readAnyBody = (
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number
): Effect.Effect<Uint8Array, PayloadTooLarge | MalformedJson> =>
  request.arrayBuffer.pipe(
    Effect.map((buffer) => new Uint8Array(buffer)),
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBytes)),
    // A chunked body has no declared length; the limited read is what stops it.
    Effect.mapError((error) => (error.cause instanceof NodeStream.MaxBytesError ? tooLarge(maxBytes) : unreadable()))
  )

/** The bytes of a JSON body of at most `maxBytes` (which must not exceed `maxBodyBytes`), not yet parsed. */
export const readJsonBytes = (
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number = maxBodyBytes
): Effect.Effect<Uint8Array, UnsupportedMediaType | PayloadTooLarge | MalformedJson> => {
  const headers = request.headers
  const contentType = headers["content-type"]
  if (contentType === undefined || !jsonMediaType.test(contentType.trim())) {
    return Effect.fail(new UnsupportedMediaType({ detail: `content-type ${contentType ?? "(none)"} is not JSON` }))
  }
  const declared = headers["content-length"]
  const declaredLength = Number(declared ?? "0")
  if (declaredLength > maxBytes) return Effect.fail(tooLarge(maxBytes))
  const source = NodeHttpServerRequest.toIncomingMessage(request)
  return declared !== undefined && headers["expect"] === undefined && source instanceof IncomingMessage
    ? readDeclared(source)
    : readAnyBody(request, maxBytes)
}

/** True when the request carries no body at all (neither a length above 0 nor a chunked one). */
const hasNoBody = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const length = request.headers["content-length"]
  return length === undefined ? request.headers["transfer-encoding"] === undefined : Number(length) === 0
}

type BodyFailure = UnsupportedMediaType | PayloadTooLarge | MalformedJson | InvalidRequest

const decodeSmallJsonBody = <A, Absent>(
  request: HttpServerRequest.HttpServerRequest,
  schema: Schema.Decoder<A>,
  maxBytes: number,
  absent: Effect.Effect<Absent, BodyFailure>
): Effect.Effect<A | Absent, BodyFailure> => {
  if (hasNoBody(request)) return absent
  const decode = Schema.decodeUnknownResult(schema)
  const decodeJson = (json: unknown): Effect.Effect<A, InvalidRequest> => {
    const decoded = decode(json, { errors: "all" })
    return Result.isSuccess(decoded)
      ? Effect.succeed(decoded.success)
      : Effect.fail(invalidRequest(requestErrors("body", decoded.failure.issue)))
  }
  return Effect.flatMap(
    readJsonBytes(request, maxBytes),
    (bytes): Effect.Effect<A | Absent, BodyFailure> =>
      bytes.length === 0 ? absent : Effect.flatMap(parseJsonBody(bytes), decodeJson)
  )
}

/**
 * A small JSON body decoded with `schema`: 415 / 413 / malformed-JSON 400 as
 * for any body, then every problem of the value at `/body/…` (an
 * invalid-request 400); no body at all is a problem at `/body`. Parsed on the
 * event loop, so `maxBytes` must keep that quick.
 */
export const decodeJsonBody = <A>(
  request: HttpServerRequest.HttpServerRequest,
  schema: Schema.Decoder<A>,
  maxBytes: number
): Effect.Effect<A, BodyFailure> =>
  decodeSmallJsonBody(
    request,
    schema,
    maxBytes,
    Effect.fail(invalidRequest([{ path: "/body", message: "is required: a JSON object" }]))
  )

/** `decodeJsonBody` for a body that may be left out: no body, an empty one or `null` is `undefined`. */
export const decodeOptionalJsonBody = <A>(
  request: HttpServerRequest.HttpServerRequest,
  schema: Schema.Decoder<A>,
  maxBytes: number
): Effect.Effect<A | undefined, BodyFailure> =>
  decodeSmallJsonBody(request, Schema.NullOr(schema), maxBytes, Effect.succeed(null)).pipe(
    Effect.map((value) => value ?? undefined)
  )
