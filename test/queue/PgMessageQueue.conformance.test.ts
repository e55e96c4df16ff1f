/**
 * The queue conformance suite (QueueConformance.ts) for the PostgreSQL backend
 * (src/queue/PgMessageQueue.ts: the outbox table is the queue), on every test
 * database: the embedded PGlite and, with TEST_DATABASE_URL, PostgreSQL.
 */
import { describe } from "@effect/vitest"
import { testDatabases } from "../support/Databases.ts"
import { postgresQueue } from "../support/PgQueueBackend.ts"
import { queueConformance } from "./QueueConformance.ts"

for (const database of testDatabases) {
  describe(`PgMessageQueue conformance on ${database.name}`, () => {
    queueConformance(postgresQueue(database))
  })
}
