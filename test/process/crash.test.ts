/**
 * Crash safety of the real server (`node src/main.ts`), on every database:
 * concurrent clients submit new and duplicate make-ups, the process is killed
 * with SIGKILL in the middle of the load, restarted on the same data, and
 * checked — several times over.
 *
 * After each restart:
 *   - every 201 a client received survived (same id, same fingerprint, same message id);
 *   - every 409 names a stored formula of the same make-up;
 *   - draining the queue over HTTP (receive, ack) yields exactly one message
 *     per formula in the database over the whole test: no message twice, none
 *     missing, none naming a formula that is not stored;
 *   - nothing else appeared: every stored formula is a make-up some client
 *     sent, each make-up at most once. (Requests that got no answer may or may
 *     not have stored their formula; if they did, it has its one message.)
 *
 * Protects: the transaction storing formula and outbox row together, start-up
 * recovery re-enqueuing committed undelivered messages before /health is 200,
 * acks settling outbox rows (settled messages do not come back), and the
 * fingerprint's unique index under concurrent duplicates.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { postgresUrl } from "../support/Databases.ts"
import { ownDatabase } from "./ServerProcess.ts"

const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

const cycles = 3
const clients = 8

interface Target {
  readonly name: "pglite" | "postgres"
  /** Environment for the server, on storage that lives as long as the scope. */
  readonly storage: Effect.Effect<Record<string, string>, unknown, Scope.Scope>
}

const pgliteTarget: Target = {
  name: "pglite",
  storage: Effect.map(
    Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "formula-intake-crash-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    ),
    (dir) => ({ DATA_DIR: dir })
  )
}

/** A database of its own on the test server (the server reads only DATABASE_URL), dropped afterwards. */
const postgresTarget = (url: string): Target => ({
  name: "postgres",
  storage: Effect.map(ownDatabase(url, "crash"), (databaseUrl) => ({ DATABASE_URL: databaseUrl }))
})

const targets: ReadonlyArray<Target> = [
  pgliteTarget,
  ...(postgresUrl === undefined ? [] : [postgresTarget(postgresUrl)])
]

// ---------------------------------------------------------------------------------------------------------------
// The server process

interface Server {
  readonly base: string
  readonly child: ChildProcess
  readonly output: () => string
}

const freePort = Effect.callback<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Waits until the child is gone (it was sent SIGKILL). */
const awaitExit = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    if (exited(child)) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/** `node src/main.ts` on `env`; SIGKILLed with the scope if still running. Returns once /health is 200. */
const start = (env: Record<string, string>) =>
  Effect.gen(function* () {
    const port = yield* freePort
    const server = yield* Effect.acquireRelease(
      Effect.sync((): Server => {
        const childEnv: NodeJS.ProcessEnv = {
          ...process.env,
          ...env,
          PORT: String(port),
          QUEUE_CAPACITY: "100000"
        }
        if (env["DATABASE_URL"] === undefined) delete childEnv["DATABASE_URL"]
        const child = spawn(process.execPath, ["src/main.ts"], {
          cwd: projectRoot,
          env: childEnv,
          stdio: ["ignore", "pipe", "pipe"]
        })
        let output = ""
        const keep = (chunk: Buffer) => {
          output = (output + chunk.toString()).slice(-4000)
        }
        child.stdout!.on("data", keep)
        child.stderr!.on("data", keep)
        return { base: `http://127.0.0.1:${port}`, child, output: () => output }
      }),
      (server) =>
        Effect.suspend(() => {
          if (exited(server.child)) return Effect.void
          server.child.kill("SIGKILL")
          return awaitExit(server.child)
        })
    )
    const deadline = Date.now() + 30_000
    while (true) {
      assert.isFalse(exited(server.child), `the server exited during start-up: ${server.output()}`)
      assert.isBelow(Date.now(), deadline, `/health never answered 200: ${server.output()}`)
      const status = yield* Effect.promise(() =>
        fetch(`${server.base}/health`, { signal: AbortSignal.timeout(1_000) }).then(
          async (response) => {
            await response.arrayBuffer()
            return response.status
          },
          () => 0
        )
      )
      if (status === 200) return server
      yield* Effect.sleep(Duration.millis(100))
    }
  })

