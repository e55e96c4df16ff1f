/**
 * IdempotencyKeys, on every database: execute at most once per (scope, key), replay the stored response,
 * reject another body, report a key in flight, store nothing for a failed request, take over a claim whose
 * lease ran out (and fence its old holder), purge by TTL on the Effect clock; across two processes sharing
 * one PostgreSQL too. Also the canonical request hash and the TTL variable.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import {
  Array as Arr,
  ConfigProvider,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Redacted,
  Schema
} from "effect"
import { SecureRandom } from "effect/crypto"
import { TestClock } from "effect/testing"
import { JsonNumberText, parseJsonExact } from "../../src/domain/JsonExact.ts"
import {
  IdempotencyKeys,
  IdempotencyKeysConfig,
  type IdempotencyKeysOptions,
  type IdempotentRequest,
  requestHash,
  type StoredResponse
} from "../../src/intake/IdempotencyKeys.ts"
import * as Database from "../../src/store/Database.ts"
import { makeIdempotencySql } from "../../src/store/IdempotencySql.ts"
import { postgresSchemaLayer, postgresUrl, testDatabases } from "../support/Databases.ts"

class Rejected extends Schema.TaggedError<Rejected>()("Rejected", { message: Schema.String }) {}

let counter = 0
const newRequest = (overrides: Partial<IdempotentRequest> = {}): IdempotentRequest => {
  const n = counter++
  return {
    scope: "client-a",
    key: `key-${process.pid}-${Date.now().toString(36)}-${n}`,
    requestHash: requestHash({ request: n }),
    ...overrides
  }
}

const created = (id: string): StoredResponse => ({
  status: 201,
  // Key order on purpose not sorted: a replay must give back the same document.
  body: { id, name: "Summer Breeze", materials: [{ name: "Bergamot Oil", concentration: "15.5" }], createdAt: "x" },
  headers: { location: `/formulas/${id}` }
})

/** An execute that counts its runs. */
const counted = (response: StoredResponse) => {
  const state = { runs: 0 }
  const execute = Effect.sync(() => {
    state.runs++
    return response
  })
  return { execute, state }
}

/** An execute that signals it started, then waits for `gate` before finishing with `finish`. */
const heldThen = <E>(finish: Effect.Effect<StoredResponse, E>) =>
  Effect.gen(function* () {
    const started = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<void>()
    const state = { runs: 0 }
    const execute = Effect.gen(function* () {
      state.runs++
      yield* Deferred.succeed(started, undefined)
      yield* Deferred.await(gate)
      return yield* finish
    })
    return { execute, started, gate, state }
  })

const held = (response: StoredResponse) => heldThen(Effect.succeed(response))

// The database suite shares one database across tests and keeps live services there; each test gets its
// own TestClock (starting at 0) that the service under test reads. No test waits on the clock it does not move.
const testClock = TestClock.layer({ warningDelay: "1 hour" })

const withKeys =
  (options: IdempotencyKeysOptions = {}) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.provide(IdempotencyKeys.layerWith(options)), Effect.provide(testClock))

/** Polls (in real time, ≤ 5 s) for something a background fiber does after a clock step. */
const eventually = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 500; i++) {
      if (yield* condition) return
      yield* TestClock.withLive(Effect.sleep("10 millis"))
    }
    assert.fail("condition not reached in time")
  })

const isStored = (request: IdempotentRequest) =>
  Effect.gen(function* () {
    const q = makeIdempotencySql(yield* PgClient.PgClient)
    return (yield* q.read(request)) !== undefined
  })

