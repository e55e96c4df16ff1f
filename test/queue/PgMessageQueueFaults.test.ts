/**
 * The database queue when the database fails under it, on every database,
 * behind the wire-level fault injector (test/support/FaultyStream.ts): an ack
 * that never reached the database changed nothing (ack again: recorded); an
 * ack whose answer was lost is unconfirmed (ack again: 409, recorded once); a
 * receive while the database is away answers nothing rather than failing, and
 * delivers once it is back.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { randomUUID } from "node:crypto"
import * as PgMessageQueue from "../../src/queue/PgMessageQueue.ts"
import { FormulaStore } from "../../src/store/FormulaStore.ts"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { postgresUrl } from "../support/Databases.ts"
import { FaultInjector, type FaultyDatabase, faultyDatabases } from "../support/FaultyStream.ts"

/** The ack's statement, as the injector recognises it (FormulaSql.settleByReceipt). */
const ACK = "UPDATE outbox o SET receipt = NULL"

const onQueue = <A, E, R>(database: FaultyDatabase, body: (injector: FaultInjector) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const injector = new FaultInjector()
    const db = database.layer(injector)
    const services = Layer.mergeAll(
      FormulaStore.layerWith({ maxBatch: 1, linger: 0, workers: 1 }),
      DeliverySignal.layer
    )
    // The database's pool on the real clock (its timers must not jump with the test's); the queue on a TestClock.
    return Effect.andThen(TestClock.setTime(Date.now()), body(injector)).pipe(
      Effect.scoped,
      Effect.provide(TestClock.layer({ warningDelay: "1 hour" })),
      Effect.provide(services.pipe(Layer.provideMerge(db)))
    )
  })

const makeQueue = PgMessageQueue.make({ pollInterval: "1 hour" })

const settledCount = (messageId: string) =>
  PgClient.PgClient.use((sql) =>
    Effect.map(
      sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM outbox WHERE message_id = ${messageId} AND delivered_at IS NOT NULL`,
      (rows) => rows[0]!.n
    )
  )

for (const database of faultyDatabases(postgresUrl)) {
  describe(`PgMessageQueue under database faults on ${database.name}`, () => {
    it.live(
      "an ack that never reached the database changed nothing: AckNotRecorded, still in flight, acked again",
      () =>
        onQueue(database, (injector) =>
          Effect.gen(function* () {
            const queue = yield* makeQueue
            const messageId = randomUUID()
            yield* queue.publish({ messageId, body: {} })
            const [delivery] = yield* queue.receive()
            injector.arm(ACK, "before")
            const failed = yield* Effect.flip(queue.ack(delivery!.receipt, { result: 1 }))
            assert.strictEqual(failed._tag, "AckNotRecorded")
            assert.strictEqual(yield* settledCount(messageId), 0)
            assert.strictEqual((yield* queue.stats).inFlight, 1)
            yield* queue.ack(delivery!.receipt, { result: 1 })
            assert.strictEqual(yield* settledCount(messageId), 1)
          })
        ),
      { timeout: 60_000 }
    )

    it.live(
      "an ack whose answer was lost is unconfirmed: AckNotRecorded; acked again: 409; recorded once",
      () =>
        onQueue(database, (injector) =>
          Effect.gen(function* () {
            const queue = yield* makeQueue
            const messageId = randomUUID()
            yield* queue.publish({ messageId, body: {} })
            const [delivery] = yield* queue.receive()
            injector.arm(ACK, "after")
            const failed = yield* Effect.flip(queue.ack(delivery!.receipt))
            assert.strictEqual(failed._tag, "AckNotRecorded")
            assert.include(failed.message, "ack again")
            const again = yield* Effect.flip(queue.ack(delivery!.receipt))
            assert.strictEqual(again._tag, "ReceiptInvalid")
            assert.strictEqual(yield* settledCount(messageId), 1)
            assert.deepStrictEqual(yield* queue.receive(), [])
          })
        ),
      { timeout: 60_000 }
    )

    it.live(
      "a receive while the database is away answers nothing, and delivers once it is back",
      () =>
        onQueue(database, (injector) =>
          Effect.gen(function* () {
            const queue = yield* makeQueue
            const messageId = randomUUID()
            yield* queue.publish({ messageId, body: {} })
            injector.setOffline(true)
            assert.deepStrictEqual(yield* queue.receive(), [])
            injector.setOffline(false)
            // The pool reconnects at its own pace: asked again until it answers (bounded).
            let deliveries = yield* queue.receive()
            for (let tries = 0; deliveries.length === 0 && tries < 50; tries++) {
              yield* Effect.sleep("100 millis").pipe(TestClock.withLive)
              deliveries = yield* queue.receive()
            }
            assert.strictEqual(deliveries[0]?.messageId, messageId)
          })
        ),
      { timeout: 60_000 }
    )
  })
}
