/**
 * Webhook deliveries survive a crash of the real server (`node src/main.ts`)
 * on PostgreSQL: deliveries are due, some attempts are in flight (the receiver
 * holds them), the process is killed with SIGKILL; after the restart every
 * event is delivered.
 *
 * The rows are written with SQL, as the event writers would; the server finds
 * them by its polling backstop (nothing in its process wakes it). The attempts
 * in flight at the kill hold leases (timeout + 30 s = 45 s); the test moves those
 * expiries into the past instead of waiting 45 s — the time passing — and checks
 * first that they were leased. Protects: deliveries as rows, the lease (a claim
 * whose process died is claimed again), start-up of the dispatcher with the runtime.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Redacted } from "effect"
import { postgresUrl } from "../support/Databases.ts"
import { makeReceiver } from "../support/WebhookReceiver.ts"
import { insertDelivery, insertEndpoint } from "../support/WebhookRows.ts"
import { freePort, hasExited, outputOf, ownDatabase, type Running, spawnServer } from "./ServerProcess.ts"

const endpoints = 3
const perEndpoint = 10

/** The server on `databaseUrl`, once /health answers 200. */
const startServer = (databaseUrl: string) =>
  Effect.gen(function* () {
    const port = yield* freePort
    const running = yield* spawnServer({
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_FORMAT: "json",
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true"
    })
    for (let i = 0; ; i++) {
      assert.isFalse(hasExited(running), `the server exited during start-up; ${outputOf(running)}`)
      assert.isBelow(i, 600, `/health never answered 200; ${outputOf(running)}`)
      const status = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) }).then(
          (response) => response.arrayBuffer().then(() => response.status),
          () => 0
        )
      )
      if (status === 200) return running
      yield* Effect.sleep(Duration.millis(100))
    }
  })

const kill = (running: Running) =>
  Effect.promise(() => {
    running.child.kill("SIGKILL")
    return running.exited
  })

describe.skipIf(postgresUrl === undefined)("webhook deliveries across a crash", () => {
  it.live(
    "SIGKILL with deliveries due and attempts in flight: after the restart every event is delivered",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* ownDatabase(postgresUrl!, "webhook_crash")
        let answering = false
        const receiver = yield* makeReceiver(() => (answering ? { status: 204 } : "hold"))
        const database = PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 2 })

        const first = yield* startServer(databaseUrl) // creates the tables
        const events = yield* Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          return yield* sql.withTransaction(
            Effect.gen(function* () {
              const ids: Array<string> = []
              for (let e = 0; e < endpoints; e++) {
                const endpoint = yield* insertEndpoint({ url: receiver.url(`/endpoint-${e}`) })
                for (let i = 0; i < perEndpoint; i++) ids.push((yield* insertDelivery(endpoint.id)).eventId)
              }
              return ids
            })
          )
        }).pipe(Effect.provide(database))

        // Four attempts per endpoint in flight (the per-endpoint bound), the rest due and waiting.
        yield* receiver.awaitCount(4 * endpoints)
        yield* kill(first)

        const leased = yield* PgClient.PgClient.use(
          (sql) => sql<{ readonly n: string }>`
            SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' AND lease_expires_at > now()`
        ).pipe(Effect.provide(database))
        assert.strictEqual(Number(leased[0]!.n), 4 * endpoints, "the attempts in flight held leases")
        // The leases' 45 s pass.
        yield* PgClient.PgClient.use(
          (sql) => sql`UPDATE webhook_deliveries SET lease_expires_at = lease_expires_at - interval '1 hour'
                       WHERE lease_token IS NOT NULL`
        ).pipe(Effect.provide(database))

        answering = true
        const second = yield* startServer(databaseUrl)
        for (let i = 0; ; i++) {
          const [row] = yield* PgClient.PgClient.use(
            (sql) => sql<{ readonly done: string }>`
              SELECT count(*) AS done FROM webhook_deliveries WHERE status = 'succeeded'`
          ).pipe(Effect.provide(database))
          if (Number(row!.done) === events.length) break
          assert.isBelow(i, 600, `only ${row!.done} of ${events.length} delivered within 60 s; ${outputOf(second)}`)
          yield* Effect.sleep(Duration.millis(100))
        }
        const answered = new Set(
          receiver.received.filter((_, index) => index >= 4 * endpoints).map((r) => String(r.headers["webhook-id"]))
        )
        for (const id of events) assert.isTrue(answered.has(id), `event ${id} delivered after the restart`)
      }).pipe(Effect.scoped),
    180_000
  )
})