for (const database of testDatabases) {
  describe(`IdempotencyKeys on ${database.name}`, () => {
    layer(database.layer(), { excludeTestServices: true })((it) => {
      it.effect("executes once, stores the response and replays it without executing again", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          const first = counted(created("f-1"))
          const result = yield* keys.run(request, first.execute)
          assert.deepStrictEqual(result, { response: created("f-1"), replayed: false })
          assert.strictEqual(first.state.runs, 1)

          const second = counted(created("f-2"))
          const replay = yield* keys.run(request, second.execute)
          assert.strictEqual(second.state.runs, 0)
          assert.isTrue(replay.replayed)
          assert.deepStrictEqual(replay.response, created("f-1"))
          assert.strictEqual(JSON.stringify(replay.response.body), JSON.stringify(created("f-1").body))
          assert.strictEqual(first.state.runs, 1)
        }).pipe(withKeys())
      )

      it.effect("replays a duplicate-formula 409 like a 201", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          const conflict: StoredResponse = {
            status: 409,
            body: { type: "duplicate", status: 409, existingId: "f-9", url: "/formulas/f-9" },
            headers: { "content-type": "application/problem+json" }
          }
          yield* keys.run(request, Effect.succeed(conflict))
          const replay = yield* keys.run(request, Effect.die("must not execute"))
          assert.deepStrictEqual(replay, { response: conflict, replayed: true })
        }).pipe(withKeys())
      )

      it.effect("rejects the key with another body, and does not execute", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          yield* keys.run(request, Effect.succeed(created("f-1")))
          const other = counted(created("f-2"))
          const error = yield* Effect.flip(
            keys.run({ ...request, requestHash: requestHash({ other: true }) }, other.execute)
          )
          assert.strictEqual(error._tag, "KeyReusedWithDifferentBody")
          assert.strictEqual(other.state.runs, 0)
        }).pipe(withKeys())
      )

      it.effect(
        "while the first call is in flight: same body → KeyInFlight, other body → KeyReusedWithDifferentBody",
        () =>
          Effect.gen(function* () {
            const keys = yield* IdempotencyKeys
            const request = newRequest()
            const first = yield* held(created("f-1"))
            const fiber = yield* Effect.forkChild(keys.run(request, first.execute))
            yield* Deferred.await(first.started)

            const same = counted(created("f-2"))
            const inFlight = yield* Effect.flip(keys.run(request, same.execute))
            assert.strictEqual(inFlight._tag, "KeyInFlight")
            const reused = yield* Effect.flip(keys.run({ ...request, requestHash: requestHash("other") }, same.execute))
            assert.strictEqual(reused._tag, "KeyReusedWithDifferentBody")
            assert.strictEqual(same.state.runs, 0)

            yield* Deferred.succeed(first.gate, undefined)
            assert.deepStrictEqual(yield* Fiber.join(fiber), { response: created("f-1"), replayed: false })
            assert.deepStrictEqual(yield* keys.run(request, same.execute), { response: created("f-1"), replayed: true })
            assert.strictEqual(same.state.runs, 0)
          }).pipe(withKeys())
      )

      it.effect("a failing execute stores nothing: its error passes through and a retry executes again", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          const error = yield* Effect.flip(keys.run(request, Effect.fail(new Rejected({ message: "queue full" }))))
          assert.instanceOf(error, Rejected)
          assert.isFalse(yield* isStored(request))
          // Released, so even another body may use the key now.
          const retry = yield* keys.run(request, Effect.succeed(created("f-1")))
          assert.deepStrictEqual(retry, { response: created("f-1"), replayed: false })
        }).pipe(withKeys())
      )

      it.effect("an interrupted or dying execute releases its claim", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          const first = yield* held(created("f-1"))
          const fiber = yield* Effect.forkChild(keys.run(request, first.execute))
          yield* Deferred.await(first.started)
          yield* Fiber.interrupt(fiber)
          assert.isFalse(yield* isStored(request))

          const died = yield* Effect.exit(keys.run(request, Effect.die("boom")))
          assert.isTrue(Exit.hasDies(died))
          assert.isFalse(yield* isStored(request))

          assert.deepStrictEqual(yield* keys.run(request, Effect.succeed(created("f-2"))), {
            response: created("f-2"),
            replayed: false
          })
        }).pipe(withKeys())
      )

      it.effect("a call interrupted at any point leaves no claim behind", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          for (let steps = 0; steps < 40; steps++) {
            const request = newRequest()
            const fiber = yield* Effect.forkChild(keys.run(request, Effect.never))
            for (let i = 0; i < steps; i++) yield* Effect.yieldNow
            yield* Fiber.interrupt(fiber)
            // The claim may have landed just as the call was interrupted: it is released in the background.
            yield* eventually(Effect.map(isStored(request), (stored) => !stored))
          }
        }).pipe(withKeys())
      )

      it.effect("scopes are independent, and any scope string is safe", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          const scopes = [
            "client-a",
            "client-b",
            "",
            "'; DROP TABLE idempotency_keys; --",
            "nul\u0000byte",
            "x".repeat(20_000)
          ]
          for (const [i, scope] of scopes.entries()) {
            const result = yield* keys.run({ ...request, scope }, Effect.succeed(created(`f-${i}`)))
            assert.deepStrictEqual(result, { response: created(`f-${i}`), replayed: false })
          }
          for (const [i, scope] of scopes.entries()) {
            const result = yield* keys.run({ ...request, scope }, Effect.die("must not execute"))
            assert.deepStrictEqual(result, { response: created(`f-${i}`), replayed: true })
          }
        }).pipe(withKeys())
      )

      it.effect("a key longer than 255 characters is a defect (the HTTP layer answers 400 first)", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const longest = newRequest({ key: `${counter++}-`.padEnd(255, "k") })
          assert.isFalse((yield* keys.run(longest, Effect.succeed(created("f")))).replayed)
          const exit = yield* Effect.exit(keys.run(newRequest({ key: "k".repeat(256) }), Effect.succeed(created("f"))))
          assert.isTrue(Exit.hasDies(exit))
        }).pipe(withKeys())
      )

      it.effect("of 20 concurrent calls with one key, one executes; the others get KeyInFlight or the replay", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          const state = { runs: 0 }
          const execute = Effect.gen(function* () {
            state.runs++
            yield* Effect.yieldNow
            return created("f-once")
          })
          const outcomes = yield* Effect.forEach(
            Arr.makeBy(20, () => Effect.result(keys.run(request, execute))),
            (call) => call,
            { concurrency: "unbounded" }
          )
          assert.strictEqual(state.runs, 1)
          let fresh = 0
          for (const outcome of outcomes) {
            if (outcome._tag === "Success") {
              assert.deepStrictEqual(outcome.success.response, created("f-once"))
              if (!outcome.success.replayed) fresh++
            } else {
              assert.strictEqual(outcome.failure._tag, "KeyInFlight")
            }
          }
          assert.strictEqual(fresh, 1)
        }).pipe(withKeys())
      )

      it.effect("a claim older than the lease is taken over (same body only)", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const q = makeIdempotencySql(yield* PgClient.PgClient)
          const request = newRequest()
          // A process that claimed the key at t = 0 and died.
          yield* q.claim({ ...request, claimToken: SecureRandom.uuidV4Unsafe(), claimedAt: new Date(0) })
          const execute = counted(created("f-1"))

          yield* TestClock.adjust("59999 millis")
          assert.strictEqual((yield* Effect.flip(keys.run(request, execute.execute)))._tag, "KeyInFlight")
          yield* TestClock.adjust("1 millis")
          const otherBody = yield* Effect.flip(keys.run({ ...request, requestHash: "other" }, execute.execute))
          assert.strictEqual(otherBody._tag, "KeyReusedWithDifferentBody")
          assert.strictEqual(execute.state.runs, 0)

          assert.deepStrictEqual(yield* keys.run(request, execute.execute), {
            response: created("f-1"),
            replayed: false
          })
          assert.strictEqual(execute.state.runs, 1)
          assert.deepStrictEqual(yield* keys.run(request, execute.execute), {
            response: created("f-1"),
            replayed: true
          })
        }).pipe(withKeys({ lease: "60 seconds" }))
      )

      it.effect("of 20 concurrent calls on a claim past its lease, one takes it over", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const q = makeIdempotencySql(yield* PgClient.PgClient)
          const request = newRequest()
          yield* q.claim({ ...request, claimToken: SecureRandom.uuidV4Unsafe(), claimedAt: new Date(0) })
          yield* TestClock.adjust("60 seconds")
          const state = { runs: 0 }
          const execute = Effect.gen(function* () {
            state.runs++
            yield* Effect.yieldNow
            return created("taken-over")
          })
          const outcomes = yield* Effect.forEach(
            Arr.makeBy(20, () => Effect.result(keys.run(request, execute))),
            (call) => call,
            { concurrency: "unbounded" }
          )
          assert.strictEqual(state.runs, 1)
          for (const outcome of outcomes) {
            if (outcome._tag === "Failure") assert.strictEqual(outcome.failure._tag, "KeyInFlight")
            else assert.deepStrictEqual(outcome.success.response, created("taken-over"))
          }
        }).pipe(withKeys({ lease: "60 seconds" }))
      )

      it.effect("a holder whose claim was taken over can neither complete nor release its successor's claim", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          for (const finish of [Effect.succeed(created("slow")), Effect.fail(new Rejected({ message: "late" }))]) {
            const request = newRequest()
            const slow = yield* heldThen(finish)
            const slowFiber = yield* Effect.forkChild(Effect.exit(keys.run(request, slow.execute)))
            yield* Deferred.await(slow.started)

            yield* TestClock.adjust("60 seconds")
            const successor = yield* held(created("successor"))
            const successorFiber = yield* Effect.forkChild(keys.run(request, successor.execute))
            yield* Deferred.await(successor.started)

            // The old holder finishes while its successor is in flight: it gets its own outcome, and the
            // successor keeps the key (a third call must not execute).
            yield* Deferred.succeed(slow.gate, undefined)
            const slowExit = yield* Fiber.join(slowFiber)
            if (Exit.isSuccess(slowExit))
              assert.deepStrictEqual(slowExit.value, { response: created("slow"), replayed: false })
            assert.strictEqual(
              (yield* Effect.flip(keys.run(request, Effect.die("must not execute"))))._tag,
              "KeyInFlight"
            )

            yield* Deferred.succeed(successor.gate, undefined)
            assert.deepStrictEqual(yield* Fiber.join(successorFiber), {
              response: created("successor"),
              replayed: false
            })
            assert.deepStrictEqual(yield* keys.run(request, Effect.die("must not execute")), {
              response: created("successor"),
              replayed: true
            })
            assert.strictEqual(slow.state.runs + successor.state.runs, 2)
          }
        }).pipe(withKeys({ lease: "60 seconds" }))
      )

      it.effect("when storing the response fails the caller still gets it; the claim runs out its lease", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const request = newRequest()
          // A body JSON cannot hold makes the completion fail after execute succeeded.
          const unstorable: StoredResponse = { status: 201, body: { big: 1n }, headers: {} }
          assert.deepStrictEqual(yield* keys.run(request, Effect.succeed(unstorable)), {
            response: unstorable,
            replayed: false
          })
          assert.strictEqual((yield* Effect.flip(keys.run(request, Effect.succeed(created("f")))))._tag, "KeyInFlight")
          yield* TestClock.adjust("60 seconds")
          assert.deepStrictEqual(yield* keys.run(request, Effect.succeed(created("f"))), {
            response: created("f"),
            replayed: false
          })
        }).pipe(withKeys({ lease: "60 seconds" }))
      )

      it.effect("the purge fiber removes keys claimed more than the TTL ago, by the Effect clock", () =>
        Effect.gen(function* () {
          const keys = yield* IdempotencyKeys
          const old = newRequest()
          yield* keys.run(old, Effect.succeed(created("old")))
          yield* TestClock.adjust("12 hours")
          const young = newRequest()
          yield* keys.run(young, Effect.succeed(created("young")))
          assert.isTrue(yield* isStored(old))

          // t = 25 h: the purge runs once, removing what was claimed before 1 h.
          yield* TestClock.adjust("13 hours")
          yield* eventually(Effect.map(isStored(old), (stored) => !stored))
          assert.isTrue(yield* isStored(young))
          const again = counted(created("new"))
          assert.deepStrictEqual(yield* keys.run(old, again.execute), { response: created("new"), replayed: false })

          // t = 50 h: the next purge removes the younger key (claimed at 12 h) too.
          yield* TestClock.adjust("25 hours")
          yield* eventually(Effect.map(isStored(young), (stored) => !stored))
        }).pipe(withKeys({ ttl: "24 hours", purgeInterval: "25 hours" }))
      )

      it.effect("IDEMPOTENCY_KEY_TTL_HOURS: a bad value fails start-up naming the variable", () =>
        Effect.gen(function* () {
          for (const value of ["soon", "0", "-3", "1.5", "9000"]) {
            const error = yield* Effect.flip(
              Effect.provide(IdempotencyKeys.use(Effect.succeed), IdempotencyKeys.layerNoDeps).pipe(
                Effect.provideService(
                  ConfigProvider.ConfigProvider,
                  ConfigProvider.fromEnv({ env: { IDEMPOTENCY_KEY_TTL_HOURS: value } })
                )
              )
            )
            assert.strictEqual(error._tag, "ConfigError")
            assert.include(error.message, "IDEMPOTENCY_KEY_TTL_HOURS")
          }
          const keys = yield* Effect.provide(IdempotencyKeys.use(Effect.succeed), IdempotencyKeys.layerNoDeps).pipe(
            Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: {} }))
          )
          const request = newRequest()
          assert.isFalse((yield* keys.run(request, Effect.succeed(created("f")))).replayed)
        }).pipe(Effect.provide(testClock))
      )
    })
  })
}

