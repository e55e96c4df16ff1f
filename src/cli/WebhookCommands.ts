/**
 * `webhooks …`: a client's webhook endpoints (DESIGN.md "Webhooks"). Every
 * request is the client's own, so `--client-id` (or FORMULAS_CLIENT_ID) is
 * required; without it the command stops with a usage error before asking.
 * Written against the documented contract while the API was built elsewhere:
 * list answers are read as an array or as `{ items }`.
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { UsageError } from "./CliErrors.ts"
import { printJson, table } from "./Output.ts"
import { clientFor, root } from "./Root.ts"

const ownClient = Effect.gen(function* () {
  const flags = yield* root
  if (Option.isNone(flags.clientId)) {
    return yield* new UsageError({
      message: "webhooks belong to a client: give --client-id ID (or set FORMULAS_CLIENT_ID)"
    })
  }
  return yield* clientFor()
})

const itemsOf = (body: any): Array<any> => (Array.isArray(body) ? body : (body?.items ?? body?.endpoints ?? []))
const endpointId = Argument.String("id").pipe(Argument.withDescription("The endpoint's id (from `webhooks list`)"))

const add = Command.make(
  "add",
  {
    url: Argument.String("url").pipe(Argument.withDescription("Where events are POSTed (http or https)")),
    events: Flag.String("events").pipe(
      Flag.withDescription("Comma-separated event types (default: all), e.g. formula.created,formula.processed"),
      Flag.optional
    ),
    description: Flag.String("description").pipe(Flag.withDescription("A note for people"), Flag.optional)
  },
  Effect.fn("formulas.webhooks.add")(function* ({ url, events, description }) {
    const { client, json } = yield* ownClient
    const request = {
      url,
      ...(Option.isSome(events) ? { events: events.value.split(",").map((event) => event.trim()) } : {}),
      ...(Option.isSome(description) ? { description: description.value } : {})
    }
    const body = (yield* client.expectOk("POST", "/webhooks", { body: JSON.stringify(request) })).json
    if (json) return yield* printJson(body)
    yield* Console.log(`added endpoint ${body.id} → ${body.url} (events: ${(body.events ?? []).join(", ") || "all"})`)
    yield* Console.log(`secret: ${body.secret}`)
    yield* Console.log("  shown only now: keep it to verify the webhook-signature header (Standard Webhooks)")
  })
).pipe(Command.withDescription("Register an endpoint for this client's events; prints its signing secret once"))

const list = Command.make(
  "list",
  {},
  Effect.fn("formulas.webhooks.list")(function* () {
    const { client, json } = yield* ownClient
    const body = (yield* client.expectOk("GET", "/webhooks")).json
    if (json) return yield* printJson(body)
    const endpoints = itemsOf(body)
    if (endpoints.length === 0) return yield* Console.log("no endpoints: add one with `formulas webhooks add URL`")
    yield* Console.log(
      table(
        ["ID", "URL", "EVENTS", "ENABLED", "FAILING SINCE"],
        endpoints.map((endpoint) => [
          endpoint.id,
          endpoint.url,
          (endpoint.events ?? []).join(",") || "all",
          endpoint.enabled ? "yes" : `no${endpoint.disabledReason ? ` (${endpoint.disabledReason})` : ""}`,
          endpoint.failingSince ?? "-"
        ]),
        60
      )
    )
  })
).pipe(Command.withDescription("This client's endpoints (never their secrets)"))

const deliveries = Command.make(
  "deliveries",
  {
    id: endpointId,
    status: Flag.Literals("status", ["pending", "succeeded", "failed"]).pipe(
      Flag.withDescription("Only deliveries in this state"),
      Flag.optional
    ),
    cursor: Flag.String("cursor").pipe(Flag.withDescription("The next page (a nextCursor)"), Flag.optional)
  },
  Effect.fn("formulas.webhooks.deliveries")(function* ({ id, status, cursor }) {
    const { client, json } = yield* ownClient
    const query = new URLSearchParams()
    if (Option.isSome(status)) query.set("status", status.value)
    if (Option.isSome(cursor)) query.set("cursor", cursor.value)
    const search = query.size === 0 ? "" : `?${query}`
    const body = (yield* client.expectOk("GET", `/webhooks/${encodeURIComponent(id)}/deliveries${search}`)).json
    if (json) return yield* printJson(body)
    const items = itemsOf(body)
    if (items.length === 0) return yield* Console.log("no deliveries")
    yield* Console.log(
      table(
        ["DELIVERY", "TYPE", "STATUS", "ATTEMPTS", "LAST", "NEXT ATTEMPT"],
        items.map((delivery) => {
          const last = (delivery.attempts ?? []).at(-1)
          return [
            delivery.id,
            delivery.type,
            delivery.status,
            String((delivery.attempts ?? []).length),
            last === undefined ? "-" : (last.status ?? last.error ?? "-").toString(),
            delivery.nextAttemptAt === null || delivery.nextAttemptAt === undefined
              ? "-"
              : `${delivery.nextAttemptAt} (in ${delivery.retryInSeconds} s)`
          ]
        }),
        60
      )
    )
    if (body?.nextCursor) yield* Console.log(`more with --cursor ${body.nextCursor}`)
  })
).pipe(Command.withDescription("An endpoint's deliveries, newest first: attempts, and when the next one is due"))

const retry = Command.make(
  "retry",
  {
    id: endpointId,
    delivery: Argument.String("delivery").pipe(Argument.withDescription("The delivery's id (from `deliveries`)"))
  },
  Effect.fn("formulas.webhooks.retry")(function* ({ id, delivery }) {
    const { client, json } = yield* ownClient
    const path = `/webhooks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(delivery)}/retry`
    yield* client.expectOk("POST", path)
    yield* json ? printJson({ retried: delivery }) : Console.log(`delivery ${delivery} will be attempted again now`)
  })
).pipe(Command.withDescription("Attempt a failed delivery again now (its attempt history is kept)"))

const test = Command.make(
  "test",
  { id: endpointId },
  Effect.fn("formulas.webhooks.test")(function* ({ id }) {
    const { client, json } = yield* ownClient
    yield* client.expectOk("POST", `/webhooks/${encodeURIComponent(id)}/test`)
    yield* json
      ? printJson({ tested: id })
      : Console.log(`a webhook.test event is on its way to ${id}: see \`formulas webhooks deliveries ${id}\``)
  })
).pipe(Command.withDescription("Send a webhook.test event to an endpoint"))

export const webhooks = Command.make("webhooks").pipe(
  Command.withDescription("This client's webhook endpoints and their deliveries (needs --client-id)"),
  Command.withSubcommands([add, list, deliveries, retry, test])
)
