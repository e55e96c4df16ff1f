/**
 * `formulas menu` in a real terminal (tmux), driven as a person would: arrow
 * keys and Enter, and numbers. The screen shows seed 000's four choices (and
 * quit), the created / duplicate / every-problem answers, and the list.
 * Without a terminal it refuses with a usage error (exit 2).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { testDatabases } from "../support/Databases.ts"
import { BaseUrl, testServer } from "../support/TestServer.ts"
import { formulas, terminal, waitForScreen } from "./Cli.ts"

const database = testDatabases[testDatabases.length - 1]!

describe(`formulas menu on ${database.name}`, () => {
  layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
    it.effect("arrow keys and numbers: created, duplicate, every problem, the list, quit", () =>
      Effect.gen(function* () {
        const url = yield* BaseUrl
        const session = yield* terminal(["menu", "--url", url])
        const menu = yield* waitForScreen(session, (screen) => screen.includes("q quits"))
        for (const item of [
          "1. Send formula 1",
          "2. Send formula 2",
          "3. Send an invalid formula",
          "4. Get all formulas"
        ]) {
          assert.include(menu, item)
        }
        assert.match(menu, /^❯ 1\. Send formula 1/m, "the first item is selected")

        // Down, Enter: formula 2 is created, and the cursor stays on it.
        session.keys("Down")
        yield* waitForScreen(session, (screen) => /^❯ 2\. Send formula 2/m.test(screen))
        session.keys("Enter")
        const created = yield* waitForScreen(session, (screen) => /created \S+ "Ocean Mist"/.test(screen))
        const id = /created (\S+) "Ocean Mist"/.exec(created)![1]!

        // The number 2: the same make-up again, a duplicate naming the first.
        session.keys("2")
        yield* waitForScreen(session, (screen) =>
          screen.includes(`duplicate: the same make-up is already stored as ${id}`)
        )

        // Up from 2 is 1; the number 3 sends the invalid one: every problem with its path.
        session.keys("3")
        const invalid = yield* waitForScreen(session, (screen) => screen.includes("400 The formula is not valid"))
        for (const path of ["/name", "/materials/0/concentration", "/materials/1/name"]) assert.include(invalid, path)

        session.keys("4")
        const listed = yield* waitForScreen(session, (screen) => /^1 formula$/m.test(screen))
        assert.match(listed, new RegExp(`^${id}\\s+Ocean Mist`, "m"))

        session.keys("q")
        const quit = yield* waitForScreen(session, (screen) => screen.includes("EXIT="))
        assert.include(quit, "EXIT=0")
      })
    )

    it.effect("without a terminal: a usage error naming the scriptable commands, exit 2", () =>
      Effect.gen(function* () {
        const ran = yield* formulas(["menu", "--url", yield* BaseUrl])
        assert.strictEqual(ran.code, 2)
        assert.include(ran.stderr, "menu is interactive and needs a terminal")
        assert.include(ran.stderr, "formulas submit FILE")
      })
    )
  })
})
