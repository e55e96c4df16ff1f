/**
 * The fingerprint cache in front of the database (src/intake/FingerprintCache.ts):
 * bounded, keeps what is used, always holds the most recent half of its
 * capacity, and remembers nothing when turned off. A wrong entry would turn a
 * new make-up into a false duplicate, so it also never answers for a
 * fingerprint it was not told about.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { FingerprintCache } from "../../src/intake/FingerprintCache.ts"

const fp = (i: number) => `fingerprint-${i}`
const id = (i: number) => `id-${i}`

describe("FingerprintCache", () => {
  it.effect("answers what it was told and nothing else", () =>
    Effect.gen(function* () {
      const cache = yield* FingerprintCache.make(100)
      cache.set(fp(1), id(1))
      assert.strictEqual(cache.get(fp(1)), id(1))
      assert.isUndefined(cache.get(fp(2)))
    }).pipe(Effect.scoped)
  )

  it.effect(
    "never holds more than its capacity, and always the most recent half of it — protects the bound and the two generations",
    () =>
      Effect.gen(function* () {
        const capacity = 100
        const cache = yield* FingerprintCache.make(capacity)
        for (let i = 0; i < 1_000; i++) {
          cache.set(fp(i), id(i))
          assert.isAtMost(cache.size(), capacity)
        }
        for (let i = 1_000 - capacity / 2; i < 1_000; i++) assert.strictEqual(cache.get(fp(i)), id(i), `recent ${i}`)
        assert.isUndefined(cache.get(fp(0)), "the oldest aged out")
      }).pipe(Effect.scoped)
  )

  it.effect(
    "an entry in use survives any number of newer ones — protects moving hits back to the young generation",
    () =>
      Effect.gen(function* () {
        const cache = yield* FingerprintCache.make(10)
        cache.set(fp(-1), id(-1))
        for (let i = 0; i < 1_000; i++) {
          cache.set(fp(i), id(i))
          assert.strictEqual(cache.get(fp(-1)), id(-1), `after ${i} newer entries`)
        }
      }).pipe(Effect.scoped)
  )

  it.effect("capacity 0 remembers nothing", () =>
    Effect.gen(function* () {
      const cache = yield* FingerprintCache.make(0)
      cache.set(fp(1), id(1))
      assert.isUndefined(cache.get(fp(1)))
      assert.strictEqual(cache.size(), 0)
    }).pipe(Effect.scoped)
  )
})
