/**
 * `formulas import` as a person uses it: in a real terminal (tmux) showing
 * its progress bar, stopped half-way with Ctrl-C, then run again. The file
 * holds 10,000 lines: distinct make-ups, exact copies of earlier lines (the
 * same Idempotency-Key), the same make-ups under other names (duplicates),
 * lines that are not JSON and formulas that are invalid.
 *
 * Invariants: Ctrl-C stops cleanly (exit 130, a summary, every request sent
 * is recorded: what the server stored is exactly what the report says was
 * created); the re-run stores nothing twice, reports every earlier outcome
 * (replayed, same ids) and every line exactly once; each make-up is stored
 * once.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { testDatabases } from "../support/Databases.ts"
import { BaseUrl, testServer } from "../support/TestServer.ts"
import { formulas, terminal, waitForScreen } from "./Cli.ts"

type Kind = "distinct" | "copy" | "duplicate" | "notJson" | "invalid"

interface Line {
  readonly kind: Kind
  readonly text: string
  /** For copies and duplicates: the 1-based line whose make-up this repeats. */
  readonly of?: number
}

const material = (i: number) => [
  { name: `Import Oil ${i}`, concentration: (i % 90) + 1 },
  { name: "Lavender Absolute", concentration: 10 }
]

/** 10,000 lines; every 20th of the rest a copy, duplicate, not-JSON or invalid line, in turn. */
const makeLines = (): Array<Line> => {
  const lines: Array<Line> = []
  let distinct = 0
  for (let n = 1; n <= 10_000; n++) {
    const special = n > 100 && n % 20 === 0 ? (n / 20) % 4 : -1
    const earlier = ((n * 7919) % 90) + 1 // a distinct line among the first 100
    if (special === 0) lines.push({ kind: "copy", text: lines[earlier - 1]!.text, of: earlier })
    else if (special === 1) {
      const original = JSON.parse(lines[earlier - 1]!.text)
      lines.push({
        kind: "duplicate",
        text: JSON.stringify({ name: `Renamed ${n}`, materials: [...original.materials].reverse() }),
        of: earlier
      })
    } else if (special === 2) lines.push({ kind: "notJson", text: `{"name": "Broken ${n}", "materials": [` })
    else if (special === 3) lines.push({ kind: "invalid", text: JSON.stringify({ name: "", materials: [] }) })
    else
      lines.push({ kind: "distinct", text: JSON.stringify({ name: `Import ${n}`, materials: material(distinct++) }) })
  }
  return lines
}

const readReport = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line))

