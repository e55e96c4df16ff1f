/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): the headers
 * that let a receiver check that a request came from us, unchanged, and
 * recently.
 *
 *   webhook-id         the event id: the same on every retry, the receiver's idempotency key
 *   webhook-timestamp  unix seconds of this attempt (receivers refuse old ones: replay protection)
 *   webhook-signature  `v1,<base64 HMAC-SHA256(key, "${id}.${timestamp}.${body}")>`, one per live
 *                      secret, space-separated, so a receiver still holding the previous secret
 *                      verifies during a rotation
 *
 * The key is the secret's bytes: the base64 after `whsec_`.
 */
import { createHmac } from "node:crypto"

const secretPrefix = "whsec_"

/** The HMAC key of a `whsec_…` secret (a secret without the prefix is taken as base64 all the same). */
const keyOf = (secret: string): Buffer =>
  Buffer.from(secret.startsWith(secretPrefix) ? secret.slice(secretPrefix.length) : secret, "base64")

/** One `v1,…` signature. */
export const signatureWith = (secret: string, id: string, timestamp: number, body: string): string =>
  `v1,${createHmac("sha256", keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest("base64")}`

/** The secrets of an endpoint, as stored. */
export interface EndpointSecrets {
  readonly secret: string
  readonly previousSecret: string | null
  readonly previousSecretExpiresAt: Date | null
}

/** The secrets that sign at `nowMs`: the current one, and the previous one until it expires. */
export const liveSecrets = (endpoint: EndpointSecrets, nowMs: number): ReadonlyArray<string> =>
  endpoint.previousSecret !== null &&
  endpoint.previousSecretExpiresAt !== null &&
  endpoint.previousSecretExpiresAt.getTime() > nowMs
    ? [endpoint.secret, endpoint.previousSecret]
    : [endpoint.secret]

export type WebhookHeaders = {
  readonly "webhook-id": string
  readonly "webhook-timestamp": string
  readonly "webhook-signature": string
}

/** The three Standard Webhooks headers of one attempt at `nowMs`. */
export const signedHeaders = (input: {
  readonly eventId: string
  readonly body: string
  readonly secrets: ReadonlyArray<string>
  readonly nowMs: number
}): WebhookHeaders => {
  const timestamp = Math.floor(input.nowMs / 1000)
  return {
    "webhook-id": input.eventId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": input.secrets
      .map((secret) => signatureWith(secret, input.eventId, timestamp, input.body))
      .join(" ")
  }
}
