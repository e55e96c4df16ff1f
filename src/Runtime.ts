/**
 * The whole runtime as Layers, for embedding in another Effect program and
 * for the HTTP server. The database comes from configuration (`layer`) or is
 * passed in (`layerWith`), e.g. a test's own schema.
 *
 *   database ─► FormulaStore ─► MessageQueue (acks settle outbox rows)
 *                    │               │
 *                    ├─► FingerprintCache (warmed from the newest formulas)
 *                    └──────┬────────┘
 *                           ▼
 *                OutboxRelay (start-up recovery, backlog, uncertain outcomes)
 *                           ▼
 *                     FormulaIntake ◄── SubmissionCounters (duplicates, invalids; per-minute rows)
 *                                              └─► SubmissionStats (GET /stats/…)
 */
import type { PgClient } from "@effect/sql-pg"
import { Duration, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import { FingerprintCache } from "./intake/FingerprintCache.ts"
import { FormulaIntake } from "./intake/FormulaIntake.ts"
import { IdempotencyKeys } from "./intake/IdempotencyKeys.ts"
import { OutboxRelay } from "./intake/OutboxRelay.ts"
import { MessageQueue, type MessageQueueOptions } from "./queue/MessageQueue.ts"
import * as Database from "./store/Database.ts"
import { FormulaStore, type GroupCommitSettings } from "./store/FormulaStore.ts"
import { databaseChoice, type Settings } from "./Settings.ts"
import { SubmissionCounters } from "./stats/SubmissionCounters.ts"
import { SubmissionStats } from "./stats/SubmissionStats.ts"

export type RuntimeServices =
  | FormulaIntake
  | FormulaStore
  | MessageQueue
  | FingerprintCache
  | IdempotencyKeys
  | OutboxRelay
  | SubmissionCounters
  | SubmissionStats

/** Acked messages settle their outbox row; purged dead letters too. */
const settleHooks = {
  onAck: (messageId: string) => FormulaStore.use((store) => store.markDelivered(messageId)),
  onPurge: (messageIds: ReadonlyArray<string>) => FormulaStore.use((store) => store.markPurged(messageIds))
}

export interface RuntimeOptions {
  /** Queue settings; default: from the environment (QUEUE_*). */
  readonly queue?: Omit<MessageQueueOptions, "onAck" | "onPurge"> | undefined
  /** Default: from FINGERPRINT_CACHE_SIZE (50000). */
  readonly cacheCapacity?: number | undefined
  /** Default: from OUTBOX_RELAY_INTERVAL_MS (5 s). */
  readonly relayInterval?: Duration.Input | undefined
  /** Default: from GROUP_COMMIT_* (batches of up to 64, no linger, 2 writers). */
  readonly groupCommit?: GroupCommitSettings | undefined
  /** How long Idempotency-Keys are kept; default: from IDEMPOTENCY_KEY_TTL_HOURS (24 h). */
  readonly idempotencyKeyTtl?: Duration.Input | undefined
  /** How often duplicate / invalid counts are written to the statistics; default 1 s. `false`: not counted at all. */
  readonly statsFlushInterval?: Duration.Input | false | undefined
}

/** The runtime on a given (migrated) database. */
export const layerWith = <E, R>(
  database: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>,
  options: RuntimeOptions = {}
) => {
  const queue =
    options.queue === undefined
      ? MessageQueue.layerConfig<FormulaStore>(settleHooks)
      : MessageQueue.layerWith<FormulaStore>({ ...options.queue, ...settleHooks })
  const cache =
    options.cacheCapacity === undefined
      ? FingerprintCache.layer
      : FingerprintCache.layerWith({ capacity: options.cacheCapacity })
  const relay =
    options.relayInterval === undefined ? OutboxRelay.layer : OutboxRelay.layerWith({ interval: options.relayInterval })
  const store =
    options.groupCommit === undefined ? FormulaStore.layerNoDeps : FormulaStore.layerWith(options.groupCommit)
  const keys =
    options.idempotencyKeyTtl === undefined
      ? IdempotencyKeys.layerNoDeps
      : IdempotencyKeys.layerWith({ ttl: options.idempotencyKeyTtl })
  const counters =
    options.statsFlushInterval === false
      ? SubmissionCounters.layerOff
      : SubmissionCounters.layerWith({ interval: options.statsFlushInterval })
  return Layer.mergeAll(FormulaIntake.layerNoDeps, SubmissionStats.layer).pipe(
    Layer.provideMerge(counters),
    Layer.provideMerge(relay),
    Layer.provideMerge(Layer.mergeAll(queue, cache)),
    Layer.provideMerge(Layer.mergeAll(store, keys)),
    Layer.provide(database)
  )
}

/** The runtime on the database chosen by `DATABASE_URL` / `DATA_DIR`, every setting from the environment. */
export const layer = layerWith(Database.layer)

/** The runtime as `settings` (read once by `Settings.load`) describe it; reads nothing more from the environment. */
export const layerFromSettings = (settings: Settings) =>
  layerWith(Database.layerFrom(databaseChoice(settings), { waitMs: settings.databaseWaitMs }), {
    queue: {
      capacity: settings.queueCapacity,
      visibilityTimeout: settings.queueVisibilityTimeoutMs,
      maxDeliveries: settings.queueMaxDeliveries
    },
    cacheCapacity: settings.fingerprintCacheSize,
    relayInterval: settings.outboxRelayIntervalMs,
    groupCommit: {
      maxBatch: settings.groupCommitMaxBatch,
      linger: settings.groupCommitLingerMs,
      workers: settings.groupCommitWorkers
    },
    idempotencyKeyTtl: Duration.hours(settings.idempotencyKeyTtlHours)
  })
