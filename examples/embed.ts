/**
 * The runtime embedded in another Effect program, no HTTP: submit formulas
 * through `FormulaIntake` and consume their `FormulaSubmitted` messages with
 * an in-process consumer.
 *
 *   npx node examples/embed.ts            (embedded database in memory)
 *   DATABASE_URL=postgres://… npx node examples/embed.ts
 *
 * `npx node` is the project's pinned Node 24 (the `node` devDependency): a
 * system Node older than 24 cannot run a .ts file or this project.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Deferred, Effect } from "effect"
import { FormulaIntake } from "../src/intake/FormulaIntake.ts"
import { consume } from "../src/queue/Consumer.ts"
import * as Runtime from "../src/Runtime.ts"
import * as Database from "../src/store/Database.ts"

// Any migrated database layer will do; here, PostgreSQL if configured, else PGlite in memory.
const database = process.env["DATABASE_URL"] ? Database.layer : Database.migrated(Database.layerEmbedded(undefined))

const program = Effect.gen(function* () {
  const intake = yield* FormulaIntake
  const announced = yield* Deferred.make<void>()

  // Acks on success, nacks with backoff on failure; stops with the scope.
  yield* consume(
    (delivery) =>
      Effect.gen(function* () {
        yield* Effect.logInfo("received", delivery.messageId, delivery.body)
        yield* Deferred.succeed(announced, undefined)
      }),
    { concurrency: 2, pollWait: "1 second" }
  )

  const formula = yield* intake.submit({
    name: "Summer Breeze",
    materials: [
      { name: "Bergamot Oil", concentration: 15.5 },
      { name: "Lavender Absolute", concentration: "10.0" },
      { name: "Sandalwood", concentration: 5.2 }
    ]
  })
  yield* Effect.logInfo(`stored ${formula.id} (${formula.fingerprint})`)

  // The same make-up, spelled differently: a duplicate, nothing stored or announced.
  const again = yield* intake
    .submit({
      name: "Another name",
      materials: [
        { name: "SANDALWOOD", concentration: "5.20" },
        { name: "bergamot  oil", concentration: 15.5 },
        { name: "Lavender Absolute", concentration: 10 }
      ]
    })
    .pipe(Effect.flip)
  yield* Effect.logInfo(`second submission: ${again._tag}`)

  yield* Deferred.await(announced)
}).pipe(Effect.scoped)

program.pipe(Effect.provide(Runtime.layerWith(database)), NodeRuntime.runMain)