/** One HTTP exchange with a JSON body; `undefined` when no complete answer came back. */
const call = async (
  base: string,
  method: string,
  path: string,
  body?: unknown
): Promise<{ readonly status: number; readonly json: any } | undefined> => {
  try {
    const response = await fetch(base + path, {
      method,
      signal: AbortSignal.timeout(10_000),
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, json: text === "" ? undefined : JSON.parse(text) }
  } catch {
    return undefined
  }
}

const callOk = (base: string, method: string, path: string, body?: unknown) =>
  Effect.promise(() => call(base, method, path, body)).pipe(
    Effect.map((answer) => {
      assert.isDefined(answer, `${method} ${path} answered`)
      return answer!
    })
  )

// ---------------------------------------------------------------------------------------------------------------
// The load and what it saw

/** A make-up identified by its tag (in every material name): the test knows which tag each formula carries. */
const makeUp = (tag: string) => ({
  name: `Crash ${tag}`,
  materials: [
    { name: `Bergamot ${tag}`, concentration: 12.5 },
    { name: `Vetiver ${tag}`, concentration: "3.25" }
  ]
})

const tagOf = (formula: { readonly materials: ReadonlyArray<{ readonly name: string }> }) =>
  formula.materials[0]!.name.split(" ").pop()!

interface Sent {
  readonly tag: string
  /** 201: the formula created; 409: the existing id; other status; undefined: no answer. */
  readonly status: number | undefined
  readonly json: any
}

/** `clients` concurrent clients submitting until `stop` is set; 1 in 4 submissions repeats an earlier make-up. */
const load = (base: string, sent: Array<Sent>, tags: Array<string>, stop: { stopped: boolean }) =>
  Effect.promise(() =>
    Promise.all(
      Array.from({ length: clients }, async () => {
        while (!stop.stopped) {
          const repeat = tags.length > 0 && Math.random() < 0.25
          const tag = repeat ? tags[Math.floor(Math.random() * tags.length)]! : randomBytes(6).toString("hex")
          if (!repeat) tags.push(tag)
          const answer = await call(base, "POST", "/formulas", makeUp(tag))
          sent.push({ tag, status: answer?.status, json: answer?.json })
        }
      })
    )
  )

// ---------------------------------------------------------------------------------------------------------------
// The checks after a restart

interface FormulaView {
  readonly id: string
  readonly fingerprint: string
  readonly materials: ReadonlyArray<{ readonly name: string }>
  readonly message: { readonly id: string; readonly status: string }
}

const allFormulas = (base: string) =>
  Effect.gen(function* () {
    const items: Array<FormulaView> = []
    let cursor: string | null = null
    do {
      const page: { readonly status: number; readonly json: any } = yield* callOk(
        base,
        "GET",
        `/formulas?limit=100${cursor === null ? "" : `&cursor=${cursor}`}`
      )
      assert.strictEqual(page.status, 200)
      items.push(...page.json.items)
      cursor = page.json.nextCursor
    } while (cursor !== null)
    return items
  })

/** Receives and acks every message; returns them. */
const drain = (base: string) =>
  Effect.gen(function* () {
    const messages: Array<{ readonly messageId: string; readonly body: { readonly formulaId: string } }> = []
    while (true) {
      const batch = yield* callOk(base, "POST", "/queue/receive", { max: 100, visibilityTimeoutMs: 60_000 })
      assert.strictEqual(batch.status, 200)
      if (batch.json.messages.length === 0) return messages
      for (const message of batch.json.messages) {
        messages.push(message)
        const acked = yield* callOk(base, "POST", "/queue/ack", { receipt: message.receipt })
        assert.strictEqual(acked.status, 204, `ack of ${message.messageId}`)
      }
    }
  })

/** Message ids consumers have received over the whole test (acked, so never to come back). */
const check = (base: string, sent: ReadonlyArray<Sent>, tags: ReadonlyArray<string>, delivered: Set<string>) =>
  Effect.gen(function* () {
    const formulas = yield* allFormulas(base)
    const byId = new Map(formulas.map((formula) => [formula.id, formula]))

    // Nothing else appeared, each make-up at most once.
    const sentTags = new Set(tags)
    const byTag = new Map<string, FormulaView>()
    for (const formula of formulas) {
      const tag = tagOf(formula)
      assert.isTrue(sentTags.has(tag), `stored formula ${formula.id} carries a make-up some client sent`)
      assert.isFalse(byTag.has(tag), `make-up ${tag} is stored once`)
      byTag.set(tag, formula)
    }

    // Every 201 survived; every 409 names the stored formula of its make-up.
    for (const answer of sent) {
      if (answer.status === 201) {
        const stored = byId.get(answer.json.id)
        assert.isDefined(stored, `created formula ${answer.json.id} (make-up ${answer.tag}) survived the crash`)
        assert.strictEqual(stored!.fingerprint, answer.json.fingerprint)
        assert.strictEqual(stored!.message.id, answer.json.message.id)
        const one = yield* callOk(base, "GET", `/formulas/${answer.json.id}`)
        assert.strictEqual(one.status, 200)
        assert.strictEqual(one.json.fingerprint, answer.json.fingerprint)
      } else if (answer.status === 409) {
        assert.strictEqual(byTag.get(answer.tag)?.id, answer.json.existingId, `409 for ${answer.tag} names its formula`)
      } else if (answer.status !== undefined) {
        assert.fail(`unexpected answer ${answer.status} for make-up ${answer.tag}: ${JSON.stringify(answer.json)}`)
      }
    }

    // Exactly one message per stored formula over the whole test.
    const messages = yield* drain(base)
    const byMessageId = new Map(formulas.map((formula) => [formula.message.id, formula]))
    for (const message of messages) {
      assert.isFalse(delivered.has(message.messageId), `message ${message.messageId} is delivered once`)
      delivered.add(message.messageId)
      const formula = byMessageId.get(message.messageId)
      assert.isDefined(formula, `message ${message.messageId} belongs to a stored formula`)
      assert.strictEqual(message.body.formulaId, formula!.id, "the message announces its own formula")
    }
    for (const formula of formulas) {
      assert.isTrue(delivered.has(formula.message.id), `stored formula ${formula.id} had its message delivered`)
    }
    assert.strictEqual(delivered.size, formulas.length, "no message without a stored formula")
    return { formulas: formulas.length, drained: messages.length }
  })

for (const target of targets) {
  describe(`crash safety on ${target.name}`, () => {
    it.live(
      `SIGKILL during concurrent submissions, ${cycles} times: after each restart every 201 survived and each stored formula has exactly one message`,
      () =>
        Effect.gen(function* () {
          const env = yield* target.storage
          const sent: Array<Sent> = []
          const tags: Array<string> = []
          const delivered = new Set<string>()
          const log: Array<string> = []
          for (let cycle = 0; cycle <= cycles; cycle++) {
            const server = yield* start(env)
            if (cycle > 0) {
              const result = yield* check(server.base, sent, tags, delivered)
              log.push(`after kill ${cycle}: ${result.formulas} formulas, ${result.drained} messages drained`)
            }
            if (cycle === cycles) break
            const stop = { stopped: false }
            const before = sent.length
            const running = yield* load(server.base, sent, tags, stop).pipe(Effect.forkChild)
            yield* Effect.sleep(Duration.millis(300 + Math.floor(Math.random() * 1_200)))
            server.child.kill("SIGKILL")
            yield* awaitExit(server.child)
            stop.stopped = true
            yield* Fiber.join(running)
            const answered = sent.slice(before)
            log.push(
              `load ${cycle + 1}: ${answered.filter((s) => s.status === 201).length} created, ` +
                `${answered.filter((s) => s.status === 409).length} duplicates, ` +
                `${answered.filter((s) => s.status === undefined).length} unanswered`
            )
            assert.isAbove(answered.filter((s) => s.status === 201).length, 0, "the load created formulas")
          }
          console.info(`crash test on ${target.name}: ${log.join("; ")}`)
        }).pipe(Effect.scoped),
      90_000
    )
  })
}
