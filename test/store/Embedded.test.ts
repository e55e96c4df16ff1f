/**
 * The embedded database keeps its data on disk: what one process stored,
 * the next one started on the same `DATA_DIR` finds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SecureRandom } from "effect/crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Database from "../../src/store/Database.ts"
import { FormulaStore } from "../../src/store/FormulaStore.ts"

const storeOn = (dataDir: string) =>
  FormulaStore.layerNoDeps.pipe(Layer.provide(Database.migrated(Database.layerEmbedded(dataDir))))

describe("embedded PGlite", () => {
  it.live("keeps formulas across restarts on the same data directory", () =>
    Effect.gen(function* () {
      const dataDir = mkdtempSync(join(tmpdir(), "formula-intake-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const id = SecureRandom.uuidV7Unsafe()
      yield* FormulaStore.use((store) =>
        store.insert({
          id,
          fingerprint: "persisted",
          name: "Summer Breeze",
          materials: [{ name: "Bergamot Oil", concentration: "15.5" }],
          createdAt: new Date(),
          message: { id: SecureRandom.uuidV7Unsafe(), body: {} }
        })
      ).pipe(Effect.provide(storeOn(dataDir)))

      const found = yield* FormulaStore.use((store) => store.findById(id)).pipe(Effect.provide(storeOn(dataDir)))
      assert.strictEqual(found?.fingerprint, "persisted")
      assert.deepStrictEqual(found?.materials, [{ name: "Bergamot Oil", concentration: "15.5" }])
    })
  )
})
