/**
 * The queue endpoints over a real socket (NodeHttpServer.layerTest), mounted in
 * a local HttpApi the way the application's Api mounts them, on every queue
 * backend: in memory, and in the outbox table on every test database. Request
 * validation and the OpenAPI document do not depend on the backend: memory only.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import { randomUUID } from "node:crypto"
import { HttpClient, HttpClientRequest, HttpRouter } from "effect/http"
import { HttpApi, HttpApiBuilder, OpenApi } from "effect/http-api"
import { TestClock } from "effect/testing"
import { QueueApi } from "../../src/http/QueueApi.ts"
import { makeQueueHandlers } from "../../src/http/QueueHandlers.ts"
import { layerRequestProblems } from "../../src/http/RequestProblems.ts"
import { MessageQueue, type QueueStats } from "../../src/queue/MessageQueue.ts"
import { testDatabases } from "../support/Databases.ts"
import { postgresQueue } from "../support/PgQueueBackend.ts"
import { memoryQueue, type QueueTestOptions, type QueueUnderTest } from "../support/QueueBackends.ts"
import { advanceUntilDone } from "../support/TestTime.ts"
import { StoredResults } from "../support/QueueBackends.ts"

class TestApi extends HttpApi.make("queue-test").add(QueueApi) {}

const serverWith = (backend: QueueUnderTest, options: QueueTestOptions) =>
  HttpRouter.serve(
    HttpApiBuilder.layer(TestApi).pipe(Layer.provide(makeQueueHandlers(TestApi)), Layer.provide(layerRequestProblems)),
    { disableLogger: true, disableListenLog: true }
  ).pipe(Layer.provideMerge(backend.layer(options)), Layer.provideMerge(NodeHttpServer.layerTest))

const call = (method: "GET" | "POST" | "DELETE", path: string, body?: unknown) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(path)
    if (typeof body === "string") request = HttpClientRequest.bodyText(request, body, "application/json")
    else if (body !== undefined) request = HttpClientRequest.bodyJsonUnsafe(request, body)
    const response = yield* client.execute(request)
    const text = yield* response.text
    return {
      status: response.status,
      contentType: response.headers["content-type"] ?? "",
      json: text === "" ? undefined : (JSON.parse(text) as any)
    }
  })

const publish = (messageId: string, body: unknown = { id: messageId }) =>
  MessageQueue.use((queue) => queue.publish({ messageId, body }))

/** Message ids: UUIDs (the postgres backend requires them). */
const newId = (): string => randomUUID()

/** Waits (polling over real I/O, briefly) until the queue's stats satisfy `check`. */
const eventually = (check: (stats: QueueStats) => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 400; i++) {
      if (check(yield* MessageQueue.use((queue) => queue.stats))) return
      yield* TestClock.withLive(Effect.sleep(5))
    }
    return yield* Effect.die(new Error("condition never held"))
  })

const assertReceiptProblem = (response: { status: number; contentType: string; json: any }, receipt: string) => {
  assert.strictEqual(response.status, 409)
  assert.include(response.contentType, "application/problem+json")
  assert.strictEqual(response.json.type, "urn:formula-intake:problem:queue-receipt-invalid")
  assert.strictEqual(response.json.status, 409)
  assert.strictEqual(response.json.title, "The receipt does not name a current delivery")
  assert.strictEqual(response.json.receipt, receipt)
  assert.isString(response.json.detail)
}

const assertBadRequest = (response: { status: number; contentType: string; json: any }) => {
  assert.strictEqual(response.status, 400)
  assert.include(response.contentType, "application/problem+json")
  assert.strictEqual(response.json.status, 400)
  assert.isString(response.json.title)
}