describe("IdempotencyKeysConfig", () => {
  const read = (env: Record<string, string>) =>
    Effect.provideService(
      Effect.flatMap(IdempotencyKeysConfig, Effect.succeed),
      ConfigProvider.ConfigProvider,
      ConfigProvider.fromEnv({ env })
    )

  it.effect("defaults to 24 hours and reads whole hours", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual((yield* read({})).ttl, Duration.hours(24))
      assert.deepStrictEqual((yield* read({ IDEMPOTENCY_KEY_TTL_HOURS: "48" })).ttl, Duration.hours(48))
    })
  )
})

if (postgresUrl !== undefined) {
  const url = postgresUrl
  describe("IdempotencyKeys across two processes sharing PostgreSQL", () => {
    it.live("each process sees the other's keys, claims and responses", () =>
      Effect.gen(function* () {
        const schema = `test_idem_${process.pid}_${Date.now().toString(36)}`
        // Process A creates and migrates the schema (and drops it at the end); process B has its own pool.
        const processA = Context.get(
          yield* Layer.build(IdempotencyKeys.layerWith().pipe(Layer.provide(postgresSchemaLayer(url, schema)))),
          IdempotencyKeys
        )
        const processB = Context.get(
          yield* Layer.build(
            IdempotencyKeys.layerWith().pipe(
              Layer.provide(Database.layerPostgres(Redacted.make(url), { schema, maxConnections: 5 }))
            )
          ),
          IdempotencyKeys
        )

        const request = newRequest()
        const first = yield* held(created("from-a"))
        const fiber = yield* Effect.forkChild(processA.run(request, first.execute))
        yield* Deferred.await(first.started)
        assert.strictEqual((yield* Effect.flip(processB.run(request, Effect.die("no"))))._tag, "KeyInFlight")
        const reused = yield* Effect.flip(processB.run({ ...request, requestHash: "other" }, Effect.die("no")))
        assert.strictEqual(reused._tag, "KeyReusedWithDifferentBody")
        yield* Deferred.succeed(first.gate, undefined)
        yield* Fiber.join(fiber)
        assert.deepStrictEqual(yield* processB.run(request, Effect.die("no")), {
          response: created("from-a"),
          replayed: true
        })

        // Both processes hammer one key: it executes once in all.
        const shared = newRequest()
        const state = { runs: 0 }
        const execute = Effect.sync(() => {
          state.runs++
          return created("shared")
        })
        const outcomes = yield* Effect.forEach(
          Arr.makeBy(20, (i) => Effect.result((i % 2 === 0 ? processA : processB).run(shared, execute))),
          (call) => call,
          { concurrency: "unbounded" }
        )
        assert.strictEqual(state.runs, 1)
        for (const outcome of outcomes) {
          if (outcome._tag === "Failure") assert.strictEqual(outcome.failure._tag, "KeyInFlight")
          else assert.deepStrictEqual(outcome.success.response, created("shared"))
        }
      })
    )
  })
}

