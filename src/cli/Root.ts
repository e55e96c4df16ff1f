/**
 * The root command and the flags every command shares (before or after the
 * subcommand's name): where the service is, who the client is, and whether
 * the output is for a person or a script.
 */
import { Config, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { makeClient } from "./Client.ts"

export const defaultUrl = "http://localhost:8080"

export const root = Command.make("formulas").pipe(
  Command.withSharedFlags({
    url: Flag.String("url").pipe(
      Flag.withDescription(`The formula service's base URL (or FORMULAS_URL; default ${defaultUrl})`),
      Flag.withFallbackConfig(Config.String("FORMULAS_URL")),
      Flag.withDefault(defaultUrl)
    ),
    clientId: Flag.String("client-id").pipe(
      Flag.withDescription("Sent as X-Client-Id: scopes idempotency keys and owns webhooks (or FORMULAS_CLIENT_ID)"),
      Flag.withFallbackConfig(Config.String("FORMULAS_CLIENT_ID")),
      Flag.optional
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print JSON for scripts instead of tables and sentences"),
      Flag.withDefault(false)
    )
  }),
  Command.withDescription(
    "The formula intake service from the command line: submit, list and import formulas, work the queue, run the service."
  )
)

/** The shared flags and a client for them, closed with the command. */
export const clientFor = (options: { readonly maxSockets?: number } = {}) =>
  Effect.gen(function* () {
    const flags = yield* root
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        makeClient({
          url: flags.url,
          clientId: flags.clientId._tag === "Some" ? flags.clientId.value : undefined,
          maxSockets: options.maxSockets
        })
      ),
      (client) => Effect.sync(() => client.close())
    )
    return { client, json: flags.json }
  })