/** The queue's behaviour over HTTP, for one backend (called inside its describe block). */
const behaviour = (backend: QueueUnderTest) => {
  const withServer =
    (options: QueueTestOptions = {}) =>
    <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provide(effect, serverWith(backend, options))

  it.effect("POST /queue/receive returns messages with receipts; POST /queue/ack acks them", () =>
    Effect.gen(function* () {
      const [m1, m2] = [newId(), newId()]
      yield* publish(m1, { type: "FormulaSubmitted", formulaId: "f1" })
      yield* publish(m2)
      const received = yield* call("POST", "/queue/receive", { max: 10, visibilityTimeoutMs: 30_000 })
      assert.strictEqual(received.status, 200)
      assert.strictEqual(received.json.messages.length, 2)
      const [first] = received.json.messages
      assert.deepStrictEqual(Object.keys(first).sort(), ["attempt", "body", "messageId", "receipt"])
      assert.strictEqual(first.messageId, m1)
      assert.strictEqual(first.attempt, 1)
      assert.deepStrictEqual(first.body, { type: "FormulaSubmitted", formulaId: "f1" })

      const acked = yield* call("POST", "/queue/ack", { receipt: first.receipt })
      assert.strictEqual(acked.status, 204)
      assert.isUndefined(acked.json)
      assertReceiptProblem(yield* call("POST", "/queue/ack", { receipt: first.receipt }), first.receipt)
      assertReceiptProblem(yield* call("POST", "/queue/ack", { receipt: "nope" }), "nope")
      const unknown = newId()
      assertReceiptProblem(yield* call("POST", "/queue/ack", { receipt: unknown }), unknown)
    }).pipe(withServer())
  )

  it.effect("POST /queue/ack with a result stores it", () =>
    Effect.gen(function* () {
      const id = newId()
      yield* publish(id)
      const delivery = (yield* call("POST", "/queue/receive", {})).json.messages[0]
      const result = { grade: "A", notes: ["citrus"], total: 30.7, exact: null }
      assert.strictEqual((yield* call("POST", "/queue/ack", { receipt: delivery.receipt, result })).status, 204)
      assert.deepStrictEqual(yield* StoredResults.use((stored) => stored.resultOf(id)), Option.some(result))
    }).pipe(withServer())
  )

  it.effect("receive defaults: an empty body, one message; nothing ready → empty list", () =>
    Effect.gen(function* () {
      const empty = yield* call("POST", "/queue/receive")
      assert.strictEqual(empty.status, 200)
      assert.deepStrictEqual(empty.json, { messages: [] })
      yield* publish(newId())
      yield* publish(newId())
      const one = yield* call("POST", "/queue/receive", {})
      assert.strictEqual(one.json.messages.length, 1)
    }).pipe(withServer())
  )

  it.effect("a late ack after redelivery is 409 and the new delivery stays in flight", () =>
    Effect.gen(function* () {
      yield* publish(newId())
      const first = (yield* call("POST", "/queue/receive", { visibilityTimeoutMs: 1_000 })).json.messages[0]
      yield* TestClock.adjust(1_000)
      const second = (yield* call("POST", "/queue/receive", {})).json.messages[0]
      assert.strictEqual(second.attempt, 2)
      assertReceiptProblem(yield* call("POST", "/queue/ack", { receipt: first.receipt }), first.receipt)
      assert.strictEqual((yield* MessageQueue.use((queue) => queue.stats)).inFlight, 1)
      assert.strictEqual((yield* call("POST", "/queue/ack", { receipt: second.receipt })).status, 204)
    }).pipe(withServer())
  )

  it.effect("POST /queue/nack returns the message after delayMs; a stale receipt is 409", () =>
    Effect.gen(function* () {
      yield* publish(newId())
      const first = (yield* call("POST", "/queue/receive", {})).json.messages[0]
      const nacked = yield* call("POST", "/queue/nack", { receipt: first.receipt, delayMs: 500, error: "later" })
      assert.strictEqual(nacked.status, 204)
      assert.strictEqual((yield* MessageQueue.use((queue) => queue.stats)).delayed, 1)
      assertReceiptProblem(yield* call("POST", "/queue/nack", { receipt: first.receipt }), first.receipt)
      yield* TestClock.adjust(500)
      const second = (yield* call("POST", "/queue/receive", {})).json.messages[0]
      assert.strictEqual(second.attempt, 2)
      assert.strictEqual((yield* call("POST", "/queue/nack", { receipt: second.receipt })).status, 204)
      assert.strictEqual((yield* MessageQueue.use((queue) => queue.stats)).ready, 1)
    }).pipe(withServer())
  )

  it.effect("POST /queue/extend keeps a delivery invisible; a stale receipt is 409", () =>
    Effect.gen(function* () {
      yield* publish(newId())
      const delivery = (yield* call("POST", "/queue/receive", { visibilityTimeoutMs: 1_000 })).json.messages[0]
      yield* TestClock.adjust(900)
      const extended = yield* call("POST", "/queue/extend", { receipt: delivery.receipt, visibilityTimeoutMs: 1_000 })
      assert.strictEqual(extended.status, 204)
      yield* TestClock.adjust(900)
      assert.strictEqual((yield* MessageQueue.use((queue) => queue.stats)).inFlight, 1)
      yield* TestClock.adjust(100)
      assertReceiptProblem(
        yield* call("POST", "/queue/extend", { receipt: delivery.receipt, visibilityTimeoutMs: 1_000 }),
        delivery.receipt
      )
    }).pipe(withServer())
  )

  it.effect("GET /queue/stats", () =>
    Effect.gen(function* () {
      yield* publish(newId())
      yield* MessageQueue.use((queue) => queue.reserve({ messageId: newId(), body: null }))
      const response = yield* call("GET", "/queue/stats")
      assert.strictEqual(response.status, 200)
      assert.deepInclude(response.json, {
        ready: 1,
        pending: 1,
        delayed: 0,
        inFlight: 0,
        deadLettered: 0,
        capacity: 5,
        size: 2,
        available: 3,
        waiting: 0,
        maxDeliveries: 1,
        visibilityTimeoutMs: 30_000
      })
      assert.isObject(response.json.totals)
      if (backend.name === "memory") assert.strictEqual(response.json.totals.published, 1)
    }).pipe(withServer({ capacity: 5, maxDeliveries: 1 }))
  )

  it.effect("dead letters: GET lists them, POST redrive makes them ready, DELETE purges them", () =>
    Effect.gen(function* () {
      // The memory queue's time is the clock's (a database queue's is the clock's plus its offset from the
      // database's, and its count fiber wakes every poll interval: a jump of decades is millions of wakes).
      const at = backend.name === "memory" ? 1_700_000_000_000 : undefined
      if (at !== undefined) yield* TestClock.adjust(at)
      const published = [newId(), newId(), newId()]
      for (const id of published) yield* publish(id, { id })
      for (const delivery of (yield* call("POST", "/queue/receive", { max: 3 })).json.messages) {
        yield* call("POST", "/queue/nack", { receipt: delivery.receipt, error: `failed ${delivery.messageId}` })
      }
      const listed = yield* call("GET", "/queue/dead-letters")
      assert.strictEqual(listed.status, 200)
      assert.strictEqual(listed.json.messages.length, 3)
      // Dead-lettered at one instant: listed in an order of the backend's own.
      const { deadLetteredAt, ...first } = listed.json.messages.find((letter: any) => letter.messageId === published[0])
      assert.deepStrictEqual(first, {
        messageId: published[0],
        attempts: 1,
        lastError: `failed ${published[0]}`,
        body: { id: published[0] }
      })
      if (at !== undefined) assert.strictEqual(deadLetteredAt, new Date(at).toISOString())
      assert.strictEqual(new Date(deadLetteredAt).toISOString(), deadLetteredAt)

      const redriven = yield* call("POST", "/queue/dead-letters/redrive")
      assert.strictEqual(redriven.status, 200)
      assert.deepStrictEqual(redriven.json, { redriven: 3 })
      const again = (yield* call("POST", "/queue/receive", { max: 3 })).json.messages
      assert.deepStrictEqual(
        again.map((d: any) => d.attempt),
        [1, 1, 1]
      )
      for (const delivery of again) yield* call("POST", "/queue/nack", { receipt: delivery.receipt })

      const purged = yield* call("DELETE", "/queue/dead-letters")
      assert.strictEqual(purged.status, 200)
      assert.deepStrictEqual(purged.json, { purged: 3 })
      assert.deepStrictEqual((yield* call("GET", "/queue/dead-letters")).json, { messages: [] })
    }).pipe(withServer({ maxDeliveries: 1 }))
  )

  it.effect("a long poll is answered as soon as a message is published", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(call("POST", "/queue/receive", { waitMs: 20_000 }))
      yield* eventually((stats) => stats.waiting === 1)
      const id = newId()
      yield* publish(id)
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.json.messages[0].messageId, id)
    }).pipe(withServer())
  )

  it.effect("a long poll answers an empty list when the wait is over", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(call("POST", "/queue/receive", { waitMs: 2_000 }))
      yield* eventually((stats) => stats.waiting === 1)
      yield* TestClock.adjust(1_999)
      const step = Math.max(1, backend.pollIntervalMs)
      const response = yield* advanceUntilDone(fiber, step, 2 * step)
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(response.json, { messages: [] })
    }).pipe(withServer())
  )
}

