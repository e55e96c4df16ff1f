/**
 * fingerprint → formula id, for the make-ups seen most recently: a repeat
 * duplicate is answered without a database round trip or a queue reservation.
 *
 * An optimisation only. Formulas are never deleted, so a cached entry is
 * always true; a miss just means asking the database, whose unique
 * constraint decides. Entries are added only after the database has spoken.
 *
 * Bounded by two generations of at most `capacity / 2` entries each (the
 * scheme of the `quick-lru` package): entries go into the young map; when it
 * is full it becomes the old one and the previous old map is dropped. A hit in
 * the old map moves the entry back into the young one, so what is used
 * survives and what is not ages out — LRU-like, without the delete and
 * re-insert a strict LRU `Map` needs on every hit (which cost ~4% of a
 * duplicate answer). It holds between `capacity / 2` and `capacity` entries:
 * at least the `capacity / 2` most recently used are always there.
 *
 * The state is private to this service and every operation is synchronous,
 * so no other fiber can observe it half-updated.
 */
import { Context, Effect, Layer, Metric } from "effect"
import { counter } from "../observability/Counters.ts"
import { FingerprintCacheSize } from "../Settings.ts"
import { FormulaStore } from "../store/FormulaStore.ts"

const hits = Metric.counter("fingerprint_cache_hits_total", { description: "Duplicates answered from memory" })
const misses = Metric.counter("fingerprint_cache_misses_total", { description: "Look-ups that went to the database" })

export class FingerprintCache extends Context.Service<
  FingerprintCache,
  {
    /** The id holding this make-up, when known here. */
    get(fingerprint: string): string | undefined
    /** Records what the database said: `fingerprint` belongs to `id`. */
    set(fingerprint: string, id: string): void
    /** How many make-ups are remembered (at most the capacity). */
    size(): number
  }
>()("formula-intake/intake/FingerprintCache") {
  /** An empty cache of at most `capacity` entries (0 disables it), counting hits and misses while in scope. */
  static readonly make = Effect.fnUntraced(function* (capacity: number) {
    const hit = yield* counter(hits)
    const miss = yield* counter(misses)
    const generation = Math.max(1, Math.floor(capacity / 2))
    let young = new Map<string, string>()
    let old = new Map<string, string>()

    const remember = (fingerprint: string, id: string) => {
      young.set(fingerprint, id)
      if (young.size >= generation) {
        old = young
        young = new Map()
      }
    }

    const get = (fingerprint: string): string | undefined => {
      let id = young.get(fingerprint)
      if (id === undefined) {
        id = old.get(fingerprint)
        if (id !== undefined) remember(fingerprint, id)
      }
      if (id === undefined) miss()
      else hit()
      return id
    }

    const set = (fingerprint: string, id: string) => {
      if (capacity > 0 && young.get(fingerprint) !== id) remember(fingerprint, id)
    }

    const size = () => {
      let count = young.size
      for (const fingerprint of old.keys()) if (!young.has(fingerprint)) count++
      return count
    }

    return FingerprintCache.of({ get, set, size })
  })

  /**
   * A cache of `capacity` entries, warmed with the newest `capacity / 2`
   * formulas (what it is sure to keep) so restarts do not start cold.
   */
  static readonly layerWith = (options: { readonly capacity: number }) =>
    Layer.effect(
      FingerprintCache,
      Effect.gen(function* () {
        const cache = yield* FingerprintCache.make(options.capacity)
        if (options.capacity > 0) {
          const store = yield* FormulaStore
          const recent = yield* store.recentFingerprints(Math.max(1, Math.floor(options.capacity / 2)))
          // Oldest first, so the newest end up most recently used.
          for (let i = recent.length - 1; i >= 0; i--) cache.set(recent[i]!.fingerprint, recent[i]!.id)
        }
        return cache
      })
    )

  /** Capacity from `FINGERPRINT_CACHE_SIZE` (default 50000; 0 turns the cache off). */
  static readonly layer = Layer.unwrap(
    Effect.map(FingerprintCacheSize.config, (capacity) => FingerprintCache.layerWith({ capacity }))
  )
}
