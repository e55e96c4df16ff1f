/**
 * submit, get, list, queue and the error paths, each as a real `formulas`
 * process against a real server, on both databases: the text a person reads
 * and the exit code a script checks (DESIGN.md "Command line").
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { Effect } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { BaseUrl, testServer } from "../support/TestServer.ts"
import { bin, formulas } from "./Cli.ts"

const summerBreeze = JSON.stringify({
  name: "Summer Breeze",
  materials: [
    { name: "Bergamot Oil", concentration: 15.5 },
    { name: "Sandalwood", concentration: 5.2 }
  ]
})

for (const database of testDatabases) {
  describe(`formulas CLI on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect("submit: created, then duplicate naming the existing id (both exit 0); get and list show it", () =>
        Effect.gen(function* () {
          const url = yield* BaseUrl
          const created = yield* formulas(["submit", "-", "--url", url], { input: summerBreeze })
          assert.strictEqual(created.code, 0, created.stderr)
          const id = /^created (\S+) "Summer Breeze"/.exec(created.stdout)?.[1]
          assert.isDefined(id, created.stdout)
          assert.include(created.stdout, `${url}/formulas/${id}`)

          const duplicate = yield* formulas(["submit", "--url", url], { input: summerBreeze })
          assert.strictEqual(duplicate.code, 0, duplicate.stderr)
          assert.include(duplicate.stdout, `duplicate: the same make-up is already stored as ${id}`)

          const got = yield* formulas(["get", id!, "--url", url])
          assert.strictEqual(got.code, 0)
          assert.match(got.stdout, /Bergamot Oil\s+15\.5/)

          const listed = yield* formulas(["--url", url, "list", "--json"])
          assert.strictEqual(listed.code, 0)
          assert.deepStrictEqual(
            JSON.parse(listed.stdout).items.map((formula: any) => formula.id),
            [id]
          )
          const table = yield* formulas(["list", "--url", url])
          assert.match(table.stdout, /^ID\s+NAME\s+CREATED\s+MESSAGE\s+MATERIALS$/m)
          assert.match(table.stdout, new RegExp(`^${id}\\s+Summer Breeze\\s`, "m"))
        })
      )

      it.effect("submit: every validation problem with its path, exit 1; bad JSON with line and column, exit 1", () =>
        Effect.gen(function* () {
          const url = yield* BaseUrl
          const invalid = yield* formulas(["submit", "--url", url], {
            input: JSON.stringify({ name: "", materials: [{ name: "Musk", concentration: 150 }, {}] })
          })
          assert.strictEqual(invalid.code, 1)
          assert.include(invalid.stderr, "400 The formula is not valid")
          for (const path of ["/name", "/materials/0/concentration", "/materials/1/name"]) {
            assert.match(invalid.stderr, new RegExp(`^  ${path}  `, "m"))
          }
          const broken = yield* formulas(["submit", "--url", url], { input: '{\n  "name": "x",\n}' })
          assert.strictEqual(broken.code, 1)
          assert.include(broken.stderr, "stdin is not valid JSON: line 3, column 1")
          const missing = yield* formulas(["submit", "no-such-file.json", "--url", url])
          assert.strictEqual(missing.code, 1)
          assert.include(missing.stderr, "cannot read no-such-file.json: ENOENT")
        })
      )

      it.effect("4xx: the problem's title and detail, exit 1; usage errors exit 2", () =>
        Effect.gen(function* () {
          const url = yield* BaseUrl
          const absent = yield* formulas(["get", "no-such-id", "--url", url])
          assert.strictEqual(absent.code, 1)
          assert.include(absent.stderr, "404 No formula has this id: no formula with id no-such-id")
          const usage = yield* formulas(["list", "--limit", "0", "--url", url])
          assert.strictEqual(usage.code, 2)
          assert.include(usage.stderr + usage.stdout, "--limit must be between 1 and 100")
          const unknown = yield* formulas(["frobnicate"])
          assert.strictEqual(unknown.code, 2)
          const help = yield* formulas(["import", "--help"])
          assert.strictEqual(help.code, 0)
          assert.include(help.stdout, "--concurrency")
        })
      )

      it.effect("queue: receive a submitted formula's message, ack it with a result, stats count it", () =>
        Effect.gen(function* () {
          const url = yield* BaseUrl
          yield* formulas(["submit", "--url", url], {
            input: JSON.stringify({ name: "Queue Me", materials: [{ name: "Iris", concentration: 3 }] })
          })
          const received = yield* formulas(["queue", "receive", "--max", "10", "--url", url, "--json"])
          assert.strictEqual(received.code, 0, received.stderr)
          const message = JSON.parse(received.stdout).messages.find((m: any) => m.body.name === "Queue Me")
          assert.isDefined(message)
          const acked = yield* formulas(["queue", "ack", message.receipt, "--result", '{"class":"EdT"}', "--url", url])
          assert.strictEqual(acked.code, 0, acked.stderr)
          const again = yield* formulas(["queue", "ack", message.receipt, "--url", url])
          assert.strictEqual(again.code, 1, "a stale receipt is the user's to fix")
          const stats = yield* formulas(["queue", "stats", "--url", url, "--json"])
          assert.isAtLeast(JSON.parse(stats.stdout).totals.acked, 1)
          const badResult = yield* formulas(["queue", "ack", "r", "--result", "{oops", "--url", url])
          assert.strictEqual(badResult.code, 1)
          assert.include(badResult.stderr, "--result is not valid JSON: line 1, column 2")
        })
      )
    })
  })
}

describe("formulas CLI without a service", () => {
  layer(testServer(testDatabases[0]!.layer()), { excludeTestServices: true })((it) => {
    it.effect("unreachable: names the URL and how to start the service, exit 3", () =>
      Effect.gen(function* () {
        const ran = yield* formulas(["list", "--url", "http://127.0.0.1:9"])
        assert.strictEqual(ran.code, 3)
        assert.include(ran.stderr, "cannot reach the formula service at http://127.0.0.1:9 (ECONNREFUSED)")
        assert.include(ran.stderr, "npx formulas serve")
        const importing = yield* formulas(["import", "package.json", "--url", "http://127.0.0.1:9"])
        assert.strictEqual(importing.code, 3)
      })
    )
  })
})

// The system's Node (20 on this project's machines) cannot run the CLI's TypeScript: it must say so, not crash.
const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find(
  (path) =>
    existsSync(path) &&
    Number(execFileSync(path, ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8" })) < 22
)

describe("formulas on an old Node", () => {
  it.skipIf(systemNode === undefined)("names the Node it needs and how to run it, exit 2", () => {
    const ran = spawnSync(systemNode!, [bin, "--help"], { encoding: "utf8" })
    assert.strictEqual(ran.status, 2)
    assert.include(ran.stderr, "formulas needs Node 24")
    assert.include(ran.stderr, "npx formulas")
  })
})
