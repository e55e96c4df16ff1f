/** `submit`, `get` and `list`: one formula in, one or many out. */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { readFile } from "node:fs/promises"
import { InputError } from "./CliErrors.ts"
import { type Answer, failureOf } from "./Client.ts"
import { checkJson } from "./JsonText.ts"
import { printJson, table } from "./Output.ts"
import { clientFor } from "./Root.ts"

const duplicateType = "urn:formula-intake:problem:duplicate-formula"

export const isDuplicate = (answer: Answer) => answer.status === 409 && answer.json?.type === duplicateType

const readStdin = Effect.promise(async () => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
})

const readInput = (file: string) =>
  file === "-"
    ? process.stdin.isTTY
      ? Effect.fail(
          new InputError({
            message: "submit reads a formula from stdin, but stdin is a terminal: give a FILE, or pipe JSON in"
          })
        )
      : readStdin
    : Effect.tryPromise({
        try: () => readFile(file, "utf8"),
        catch: (error) =>
          new InputError({ message: `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}` })
      })

export const submit = Command.make(
  "submit",
  {
    file: Argument.String("file").pipe(
      Argument.withDescription("A JSON file with one formula, or - for stdin (the default)"),
      Argument.withDefault("-")
    ),
    idempotencyKey: Flag.String("idempotency-key").pipe(
      Flag.withDescription("Retrying with the same key never stores twice; the first answer comes back"),
      Flag.optional
    )
  },
  Effect.fn("formulas.submit")(function* ({ file, idempotencyKey }) {
    const { client, json } = yield* clientFor()
    const text = yield* readInput(file)
    const checked = checkJson(text)
    if (!checked.ok) {
      return yield* new InputError({
        message: `${file === "-" ? "stdin" : file} is not valid JSON: ${checked.message}`
      })
    }
    const answer = yield* client.send("POST", "/formulas", {
      body: text,
      headers: Option.isSome(idempotencyKey) ? { "idempotency-key": idempotencyKey.value } : undefined
    })
    const replayed = answer.headers["idempotent-replayed"] === "true"
    const note = replayed ? " (replayed: this idempotency key was used before; nothing new was stored)" : ""
    if (answer.status === 201) {
      if (json) return yield* printJson(answer.json)
      yield* Console.log(`created ${answer.json.id} "${answer.json.name}"${note}`)
      yield* Console.log(`  ${client.url}/formulas/${answer.json.id}`)
      return
    }
    if (isDuplicate(answer)) {
      if (json) return yield* printJson(answer.json)
      yield* Console.log(`duplicate: the same make-up is already stored as ${answer.json.existingId}${note}`)
      yield* Console.log(`  ${client.url}${answer.json.existingUrl}`)
      return
    }
    if (json) yield* printJson(answer.json ?? { status: answer.status, body: answer.text })
    return yield* failureOf(answer)
  })
).pipe(
  Command.withDescription(
    "Submit one formula (JSON): prints created, duplicate (with the existing id) or every problem"
  ),
  Command.withExamples([
    { command: "formulas submit summer-breeze.json", description: "Submit a formula from a file" },
    {
      command: `echo '{"name":"Summer Breeze","materials":[{"name":"Bergamot Oil","concentration":15.5}]}' | formulas submit -`,
      description: "Submit from stdin"
    }
  ])
)

const materialsOf = (formula: any): string =>
  (formula.materials ?? []).map((material: any) => `${material.name} ${material.concentration}%`).join(", ")

export const get = Command.make(
  "get",
  { id: Argument.String("id").pipe(Argument.withDescription("The formula's id (from submit or list)")) },
  Effect.fn("formulas.get")(function* ({ id }) {
    const { client, json } = yield* clientFor()
    const answer = yield* client.expectOk("GET", `/formulas/${encodeURIComponent(id)}`)
    const formula = answer.json
    if (json) return yield* printJson(formula)
    yield* Console.log(
      table(
        ["FIELD", "VALUE"],
        [
          ["id", formula.id],
          ["name", formula.name],
          ["created", formula.createdAt],
          ["fingerprint", formula.fingerprint],
          ["message", `${formula.message?.status ?? "-"} (${formula.message?.id ?? "-"})`],
          // How it ended, when it has: the consumer's result, or the dead letter's last error.
          ...(formula.message?.attempts > 0 ? [["attempts", String(formula.message.attempts)]] : []),
          ...(formula.message?.processedAt ? [["processed", formula.message.processedAt]] : []),
          ...(formula.message?.result != null ? [["result", JSON.stringify(formula.message.result)]] : []),
          ...(formula.message?.lastError ? [["last error", formula.message.lastError]] : [])
        ],
        80
      )
    )
    yield* Console.log("")
    yield* Console.log(
      table(
        ["MATERIAL", "CONCENTRATION %"],
        formula.materials.map((material: any) => [material.name, String(material.concentration)]),
        80
      )
    )
  })
).pipe(Command.withDescription("Show one formula: its materials and its message's delivery state"))

export const list = Command.make(
  "list",
  {
    limit: Flag.Int("limit").pipe(
      Flag.withDescription("Formulas per page, 1-100 (default 20)"),
      Flag.filter(
        (limit) => limit >= 1 && limit <= 100,
        (limit) => `--limit must be between 1 and 100, not ${limit}`
      ),
      Flag.withDefault(20)
    ),
    all: Flag.Boolean("all").pipe(Flag.withDescription("Follow nextCursor to the end"), Flag.withDefault(false)),
    cursor: Flag.String("cursor").pipe(Flag.withDescription("Start at this page (a nextCursor)"), Flag.optional)
  },
  Effect.fn("formulas.list")(function* ({ limit, all, cursor }) {
    const { client, json } = yield* clientFor()
    const items: Array<any> = []
    let next: string | null = Option.getOrNull(cursor)
    do {
      const query = `?limit=${all ? 100 : limit}${next === null ? "" : `&cursor=${encodeURIComponent(next)}`}`
      const page = (yield* client.expectOk("GET", `/formulas${query}`)).json
      items.push(...page.items)
      next = page.nextCursor
    } while (all && next !== null)
    if (json) return yield* printJson(all ? { items } : { items, nextCursor: next })
    if (items.length === 0) return yield* Console.log("no formulas yet: add one with `formulas submit FILE`")
    yield* Console.log(
      table(
        ["ID", "NAME", "CREATED", "MESSAGE", "MATERIALS"],
        items.map((formula) => [
          formula.id,
          formula.name,
          formula.createdAt,
          formula.message?.status ?? "-",
          materialsOf(formula)
        ])
      )
    )
    yield* Console.log(
      next === null
        ? `${items.length} formula${items.length === 1 ? "" : "s"}`
        : `${items.length} shown; more with --cursor ${next} (or --all)`
    )
  })
).pipe(Command.withDescription("List formulas, newest first, as a table"), Command.withAlias("ls"))
