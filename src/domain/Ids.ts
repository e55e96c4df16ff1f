/**
 * Ids for formulas and messages: UUIDv7, so new rows land at the right-hand
 * end of their indexes (time-ordered) instead of at random pages.
 *
 * Random bytes come from a pooled 4 KiB buffer: asking the OS for ten bytes
 * per id, twice per submission, was ~5% of a submission's CPU (node --cpu-prof).
 * Uses the Effect `Clock`, so tests control the time part.
 */
import type { Effect } from "effect"
import { SecureRandom } from "effect/crypto"
import { randomFillSync } from "node:crypto"

const pool = new Uint8Array(4096)
let offset = pool.length

const pooledRandomBytes = (size: number): Uint8Array => {
  if (offset + size > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const bytes = pool.slice(offset, offset + size)
  offset += size
  return bytes
}

const random = SecureRandom.make(pooledRandomBytes)

/** A new time-ordered id (UUIDv7, lowercase, hyphenated). */
export const newId: Effect.Effect<string> = random.uuidV7()
