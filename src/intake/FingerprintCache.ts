/**
 * fingerprint → formula id, for the make-ups seen most recently: a repeat
 * duplicate is answered without a database round trip or a queue reservation.
 *
 * An optimisation only. Formulas are never deleted, so a cached entry is
 * always true; a miss just means asking the database, whose unique
 * constraint decides. Entries are added only after the database has spoken.
 *
 * Bounded LRU over a `Map` (insertion order = recency: a hit re-inserts).
 * The state is private to this service and every operation is synchronous,
 * so no other fiber can observe it half-updated; wrapping the Map in a `Ref`
 * would add allocation to the hot path and no safety.
 */
import { Context, Effect, Layer, Metric } from "effect"
import { intSetting } from "../Settings.ts"
import { FormulaStore } from "../store/FormulaStore.ts"

const hits = Metric.counter("fingerprint_cache_hits_total", { description: "Duplicates answered from memory" })
const misses = Metric.counter("fingerprint_cache_misses_total", { description: "Look-ups that went to the database" })

export class FingerprintCache extends Context.Service<
  FingerprintCache,
  {
    /** The id holding this make-up, when known here. */
    get(fingerprint: string): Effect.Effect<string | undefined>
    /** Records what the database said: `fingerprint` belongs to `id`. */
    set(fingerprint: string, id: string): Effect.Effect<void>
    readonly size: Effect.Effect<number>
  }
>()("formula-intake/intake/FingerprintCache") {
  /** An empty cache of at most `capacity` entries (0 disables it). */
  static readonly make = (capacity: number) => {
    const entries = new Map<string, string>()
    const get = (fingerprint: string) =>
      Effect.suspend(() => {
        const id = entries.get(fingerprint)
        if (id === undefined) return Effect.as(Metric.update(misses, 1), undefined)
        entries.delete(fingerprint)
        entries.set(fingerprint, id)
        return Effect.as(Metric.update(hits, 1), id)
      })
    const set = (fingerprint: string, id: string) =>
      Effect.sync(() => {
        if (capacity === 0) return
        entries.delete(fingerprint)
        entries.set(fingerprint, id)
        if (entries.size > capacity) entries.delete(entries.keys().next().value!)
      })
    return FingerprintCache.of({ get, set, size: Effect.sync(() => entries.size) })
  }

  /** A cache of `capacity` entries, warmed with the newest formulas so restarts do not start cold. */
  static readonly layerWith = (options: { readonly capacity: number }) =>
    Layer.effect(
      FingerprintCache,
      Effect.gen(function* () {
        const cache = FingerprintCache.make(options.capacity)
        if (options.capacity > 0) {
          const store = yield* FormulaStore
          const recent = yield* store.recentFingerprints(options.capacity)
          // Oldest first, so the newest end up most recently used.
          for (let i = recent.length - 1; i >= 0; i--) yield* cache.set(recent[i]!.fingerprint, recent[i]!.id)
        }
        return cache
      })
    )

  /** Capacity from `FINGERPRINT_CACHE_SIZE` (default 50000; 0 turns the cache off). */
  static readonly layer = Layer.unwrap(
    Effect.map(intSetting("FINGERPRINT_CACHE_SIZE", { min: 0, max: 10_000_000 }, 50_000), (capacity) =>
      FingerprintCache.layerWith({ capacity })
    )
  )
}
