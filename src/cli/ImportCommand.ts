/**
 * `formulas import FILE.jsonl`: one formula per line, sent concurrently.
 *
 * - Streamed: lines are read as requests need them (at most `--concurrency`
 *   in flight), so a 1 GB file costs no more memory than a small one.
 * - Resumable: each line's Idempotency-Key is the SHA-256 of its bytes, so a
 *   second run of the same file (after Ctrl-C, a crash, a lost connection)
 *   stores nothing twice and gets every earlier outcome back as a replay.
 * - Never stopped by a bad line: not-JSON and 400s are reported and skipped;
 *   429/503 are retried after Retry-After (or a backoff), 5xx a few times.
 * - Ctrl-C: reading stops, each request already sent is answered and
 *   recorded (a request and its record are one uninterruptible step), then
 *   the summary of what was done; exit 130.
 *
 * Exit codes: 0 every line created or duplicate; 1 some lines invalid;
 * 3 some lines failed (the service); 130 interrupted.
 */
import { Console, Data, Duration, Effect, Exit, Option, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { createHash } from "node:crypto"
import { createReadStream, createWriteStream } from "node:fs"
import { access } from "node:fs/promises"
import { createInterface } from "node:readline"
import { InputError, Unreachable } from "./CliErrors.ts"
import type { Client } from "./Client.ts"
import { judge, type LineReport, notJson } from "./ImportOutcome.ts"
import { Tally } from "./ImportTally.ts"
import { checkJson } from "./JsonText.ts"
import { countLines } from "./LineCount.ts"
import { bar, plainLine } from "./Progress.ts"
import { printJson } from "./Output.ts"
import { clientFor } from "./Root.ts"

/** The key that makes a re-run repeat nothing: the line's own content. */
export const idempotencyKeyOf = (line: string) => "import-" + createHash("sha256").update(line).digest("hex")

/** Attempts per line: many for "come back later" (429, 503, key in flight), few for errors. */
const transientAttempts = 30
const errorAttempts = 5
const backoffMs = (attempt: number) => Math.min(5_000, 100 * 2 ** attempt)
const maxWaitMs = 60_000

/** Some lines were not stored: exit 1 when they are invalid (the user's to fix), 3 when the service failed. */
export class ImportIncomplete extends Data.TaggedError("ImportIncomplete")<{
  readonly message: string
  readonly exitCode: number
}> {}

const sendLine = (
  client: Client,
  lineNumber: number,
  text: string,
  record: (report: LineReport) => void
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const checked = checkJson(text)
    if (!checked.ok) return record(notJson(lineNumber, checked.message))
    const headers = { "idempotency-key": idempotencyKeyOf(text) }
    for (let attempt = 0; ; attempt++) {
      // The request and the record of its answer are one step Ctrl-C waits for.
      const waitMs = yield* Effect.uninterruptible(
        client.send("POST", "/formulas", { body: text, headers }).pipe(
          Effect.map((answer) => judge(lineNumber, answer)),
          Effect.catch((error: Unreachable) =>
            Effect.succeed({ _tag: "Retry" as const, afterMs: undefined, why: error.reason, transient: false })
          ),
          Effect.map((judgement) => {
            if (judgement._tag === "Done") {
              record(judgement.report)
              return undefined
            }
            if (attempt + 1 >= (judgement.transient ? transientAttempts : errorAttempts)) {
              record({
                line: lineNumber,
                outcome: "failed",
                problems: [{ path: "", message: `gave up after ${attempt + 1} attempts: ${judgement.why}` }]
              })
              return undefined
            }
            return Math.min(maxWaitMs, Math.max(judgement.afterMs ?? 0, backoffMs(attempt)))
          })
        )
      )
      if (waitMs === undefined) return
      yield* Effect.sleep(Duration.millis(waitMs))
    }
  })

