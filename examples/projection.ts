/**
 * A projection kept exactly once: an in-process consumer that maintains, in
 * the runtime's own database, how many formulas fall into each fragrance
 * concentration class (examples/concentration.ts) and which class each
 * formula is in — with `consumeTransactional`, so each message's update and
 * the message's settlement commit in one transaction. A counter is the kind
 * of effect at-least-once delivery gets wrong: a redelivered message would
 * count twice. Here a message whose transaction committed is never projected
 * again, even if the process dies between the COMMIT and the ack.
 *
 *   npx node examples/projection.ts [--submit N]                         (embedded database, in memory)
 *   DATABASE_URL=postgres://… npx node examples/projection.ts [--submit N]
 *
 * `--submit N` first submits N new formulas of random make-up (through the
 * embedded runtime, as a service would) so there is something to project.
 * It keeps running, projecting every new formula's message, until SIGINT /
 * SIGTERM. With PostgreSQL, look at the tables it keeps:
 *
 *   SELECT * FROM projection_class_counts ORDER BY class;
 *
 * `npx node` is the project's pinned Node 24 (the `node` devDependency).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { parseArgs } from "node:util"
import { FormulaSubmitted } from "../src/domain/FormulaSubmitted.ts"
import { FormulaIntake } from "../src/intake/FormulaIntake.ts"
import type { Delivery } from "../src/queue/MessageQueue.ts"
import { consumeTransactional } from "../src/queue/TransactionalConsumer.ts"
import * as Runtime from "../src/Runtime.ts"
import * as Database from "../src/store/Database.ts"
import { concentrationClass, millionths, percent } from "./concentration.ts"

const { values: options } = parseArgs({
  options: {
    submit: { type: "string", default: "0" },
    concurrency: { type: "string", default: "4" }
  }
})

// The projection's tables live beside the runtime's; the handler writes them in the message's transaction.
const createTables = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS projection_formula_classes (
    formula_id uuid PRIMARY KEY,
    class text NOT NULL,
    total_concentration numeric NOT NULL)`
  yield* sql`CREATE TABLE IF NOT EXISTS projection_class_counts (
    class text PRIMARY KEY,
    formulas bigint NOT NULL)`
})

const decodeMessage = Schema.decodeUnknownEffect(FormulaSubmitted)

/**
 * One message: the formula's total concentration (summed exactly, in SQL), its class, the formula's row
 * and the class's count. Every statement runs in the transaction consumeTransactional opened; a failure
 * anywhere rolls all of it back and the message comes back later.
 */
const project = (delivery: Delivery) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const message = yield* decodeMessage(delivery.body)
    const rows = yield* sql<{ readonly total: string }>`
      SELECT coalesce(sum(concentration), 0)::text AS total FROM formula_materials WHERE formula_id = ${message.formulaId}`
    const total = millionths(rows[0]!.total)
    const name = concentrationClass(total)
    // A plain INSERT, not an upsert: a second projection of one formula would be a bug, and should fail loudly.
    yield* sql`INSERT INTO projection_formula_classes (formula_id, class, total_concentration)
               VALUES (${message.formulaId}, ${name}, ${percent(total)}::numeric)`
    yield* sql`INSERT INTO projection_class_counts (class, formulas) VALUES (${name}, 1)
               ON CONFLICT (class) DO UPDATE SET formulas = projection_class_counts.formulas + 1`
    yield* Effect.logInfo(`projected ${message.formulaId}: ${name} (${percent(total)} %)`)
    // Stored on the formula as its result, as an HTTP worker's ack would.
    return { concentrationClass: name, totalConcentration: percent(total) }
  })

/** A new make-up of 1–3 materials, 0.5–14.5 % each, so every class turns up. */
const randomFormula = (i: number) => {
  const tag = randomBytes(6).toString("hex")
  const count = 1 + (randomBytes(1)[0]! % 3)
  return {
    name: `Projection sample ${i} ${tag}`,
    materials: Array.from({ length: count }, (_, m) => ({
      name: `Material ${m} ${tag}`,
      concentration: `${(randomBytes(1)[0]! % 15) + 0.5}`
    }))
  }
}

const program = Effect.gen(function* () {
  yield* createTables
  yield* consumeTransactional(project, { concurrency: Number(options.concurrency), pollWait: "5 seconds" })
  const intake = yield* FormulaIntake
  const submit = Number(options.submit)
  for (let i = 0; i < submit; i++) yield* intake.submit(randomFormula(i))
  yield* Effect.logInfo(`projection consumer running (submitted ${submit}); Ctrl-C stops it`)
  yield* Effect.never
}).pipe(Effect.scoped)

// PostgreSQL if configured, else PGlite in memory (the projection then lives as long as the process).
const database = process.env["DATABASE_URL"] ? Database.layer : Database.migrated(Database.layerEmbedded(undefined))

program.pipe(Effect.provide(Runtime.layerWith(database).pipe(Layer.provideMerge(database))), NodeRuntime.runMain)