const storedIds = (url: string) =>
  Effect.promise(async () => {
    const ids: Array<string> = []
    let cursor: string | null = null
    do {
      const page: any = await (
        await fetch(`${url}/formulas?limit=100${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`)
      ).json()
      ids.push(...page.items.map((item: any) => item.id))
      cursor = page.nextCursor
    } while (cursor !== null)
    return ids
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "formulas-import-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

// The fastest database available: the import is the client's behaviour, the same on either.
const database = testDatabases[testDatabases.length - 1]!

describe(`formulas import on ${database.name}`, () => {
  layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
    it.effect(
      "10,000 lines: progress bar, Ctrl-C half-way, re-run; each make-up stored once, every line reported once",
      () =>
        Effect.gen(function* () {
          const url = yield* BaseUrl
          const dir = yield* tempDir
          // Formulas other tests on this server stored are not this import's.
          const others = new Set(yield* storedIds(url))
          const ours = Effect.map(storedIds(url), (ids) => ids.filter((id) => !others.has(id)))
          const lines = makeLines()
          const file = join(dir, "formulas.jsonl")
          writeFileSync(file, lines.map((line) => line.text).join("\n") + "\n")
          const firstReport = join(dir, "first.jsonl")

          const session = yield* terminal(["import", file, "--url", url, "--report", firstReport])
          const bar = /\[(█*)(░*)\] (\d+)\/10000 +(\d+)% +[\d,]+ lines\/s +ETA \S+/
          const running = yield* waitForScreen(
            session,
            (screen) => {
              const match = bar.exec(screen)
              return match !== null && Number(match[3]) >= 3_000
            },
            180_000
          )
          const shown = bar.exec(running)!
          assert.strictEqual(shown[1]!.length + shown[2]!.length, 30, running)
          assert.strictEqual(Number(shown[4]), Math.floor(Number(shown[3]) / 100), running)
          session.keys("C-c")
          const stopped = yield* waitForScreen(session, (screen) => screen.includes("EXIT="), 60_000)
          assert.include(stopped, "EXIT=130", stopped)
          const done = Number(/import interrupted after (\d+) lines/.exec(stopped)?.[1])
          assert.isBelow(done, 10_000, stopped)
          assert.match(stopped, /^created +\d+/m, stopped)

          // Every request sent before Ctrl-C was answered and recorded: the server holds what the report says.
          const first = readReport(firstReport)
          assert.strictEqual(first.length, done)
          const createdFirst = new Set(first.filter((r) => r.outcome === "created").map((r) => r.id))
          const storedAfterFirst = yield* ours
          assert.deepStrictEqual(new Set(storedAfterFirst), createdFirst)

          // The re-run, not on a terminal: plain progress lines, the summary as JSON.
          const secondReport = join(dir, "second.jsonl")
          const rerun = yield* formulas(["import", file, "--url", url, "--report", secondReport, "--json"])
          assert.strictEqual(rerun.code, 1, "some lines are invalid: the user's to fix") // and said so
          assert.include(rerun.stderr, "lines are invalid: see the report")
          assert.match(rerun.stderr, /^progress: 10000\/10000 lines \(100%\)/m)
          const summary = JSON.parse(rerun.stdout)
          const expected = (kind: Kind) => lines.filter((line) => line.kind === kind).length
          assert.deepStrictEqual(
            [summary.created, summary.duplicate, summary.invalid, summary.failed, summary.interrupted],
            [
              expected("distinct") + expected("copy"),
              expected("duplicate"),
              expected("notJson") + expected("invalid"),
              0,
              false
            ]
          )

          const second = readReport(secondReport).sort((a, b) => a.line - b.line)
          assert.deepStrictEqual(
            second.map((r) => r.line),
            lines.map((_, index) => index + 1)
          )
          const idOf = (lineNumber: number) => second[lineNumber - 1]!.id
          for (const [index, line] of lines.entries()) {
            const report = second[index]
            const where = `line ${index + 1} (${line.kind}): ${JSON.stringify(report)}`
            if (line.kind === "distinct") assert.strictEqual(report.outcome, "created", where)
            if (line.kind === "copy")
              assert.deepStrictEqual([report.outcome, report.id], ["created", idOf(line.of!)], where)
            if (line.kind === "duplicate") {
              assert.deepStrictEqual([report.outcome, report.id], ["duplicate", idOf(line.of!)], where)
            }
            if (line.kind === "notJson")
              assert.match(report.problems[0].message, /^not valid JSON: line 1, column \d+/, where)
            if (line.kind === "invalid") {
              assert.deepStrictEqual(
                report.problems.map((p: any) => p.path),
                ["/name", "/materials"],
                where
              )
            }
          }
          // What the first run did comes back as a replay, with the same ids.
          for (const earlier of first) {
            if (earlier.outcome === "invalid") continue
            assert.strictEqual(second[earlier.line - 1].replayed, true, JSON.stringify(earlier))
            assert.strictEqual(second[earlier.line - 1].id, earlier.id)
          }

          const stored = yield* ours
          assert.strictEqual(stored.length, expected("distinct"))
          assert.strictEqual(new Set(stored).size, stored.length)
        }),
      480_000
    )

    it.effect("the same file twice: the second run stores nothing and replays every outcome with its id", () =>
      Effect.gen(function* () {
        const url = yield* BaseUrl
        const dir = yield* tempDir
        const file = join(dir, "small.jsonl")
        const texts = Array.from({ length: 20 }, (_, i) =>
          JSON.stringify({ name: `Twice ${i}`, materials: [{ name: `Twice Oil ${i}`, concentration: 12 }] })
        )
        writeFileSync(file, texts.join("\n") + "\n")
        const before = (yield* storedIds(url)).length
        const reports = [join(dir, "1.jsonl"), join(dir, "2.jsonl")]
        for (const report of reports) {
          const ran = yield* formulas(["import", file, "--url", url, "--report", report])
          assert.strictEqual(ran.code, 0, ran.stderr)
        }
        const [first, second] = reports.map((report) => readReport(report).sort((a, b) => a.line - b.line))
        assert.deepStrictEqual(
          second!.map((r) => [r.line, r.outcome, r.id, r.replayed]),
          first!.map((r) => [r.line, "created", r.id, true])
        )
        assert.strictEqual((yield* storedIds(url)).length, before + texts.length)
      })
    )
  })
})

describe("formulas import against a busy service", () => {
  it.live("503 with Retry-After: the line is sent again after the wait, not reported failed", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      // A stand-in service: the first POST of each line is refused with 503 + Retry-After: 1.
      const refused = new Set<string>()
      const attempts: Array<{ readonly key: string; readonly at: number }> = []
      const server = createServer((request, response) => {
        if (request.url === "/health") return response.end("{}")
        const key = String(request.headers["idempotency-key"])
        attempts.push({ key, at: Date.now() })
        request.resume()
        request.on("end", () => {
          if (!refused.has(key)) {
            refused.add(key)
            response.writeHead(503, { "content-type": "application/problem+json", "retry-after": "1" })
            return response.end(JSON.stringify({ title: "busy", status: 503 }))
          }
          response.writeHead(201, { "content-type": "application/json" })
          response.end(JSON.stringify({ id: `id-${key.slice(-6)}` }))
        })
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))),
        () => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
      )
      const port = (server.address() as { port: number }).port
      const file = join(dir, "two.jsonl")
      writeFileSync(file, '{"name":"A","materials":[]}\n{"name":"B","materials":[]}\n')
      const ran = yield* formulas(["import", file, "--url", `http://127.0.0.1:${port}`, "--json"])
      assert.strictEqual(ran.code, 0, ran.stderr)
      assert.strictEqual(JSON.parse(ran.stdout).created, 2)
      assert.strictEqual(attempts.length, 4)
      for (const key of refused) {
        const [first, second] = attempts.filter((attempt) => attempt.key === key)
        assert.isAtLeast(second!.at - first!.at, 1000, "Retry-After: 1 is honoured")
      }
    })
  )
})
