/**
 * Migration 0005 (fingerprint version 2) on every database: a database written under version 1 — with a
 * pair of formulas that version 2 puts in one class, as rows written with other Unicode data could be —
 * migrates without error, keeps every formula, gives each the version-2 fingerprint its materials have
 * (the older of the pair; the younger keeps its own), and new submissions then dedupe by version 2.
 */
import { assert, describe, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as Migrator from "effect/sql/Migrator"
import { hash, randomUUID } from "node:crypto"
import type { Concentration } from "../../src/domain/Decimal.ts"
import { fingerprint } from "../../src/domain/Fingerprint.ts"
import { FormulaIntake } from "../../src/intake/FormulaIntake.ts"
import * as Runtime from "../../src/Runtime.ts"
import { migrationRecord, runMigrations } from "../../src/store/Migrations.ts"
import { refingerprintAll } from "../../src/store/Refingerprint.ts"
import { testDatabases } from "../support/Databases.ts"
import { fingerprintV1 } from "../support/FingerprintV1.ts"

type Materials = ReadonlyArray<{ readonly name: string; readonly concentration: string }>

const input = (materials: Materials) => ({
  materials: materials.map((m) => ({ name: m.name, concentration: m.concentration as Concentration }))
})

// Written under version 1, oldest first. `stored` overrides the fingerprint version 1 would give.
const BEFORE: ReadonlyArray<{ readonly key: string; readonly materials: Materials; readonly stored?: string }> = [
  {
    key: "ascii",
    materials: [
      { name: "Bergamot Oil", concentration: "15.5" },
      { name: "Lavender Absolute", concentration: "10" }
    ]
  },
  // Version 1 equated dotless ı with i: "ırıs" was a duplicate of this one. Version 2 splits them.
  { key: "iris", materials: [{ name: "Iris", concentration: "20" }] },
  // Version 1 kept Cherokee in small letters, version 2 folds to capitals: same class, new key.
  { key: "cherokee", materials: [{ name: "\uABA3\uAB83\uAB79", concentration: "5" }] },
  // The pair that meets under version 2. Under version 1 it is one make-up too, so a database written by
  // version 1 alone never holds both; the younger's fingerprint stands for one written by other Unicode data.
  { key: "older", materials: [{ name: "Straße", concentration: "12" }] },
  {
    key: "younger",
    materials: [{ name: "STRASSE", concentration: "12" }],
    stored: hash("sha256", "written with other Unicode data", "hex")
  }
]

const migrateTo4 = Migrator.make({})({
  loader: Migrator.fromRecord(
    Object.fromEntries(Object.entries(migrationRecord).filter(([name]) => Number(name.slice(0, 4)) <= 4))
  )
})

const insertVersion1Formula = (sql: SqlClient.SqlClient, id: string, print: string, materials: Materials) =>
  Effect.gen(function* () {
    yield* sql`INSERT INTO formulas (id, fingerprint, name) VALUES (${id}, ${print}, ${"Before v2"})`
    for (const [position, m] of materials.entries()) {
      yield* sql`INSERT INTO formula_materials (formula_id, position, name, concentration)
                 VALUES (${id}, ${position}, ${m.name}, ${m.concentration}::numeric)`
    }
    const body = JSON.stringify({ type: "FormulaSubmitted", formulaId: id, fingerprint: print })
    yield* sql`INSERT INTO outbox (message_id, formula_id, body) VALUES (${randomUUID()}, ${id}, ${body}::jsonb)`
  })

const storedFormulas = (sql: SqlClient.SqlClient) =>
  sql<{ readonly id: string; readonly fingerprint: string; readonly materials: string }>`
    SELECT f.id::text AS id, f.fingerprint,
           (SELECT json_agg(json_build_array(m.name, m.concentration::text) ORDER BY m.position)::text
              FROM formula_materials m WHERE m.formula_id = f.id) AS materials
      FROM formulas f ORDER BY f.seq`

for (const database of testDatabases) {
  describe(`fingerprint version 2 migration on ${database.name}`, () => {
    layer(database.unmigrated(), { excludeTestServices: true })((it) => {
      it.effect(
        "keeps every formula, re-fingerprints by version 2 without breaking the unique index, dedupes by version 2",
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* migrateTo4
            const ids = new Map<string, string>()
            for (const formula of BEFORE) {
              const id = randomUUID()
              ids.set(formula.key, id)
              yield* insertVersion1Formula(
                sql,
                id,
                formula.stored ?? fingerprintV1(input(formula.materials)),
                formula.materials
              )
            }
            const before = yield* storedFormulas(sql)

            const ran = yield* runMigrations
            assert.deepStrictEqual(ran[0], [5, "fingerprint_v2"])

            // Every formula, its id and materials unchanged; each fingerprint now version 2's, but the younger
            // of the pair keeps its own (distinct: another version's header).
            const after = yield* storedFormulas(sql)
            assert.deepStrictEqual(
              after.map(({ id, materials }) => ({ id, materials })),
              before.map(({ id, materials }) => ({ id, materials }))
            )
            const expected = BEFORE.map((f) => (f.key === "younger" ? f.stored! : fingerprint(input(f.materials))))
            assert.deepStrictEqual(
              after.map((row) => row.fingerprint),
              expected
            )
            assert.strictEqual(fingerprint(input(BEFORE[3]!.materials)), fingerprint(input(BEFORE[4]!.materials)))

            // The same end when the pair meets across batches (one formula per batch), from version 1 again.
            for (const [i, formula] of BEFORE.entries()) {
              yield* sql`UPDATE formulas SET fingerprint = ${before[i]!.fingerprint} WHERE id = ${ids.get(formula.key)!}`
            }
            const rerun = yield* refingerprintAll(1)
            assert.deepStrictEqual(rerun, { updated: 4, kept: [ids.get("younger")!] })
            assert.deepStrictEqual(
              (yield* storedFormulas(sql)).map((row) => row.fingerprint),
              expected
            )

            // New submissions dedupe by version 2.
            const context = yield* Effect.context<PgClient.PgClient | SqlClient.SqlClient>()
            const outcomes = yield* Effect.gen(function* () {
              const intake = yield* FormulaIntake
              const submit = (materials: ReadonlyArray<{ name: string; concentration: number }>) =>
                intake.submit({ name: "After v2", materials }).pipe(
                  Effect.as("created"),
                  Effect.catchTag("Duplicate", (duplicate) =>
                    Effect.succeed(
                      `duplicate of ${[...ids].find(([, id]) => id === duplicate.existingId)?.[0] ?? duplicate.existingId}`
                    )
                  )
                )
              return [
                yield* submit([
                  { name: "LAVENDER  absolute", concentration: 10.0 },
                  { name: "bergamot oil", concentration: 15.5 }
                ]),
                yield* submit([{ name: "IRIS", concentration: 20 }]),
                yield* submit([{ name: "\u0131r\u0131s", concentration: 20 }]),
                yield* submit([{ name: "\u13D3\u13B3\u13A9", concentration: 5 }]),
                yield* submit([{ name: "strasse", concentration: 12 }]),
                yield* submit([{ name: "STRAẞE", concentration: 12 }])
              ]
            }).pipe(
              Effect.provide(
                Runtime.layerWith(Layer.succeedContext(context), {
                  queue: { capacity: 100 },
                  relayInterval: "1 hour"
                })
              )
            )
            assert.deepStrictEqual(outcomes, [
              "duplicate of ascii",
              "duplicate of iris",
              "created",
              "duplicate of cherokee",
              "duplicate of older",
              "duplicate of older"
            ])
          }),
        { timeout: 60_000 }
      )
    })
  })
}
