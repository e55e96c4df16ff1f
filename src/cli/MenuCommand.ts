/**
 * `formulas menu`: seed 000's interactive client, done properly — send
 * example formula 1 or 2 (created, then duplicate), an invalid one (every
 * problem listed), list all, quit. Arrow keys and Enter, or the item's
 * number; q, Esc or Ctrl-C quits. A terminal only: piped input gets a
 * clear usage error (exit 2) pointing at the scriptable commands.
 */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { describeProblem, UsageError } from "./CliErrors.ts"
import { type Client, problemOf } from "./Client.ts"
import { isDuplicate } from "./FormulaCommands.ts"
import { table } from "./Output.ts"
import { clientFor } from "./Root.ts"

const formula1 = {
  name: "Summer Breeze",
  materials: [
    { name: "Bergamot Oil", concentration: 15.5 },
    { name: "Lavender Absolute", concentration: 10.0 },
    { name: "Sandalwood", concentration: 5.2 }
  ]
}
const formula2 = {
  name: "Ocean Mist",
  materials: [
    { name: "Sea Salt Accord", concentration: 12 },
    { name: "Ambroxan", concentration: 8.5 },
    { name: "Neroli", concentration: 4 }
  ]
}
const invalid = { name: "", materials: [{ name: "Vetiver", concentration: 140 }, { concentration: -1 }] }

const submitExample = (client: Client, formula: unknown) =>
  Effect.gen(function* () {
    const answer = yield* client.send("POST", "/formulas", { body: JSON.stringify(formula) })
    if (answer.status === 201) return `created ${answer.json.id} "${answer.json.name}"`
    if (isDuplicate(answer)) return `duplicate: the same make-up is already stored as ${answer.json.existingId}`
    return describeProblem(answer.status, problemOf(answer))
  })

const listAll = (client: Client) =>
  Effect.gen(function* () {
    const items: Array<any> = []
    let cursor: string | null = null
    do {
      const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`
      const answer = yield* client.send("GET", `/formulas?limit=100${query}`)
      if (answer.status !== 200) return describeProblem(answer.status, problemOf(answer))
      items.push(...answer.json.items)
      cursor = answer.json.nextCursor
    } while (cursor !== null)
    if (items.length === 0) return "no formulas yet"
    return (
      table(
        ["ID", "NAME", "CREATED"],
        items.map((formula) => [formula.id, formula.name, formula.createdAt])
      ) + `\n${items.length} formula${items.length === 1 ? "" : "s"}`
    )
  })

interface Item {
  readonly label: string
  readonly run: ((client: Client) => Effect.Effect<string, unknown>) | "quit"
}

const items: ReadonlyArray<Item> = [
  { label: "Send formula 1 (Summer Breeze)", run: (client) => submitExample(client, formula1) },
  { label: "Send formula 2 (Ocean Mist)", run: (client) => submitExample(client, formula2) },
  { label: "Send an invalid formula", run: (client) => submitExample(client, invalid) },
  { label: "Get all formulas", run: listAll },
  { label: "Quit", run: "quit" }
]

const render = (selected: number) =>
  [
    ...items.map((item, index) => `${index === selected ? "❯" : " "} ${index + 1}. ${item.label}`),
    "↑/↓ then Enter, or press a number; q quits"
  ].join("\n") + "\n"

const readKey = Effect.callback<string>((resume) => {
  const onData = (data: Buffer) => resume(Effect.succeed(data.toString("utf8")))
  process.stdin.once("data", onData)
  return Effect.sync(() => void process.stdin.off("data", onData))
})

const rawMode = Effect.acquireRelease(
  Effect.sync(() => {
    process.stdin.setRawMode(true)
    process.stdin.resume()
  }),
  () =>
    Effect.sync(() => {
      process.stdin.setRawMode(false)
      process.stdin.pause()
    })
)

export const menu = Command.make(
  "menu",
  {},
  Effect.fn("formulas.menu")(function* () {
    if (process.stdin.isTTY !== true || process.stdout.isTTY !== true) {
      return yield* new UsageError({
        message:
          "menu is interactive and needs a terminal; in scripts use `formulas submit FILE`, `formulas list --all` or `formulas import FILE.jsonl`"
      })
    }
    const { client } = yield* clientFor()
    yield* rawMode
    yield* Console.log(`Formula intake at ${client.url}`)
    let selected = 0
    const lines = items.length + 1
    process.stdout.write(render(selected))
    while (true) {
      const key = yield* readKey
      let chosen: number | undefined
      if (key === "\x1b[A" || key === "k") selected = (selected + items.length - 1) % items.length
      else if (key === "\x1b[B" || key === "j") selected = (selected + 1) % items.length
      else if (key === "\r" || key === "\n") chosen = selected
      else if (/^[1-9]$/.test(key) && Number(key) <= items.length) chosen = Number(key) - 1
      else if (key === "q" || key === "\x1b" || key === "\x03") chosen = items.length - 1
      else continue
      if (chosen === undefined) {
        process.stdout.write(`\x1b[${lines}A\x1b[0J` + render(selected))
        continue
      }
      selected = chosen
      const item = items[chosen]!
      process.stdout.write(`\x1b[${lines}A\x1b[0J` + render(selected))
      if (item.run === "quit") return yield* Console.log("bye")
      const result = yield* item.run(client).pipe(Effect.catch((error) => Effect.succeed(String(error))))
      process.stdout.write(`\n${result.replaceAll("\n", "\r\n")}\n\n` + render(selected))
    }
  })
).pipe(Command.withDescription("Seed 000's interactive menu: send example formulas, an invalid one, list all"))
