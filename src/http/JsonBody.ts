/**
 * Reads a JSON request body the way the contract wants it: only JSON media
 * types (415 otherwise), at most 1 MiB (413), valid JSON (400), and numbers
 * kept exact (`parseJsonExact`) so concentrations are never rounded through
 * binary floating point before validation sees them.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import { ByteSize, Effect } from "effect"
import { HttpIncomingMessage, type HttpServerRequest } from "effect/http"
import { parseJsonExact } from "../domain/JsonExact.ts"
import { MalformedJson, PayloadTooLarge, UnsupportedMediaType } from "./Problems.ts"

export const maxBodyBytes = 1024 * 1024

// application/json, or any application/*+json, with optional parameters (charset=utf-8).
const jsonMediaType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;.*)?$/i

export const readJsonBody = (
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<unknown, UnsupportedMediaType | PayloadTooLarge | MalformedJson> =>
  Effect.gen(function* () {
    const contentType = request.headers["content-type"]
    if (contentType === undefined || !jsonMediaType.test(contentType.trim())) {
      return yield* new UnsupportedMediaType({ detail: `content-type ${contentType ?? "(none)"} is not JSON` })
    }
    const declaredLength = Number(request.headers["content-length"] ?? "0")
    if (declaredLength > maxBodyBytes) return yield* new PayloadTooLarge({})
    const bytes = yield* request.arrayBuffer.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)),
      // A chunked body has no declared length; the limited read is what stops it.
      Effect.mapError((error) =>
        error.cause instanceof NodeStream.MaxBytesError
          ? new PayloadTooLarge({})
          : new MalformedJson({ detail: "the request body could not be read" })
      )
    )
    let text: string
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes)
    } catch {
      return yield* new MalformedJson({ detail: "the request body is not UTF-8" })
    }
    const parsed = parseJsonExact(text)
    if (parsed._tag === "Failure") return yield* new MalformedJson({ detail: parsed.failure.message })
    return parsed.success
  })