export const importCommand = Command.make(
  "import",
  {
    file: Argument.String("file").pipe(Argument.withDescription("A JSONL file: one formula (JSON object) per line")),
    concurrency: Flag.Int("concurrency").pipe(
      Flag.withDescription("Requests in flight at once, 1-256 (default 8)"),
      Flag.filter(
        (n) => n >= 1 && n <= 256,
        (n) => `--concurrency must be between 1 and 256, not ${n}`
      ),
      Flag.withDefault(8)
    ),
    report: Flag.String("report").pipe(
      Flag.withDescription("Where to write each line's outcome as JSONL (default FILE.report.jsonl)"),
      Flag.optional
    )
  },
  Effect.fn("formulas.import")(function* ({ file, concurrency, report }) {
    const { client, json } = yield* clientFor({ maxSockets: concurrency })
    yield* Effect.tryPromise({
      try: () => access(file),
      catch: (error) => new InputError({ message: `cannot read ${file}: ${(error as NodeJS.ErrnoException).code}` })
    })
    // Fail at once, exit 3, when nobody listens (rather than retrying every line).
    yield* client.send("GET", "/health")

    const reportPath = Option.getOrElse(report, () => `${file}.report.jsonl`)
    const reportFile = createWriteStream(reportPath)
    const tally = new Tally()
    let blank = 0
    let total: number | undefined
    const started = Date.now()
    const record = (line: LineReport) => {
      tally.add(line)
      reportFile.write(JSON.stringify(line) + "\n")
    }

    const terminal = process.stderr.isTTY === true
    const figures = () => ({ done: tally.done + blank, total, elapsedMs: Date.now() - started })
    const draw = () =>
      terminal ? process.stderr.write(`\r\x1b[2K${bar(figures())}`) : process.stderr.write(plainLine(figures()) + "\n")

    yield* Effect.promise(() => countLines(file)).pipe(
      Effect.tap((lines) => Effect.sync(() => (total = lines))),
      Effect.forkScoped
    )
    yield* Effect.sync(draw).pipe(
      Effect.andThen(Effect.sleep(terminal ? "100 millis" : "2 seconds")),
      Effect.forever,
      Effect.forkScoped
    )

    const lines = Stream.fromAsyncIterable(
      createInterface({ input: createReadStream(file), crlfDelay: Infinity }),
      (error) => new InputError({ message: `cannot read ${file}: ${String(error)}` })
    )
    const exit = yield* lines.pipe(
      Stream.mapEffect(
        (text, index) =>
          text.trim() === "" ? Effect.sync(() => void blank++) : sendLine(client, index + 1, text, record),
        { concurrency, unordered: true }
      ),
      Stream.runDrain,
      Effect.onExit((exit) =>
        Effect.gen(function* () {
          const interrupted = Exit.isFailure(exit)
          if (terminal) process.stderr.write(`\r\x1b[2K${bar(figures())}\n`)
          else process.stderr.write(plainLine(figures()) + "\n")
          yield* Effect.promise(() => new Promise<void>((resolve) => reportFile.end(resolve)))
          const seconds = (Date.now() - started) / 1000
          yield* json
            ? printJson(tally.toJson({ interrupted, report: reportPath }))
            : Console.log(tally.summary({ interrupted, report: reportPath, seconds }))
        })
      ),
      Effect.exit
    )
    if (Exit.isFailure(exit)) return yield* exit
    if (tally.counts.failed > 0) {
      return yield* Effect.fail(
        new ImportIncomplete({
          message: `${tally.counts.failed} lines failed (the service): run the import again`,
          exitCode: 3
        })
      )
    }
    if (tally.counts.invalid > 0) {
      return yield* Effect.fail(
        new ImportIncomplete({
          message: `${tally.counts.invalid === 1 ? "1 line is" : `${tally.counts.invalid} lines are`} invalid: see the report, fix them and import again`,
          exitCode: 1
        })
      )
    }
  })
).pipe(
  Command.withDescription(
    "Import a JSONL file, one formula per line: concurrent, resumable (re-running sends nothing twice), with a progress bar and a report"
  ),
  Command.withExamples([
    { command: "formulas import formulas.jsonl", description: "Import, reporting to formulas.jsonl.report.jsonl" },
    { command: "formulas import big.jsonl --concurrency 16 --report big-report.jsonl", description: "Faster" }
  ])
)
