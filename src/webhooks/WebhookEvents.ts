/**
 * Webhook events as they are stored and sent: an id (`evt_` + 32 lowercase
 * hex, the `webhook-id` header: the receiver's idempotency key) and the exact
 * body text `{"type":…,"timestamp":…,"data":…}`, written once and sent byte
 * for byte on every attempt.
 */
import { Effect } from "effect"
import { newId } from "../domain/Ids.ts"
import { toFormulaView } from "../http/FormulaView.ts"
import type { FormulaRow } from "../store/FormulaStore.ts"

/** Every event type an endpoint may subscribe to (`webhook.test` goes to one endpoint, whatever it subscribed to). */
export const subscribableEvents = ["formula.created", "formula.processed", "formula.dead_lettered"] as const
export type SubscribableEvent = (typeof subscribableEvents)[number]

export type EventType = SubscribableEvent | "webhook.test"

/** A new event id: a UUID (time-ordered) without its dashes. */
export const newEventId: Effect.Effect<string> = Effect.map(newId, (id) => `evt_${id.replaceAll("-", "")}`)

/** The body text of an event. */
export const eventBody = (type: EventType, timestamp: Date, data: unknown): string =>
  JSON.stringify({ type, timestamp: timestamp.toISOString(), data })

/** `formula.created`: the formula as `GET /formulas/{id}` shows it when it is created. */
export const formulaCreatedBody = (formula: FormulaRow): string =>
  eventBody("formula.created", formula.createdAt, toFormulaView(formula))
