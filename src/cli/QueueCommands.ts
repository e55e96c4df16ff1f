/** `queue …`: the queue over HTTP (DESIGN.md "Queue over HTTP"), for operators and external workers. */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { InputError } from "./CliErrors.ts"
import { checkJson } from "./JsonText.ts"
import { printJson, table } from "./Output.ts"
import { clientFor } from "./Root.ts"

const stats = Command.make(
  "stats",
  {},
  Effect.fn("formulas.queue.stats")(function* () {
    const { client, json } = yield* clientFor()
    const body = (yield* client.expectOk("GET", "/queue/stats")).json
    if (json) return yield* printJson(body)
    const rows = Object.entries(body)
      .filter(([, value]) => typeof value !== "object")
      .map(([name, value]) => [name, String(value)])
    const totals = Object.entries(body.totals ?? {}).map(([name, value]) => [`totals.${name}`, String(value)])
    yield* Console.log(table(["FIGURE", "VALUE"], [...rows, ...totals]))
  })
).pipe(Command.withDescription("Queue figures: ready, pending, in flight, dead-lettered, capacity, totals"))

const receive = Command.make(
  "receive",
  {
    max: Flag.Int("max").pipe(Flag.withDescription("Messages at most (1-100)"), Flag.withDefault(1)),
    visibilityTimeoutMs: Flag.Int("visibility-timeout-ms").pipe(
      Flag.withDescription("How long the messages stay invisible to others"),
      Flag.optional
    ),
    waitMs: Flag.Int("wait-ms").pipe(Flag.withDescription("Long-poll this long for a message"), Flag.withDefault(0))
  },
  Effect.fn("formulas.queue.receive")(function* ({ max, visibilityTimeoutMs, waitMs }) {
    const { client, json } = yield* clientFor()
    const request = {
      max,
      waitMs,
      ...(Option.isSome(visibilityTimeoutMs) ? { visibilityTimeoutMs: visibilityTimeoutMs.value } : {})
    }
    const body = (yield* client.expectOk("POST", "/queue/receive", { body: JSON.stringify(request) })).json
    if (json) return yield* printJson(body)
    if (body.messages.length === 0) return yield* Console.log("no message ready")
    yield* Console.log(
      table(
        ["RECEIPT", "ATTEMPT", "MESSAGE", "FORMULA", "NAME"],
        body.messages.map((message: any) => [
          message.receipt,
          String(message.attempt),
          message.messageId,
          message.body?.formulaId ?? "-",
          message.body?.name ?? "-"
        ]),
        60
      )
    )
    yield* Console.log("settle each with `formulas queue ack RECEIPT [--result JSON]` or `formulas queue nack RECEIPT`")
  })
).pipe(Command.withDescription("Receive messages (each with a receipt to ack or nack)"))

const receipt = Argument.String("receipt").pipe(Argument.withDescription("The receipt from `queue receive`"))

const ack = Command.make(
  "ack",
  {
    receipt,
    result: Flag.String("result").pipe(
      Flag.withDescription("The processing result, any JSON (≤ 64 KiB)"),
      Flag.optional
    )
  },
  Effect.fn("formulas.queue.ack")(function* ({ receipt, result }) {
    const { client, json } = yield* clientFor()
    if (Option.isSome(result)) {
      const checked = checkJson(result.value)
      if (!checked.ok) return yield* new InputError({ message: `--result is not valid JSON: ${checked.message}` })
    }
    const body = `{"receipt":${JSON.stringify(receipt)}${Option.isSome(result) ? `,"result":${result.value}` : ""}}`
    yield* client.expectOk("POST", "/queue/ack", { body })
    yield* json ? printJson({ acked: receipt }) : Console.log(`acked ${receipt}`)
  })
).pipe(Command.withDescription("Acknowledge a message: it is done (optionally with its result)"))

const nack = Command.make(
  "nack",
  {
    receipt,
    delayMs: Flag.Int("delay-ms").pipe(Flag.withDescription("Redeliver after this long"), Flag.withDefault(0))
  },
  Effect.fn("formulas.queue.nack")(function* ({ receipt, delayMs }) {
    const { client, json } = yield* clientFor()
    yield* client.expectOk("POST", "/queue/nack", { body: JSON.stringify({ receipt, delayMs }) })
    yield* json ? printJson({ nacked: receipt }) : Console.log(`nacked ${receipt}: redelivered in ${delayMs} ms`)
  })
).pipe(Command.withDescription("Give a message back for redelivery"))

const deadLetters = Command.make(
  "dead-letters",
  {},
  Effect.fn("formulas.queue.deadLetters")(function* () {
    const { client, json } = yield* clientFor()
    const body = (yield* client.expectOk("GET", "/queue/dead-letters")).json
    if (json) return yield* printJson(body)
    if (body.messages.length === 0) return yield* Console.log("no dead letters")
    yield* Console.log(
      table(
        ["MESSAGE", "ATTEMPTS", "DEAD SINCE", "LAST ERROR"],
        body.messages.map((message: any) => [
          message.messageId,
          String(message.attempts),
          message.deadLetteredAt,
          message.lastError ?? "-"
        ]),
        60
      )
    )
  })
).pipe(Command.withDescription("Messages that failed maxDeliveries times"))

const redrive = Command.make(
  "redrive",
  {},
  Effect.fn("formulas.queue.redrive")(function* () {
    const { client, json } = yield* clientFor()
    const body = (yield* client.expectOk("POST", "/queue/dead-letters/redrive")).json
    yield* json ? printJson(body) : Console.log(`redriven ${body.redriven}: ready again, attempts counted from 1`)
  })
).pipe(Command.withDescription("Make every dead letter ready again"))

const purge = Command.make(
  "purge",
  {},
  Effect.fn("formulas.queue.purge")(function* () {
    const { client, json } = yield* clientFor()
    const body = (yield* client.expectOk("DELETE", "/queue/dead-letters")).json
    yield* json ? printJson(body) : Console.log(`purged ${body.purged} dead letters`)
  })
).pipe(Command.withDescription("Delete every dead letter"))

export const queue = Command.make("queue").pipe(
  Command.withDescription("The queue of FormulaSubmitted messages"),
  Command.withSubcommands([stats, receive, ack, nack, deadLetters, redrive, purge])
)