describe("queue over HTTP (memory)", () => {
  behaviour(memoryQueue)

  const withServer =
    (options: QueueTestOptions = {}) =>
    <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provide(effect, serverWith(memoryQueue, options))

  it.effect.each([
    ["/queue/receive", { max: 0 }],
    ["/queue/receive", { max: 101 }],
    ["/queue/receive", { max: 1.5 }],
    ["/queue/receive", { max: "ten" }],
    ["/queue/receive", { visibilityTimeoutMs: -1 }],
    ["/queue/receive", { visibilityTimeoutMs: 43_200_001 }],
    ["/queue/receive", { waitMs: 20_001 }],
    ["/queue/receive", "[]"],
    ["/queue/ack", {}],
    ["/queue/ack", { receipt: "" }],
    ["/queue/ack", { receipt: 42 }],
    ["/queue/nack", { receipt: "r", delayMs: -5 }],
    ["/queue/nack", {}],
    ["/queue/extend", { receipt: "r" }],
    ["/queue/extend", { receipt: "r", visibilityTimeoutMs: "soon" }]
  ] as const)(
    "POST %s with %j is a 400 problem (malformed JSON, content types: requestValidation.test.ts)",
    ([path, body]) =>
      Effect.gen(function* () {
        const response = yield* call("POST", path, body)
        assertBadRequest(response)
        assert.isArray(response.json.errors)
      }).pipe(withServer())
  )

  it("documents every endpoint in the OpenAPI document", () => {
    const spec = OpenApi.fromApi(TestApi)
    assert.includeMembers(Object.keys(spec.paths), [
      "/queue/receive",
      "/queue/ack",
      "/queue/nack",
      "/queue/extend",
      "/queue/stats",
      "/queue/dead-letters",
      "/queue/dead-letters/redrive"
    ])
    assert.isDefined(spec.paths["/queue/ack"]?.post?.responses["409"])
    assert.isDefined(spec.paths["/queue/dead-letters"]?.delete)
  })
})

for (const database of testDatabases) {
  describe(`queue over HTTP (postgres on ${database.name})`, () => {
    behaviour(postgresQueue(database))
  })
}
