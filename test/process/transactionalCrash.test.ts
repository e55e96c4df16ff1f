/**
 * consumeTransactional when the process dies between its COMMIT and the
 * answer: the example projection (examples/projection.ts, a real process
 * embedding the runtime) talks to PostgreSQL through a proxy that reads the
 * wire protocol (test/support/PgWire.ts). When the server answers the COMMIT
 * of the `killAt`-th handler transaction — committed, but the process has not
 * heard it — the proxy keeps the answer and the test SIGKILLs the process.
 * Then the projection is started again on the same database, until every
 * message is settled.
 *
 * Asserted: every formula is projected exactly once (one row each, and the
 * per-class counters sum to the number of formulas: a handler run twice
 * would count twice, or fail on the row's key and never settle), every
 * message is settled (none dead-lettered), each with the result its one
 * projection computed.
 *
 * PostgreSQL only: the embedded database lives inside the killed process.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Duration, Effect, Layer, Redacted } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { postgresUrl } from "../support/Databases.ts"
import { ClientStatements, CommitAnswers } from "../support/PgWire.ts"
import { TcpProxy, throughProxy } from "../support/TcpProxy.ts"
import { hasExited, outputOf, ownDatabase, type Running } from "./ServerProcess.ts"

const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

const submitted = 12
const killAt = 4

/** `node examples/projection.ts …args` with `env`, killed with the scope if still running. */
const spawnProjection = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync((): Running => {
      const child = spawn(process.execPath, ["examples/projection.ts", ...args], {
        cwd: projectRoot,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout!.on("data", (chunk) => (output += chunk))
      child.stderr!.on("data", (chunk) => (output += chunk))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
      )
      return { child, output: () => output, exited }
    }),
    (running) =>
      hasExited(running)
        ? Effect.void
        : Effect.asVoid(
            Effect.promise(() => {
              running.child.kill("SIGKILL")
              return running.exited
            })
          )
  )

interface Tally {
  readonly formulas: number
  readonly projected: number
  readonly counted: number
  readonly unsettled: number
  readonly deadLettered: number
  readonly resultsMatching: number
}

const tally = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const tables = yield* sql<{ n: number }>`
    SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'projection_class_counts'`
  if (tables[0]!.n === 0) return undefined
  const rows = yield* sql<Tally>`
    SELECT (SELECT count(*)::int FROM formulas) AS formulas,
           (SELECT count(*)::int FROM projection_formula_classes) AS projected,
           (SELECT coalesce(sum(formulas), 0)::int FROM projection_class_counts) AS counted,
           (SELECT count(*)::int FROM outbox WHERE delivered_at IS NULL AND dead_lettered_at IS NULL) AS unsettled,
           (SELECT count(*)::int FROM outbox WHERE dead_lettered_at IS NOT NULL) AS "deadLettered",
           (SELECT count(*)::int FROM outbox o JOIN projection_formula_classes p ON p.formula_id = o.formula_id
             WHERE o.result ->> 'concentrationClass' = p.class) AS "resultsMatching"`
  return rows[0]!
})

/** Each queue backend the projection can run on, with what differs in its environment. */
const backends: ReadonlyArray<{ readonly name: string; readonly env: Record<string, string> }> = [
  // The in-memory queue dies with the process; the restart recovers the unsettled rows from the outbox.
  { name: "memory", env: { QUEUE_BACKEND: "memory" } },
  // The rows are the queue: the killed process's claims come back when their visibility timeout (2 s) runs out.
  { name: "postgres", env: { QUEUE_BACKEND: "postgres", QUEUE_VISIBILITY_TIMEOUT_MS: "2000" } }
]

describe.skipIf(postgresUrl === undefined)(
  "consumeTransactional, process killed after COMMIT, before its answer",
  () => {
    it.live.each(backends)(
      "$name queue: every formula projected exactly once and every message settled after a restart",
      (backend) =>
        Effect.gen(function* () {
          const url = yield* ownDatabase(postgresUrl!, "txcrash")
          const target = new URL(url)
          const killed = yield* Deferred.make<void>()
          let worker: Running | undefined
          let armed = true
          let projectionCommits = 0

          const connections = new Map<
            number,
            { readonly statements: ClientStatements; readonly answers: CommitAnswers; inProjection: boolean }
          >()
          const connection = (id: number) => {
            let state = connections.get(id)
            if (state === undefined) {
              const created = {
                inProjection: false,
                answers: new CommitAnswers(),
                statements: new ClientStatements((sql) => {
                  if (sql.includes("projection_class_counts")) created.inProjection = true
                  if (/^\s*ROLLBACK/i.test(sql)) created.inProjection = false
                })
              }
              connections.set(id, created)
              state = created
            }
            return state
          }

          const proxyLayer = TcpProxy.layer(
            { host: target.hostname, port: Number(target.port || 5432) },
            {
              fromClient: (id, chunk) => connection(id).statements.push(chunk),
              fromServer: (id, chunk) => {
                const state = connection(id)
                if (state.answers.count(chunk) === 0 || !state.inProjection) return "forward"
                state.inProjection = false
                projectionCommits++
                if (!armed || projectionCommits !== killAt) return "forward"
                // Committed on the server; the process never learns it.
                armed = false
                worker?.child.kill("SIGKILL")
                Deferred.doneUnsafe(killed, Effect.void)
                return "hold"
              }
            }
          )
          const proxy = Context.get(yield* Layer.build(proxyLayer), TcpProxy)
          const env = { DATABASE_URL: throughProxy(url, proxy.port), LOG_LEVEL: "info", ...backend.env }

          worker = yield* spawnProjection(["--submit", String(submitted), "--concurrency", "2"], env)
          const first = worker
          yield* Deferred.await(killed).pipe(
            Effect.timeoutOrElse({
              duration: Duration.seconds(60),
              orElse: () => Effect.die(new Error(`never reached commit ${killAt}; ${outputOf(first)}`))
            })
          )
          const exit = yield* Effect.promise(() => first.exited)
          assert.strictEqual(exit.signal, "SIGKILL")

          const check = Effect.provide(tally, PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
          const atKill = (yield* check)!
          assert.isAtLeast(atKill.projected, killAt, "the held COMMIT committed")

          const second = yield* spawnProjection([], env)
          worker = second
          let final: Tally | undefined
          for (let i = 0; i < 240; i++) {
            final = yield* check
            if (final !== undefined && final.unsettled === 0) break
            if (hasExited(second)) break
            yield* Effect.sleep(Duration.millis(250))
          }
          assert.isDefined(final)
          assert.strictEqual(final!.unsettled, 0, `every message settled; ${outputOf(second)}`)
          assert.strictEqual(final!.deadLettered, 0, `none dead-lettered; ${outputOf(second)}`)
          assert.isAtLeast(final!.formulas, killAt)
          assert.strictEqual(final!.projected, final!.formulas, "one projection row per formula")
          assert.strictEqual(final!.counted, final!.formulas, "each formula counted once")
          assert.strictEqual(
            final!.resultsMatching,
            final!.formulas,
            "each message settled with its projection's result"
          )
        }).pipe(Effect.scoped),
      { timeout: 150_000 }
    )
  }
)