describe("requestHash", () => {
  const parse = (text: string) => {
    const result = parseJsonExact(text)
    assert.isTrue(result._tag === "Success")
    return result._tag === "Success" ? result.success : undefined
  }

  it("ignores whitespace and object key order at every level", () => {
    const a = parse(`{"name":"Summer Breeze","materials":[{"name":"Bergamot Oil","concentration":15.5}]}`)
    const b = parse(`{
      "materials": [ { "concentration": 15.5, "name": "Bergamot Oil" } ],
      "name": "Summer Breeze"
    }`)
    assert.strictEqual(requestHash(a), requestHash(b))
    assert.match(requestHash(a), /^[0-9a-f]{64}$/)
  })

  it("tells apart what JSON tells apart: array order, types, values", () => {
    const hashes = [
      requestHash([1, 2]),
      requestHash([2, 1]),
      requestHash({ a: 1 }),
      requestHash({ a: "1" }),
      requestHash({ a: null }),
      requestHash({}),
      requestHash([]),
      requestHash(""),
      requestHash({ a: { b: 1 } }),
      requestHash({ "a,b": 1 }),
      requestHash({ a: 1, b: 1 })
    ]
    assert.strictEqual(new Set(hashes).size, hashes.length)
  })

  it("hashes numbers a double cannot hold by their source text", () => {
    const exact = parse(`{"c": 15.50000000000000000001}`) as { c: unknown }
    assert.instanceOf(exact.c, JsonNumberText)
    assert.strictEqual(requestHash(exact), requestHash({ c: new JsonNumberText("15.50000000000000000001") }))
    assert.notStrictEqual(requestHash(exact), requestHash({ c: 15.5 }))
    assert.notStrictEqual(requestHash(exact), requestHash({ c: "15.50000000000000000001" }))
    // Spellings of one double are one number.
    assert.strictEqual(requestHash(parse(`[1.0, 1e2]`)), requestHash(parse(`[1, 100]`)))
  })

  it("hashes nesting far deeper than recursion allows, and rejects cycles", () => {
    let deep: unknown = 1
    for (let i = 0; i < 200_000; i++) deep = [deep]
    assert.match(requestHash(deep), /^[0-9a-f]{64}$/)
    const cyclic: Record<string, unknown> = {}
    cyclic["self"] = cyclic
    assert.throws(() => requestHash(cyclic), TypeError)
    // A value seen twice without a cycle is fine.
    const shared = { x: 1 }
    assert.strictEqual(requestHash({ a: shared, b: shared }), requestHash({ a: { x: 1 }, b: { x: 1 } }))
  })
})
