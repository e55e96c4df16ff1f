/**
 * The whole runtime as Layers, for embedding in another Effect program and
 * for the HTTP server. The database comes from configuration (`layer`) or is
 * passed in (`layerWith`), e.g. a test's own schema.
 *
 *   database ─► FormulaStore ─► MessageQueue (acks, dead letters, redrives, purges settle outbox rows)
 *                    │               │
 *                    ├─► FingerprintCache (warmed from the newest formulas)
 *                    └──────┬────────┘
 *                           ▼
 *                OutboxRelay (start-up recovery, backlog, uncertain outcomes)
 *                           ▼
 *                     FormulaIntake ◄── SubmissionCounters (duplicates, invalids; per-minute rows)
 *                                              └─► SubmissionStats (GET /stats/…)
 *
 *   WebhookEndpoints (the endpoint API) and FormulaIntake wake DeliverySignal after writing deliveries.
 *   database ─► DeliverySignal ─► WebhookDispatcher (claims due webhook deliveries; its own fibers)
 *   InstanceLock (an in-memory queue is alone on its database schema) is taken before the relay starts.
 *
 * With QUEUE_BACKEND=postgres the queue is the outbox table itself (queue/PgMessageQueue.ts): no hooks
 * (its statements settle the rows), no relay (OutboxRelay.layerOff: nothing to copy); the queue's `commit`
 * (after a submission's statement committed) announces it on the queue's channel, so long polls in every
 * instance wake within milliseconds — from a statement of its own, not the submission's (QueueChannel.ts).
 */
import type { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer } from "effect"
import { storableResult } from "./domain/MessageResult.ts"
import type { SqlClient } from "effect/sql"
import { FingerprintCache } from "./intake/FingerprintCache.ts"
import { FormulaIntake } from "./intake/FormulaIntake.ts"
import { IdempotencyKeys } from "./intake/IdempotencyKeys.ts"
import { OutboxRelay } from "./intake/OutboxRelay.ts"
import {
  type Acked,
  type DeadLetter,
  MessageQueue,
  type MessageQueueOptions,
  QueueConfig,
  type QueueHook
} from "./queue/MessageQueue.ts"
import * as Database from "./store/Database.ts"
import * as InstanceLock from "./store/InstanceLock.ts"
import { FormulaStore, type GroupCommitSettings, type SettleOutcome } from "./store/FormulaStore.ts"
import { DeliverySignal } from "./webhooks/DeliverySignal.ts"
import {
  databaseChoice,
  type QueueBackend,
  QueueBackendSetting,
  QueuePollIntervalMs,
  type Settings
} from "./Settings.ts"
import * as PgMessageQueue from "./queue/PgMessageQueue.ts"
import { WebhookEndpoints } from "./webhooks/WebhookEndpoints.ts"
import { type DispatcherOptions, WebhookDispatcher } from "./webhooks/Dispatcher.ts"
import { resolveAllowed } from "./webhooks/SsrfGuard.ts"
import { SubmissionCounters } from "./stats/SubmissionCounters.ts"
import { SubmissionStats } from "./stats/SubmissionStats.ts"

export type RuntimeServices =
  | FormulaIntake
  | FormulaStore
  | MessageQueue
  | FingerprintCache
  | IdempotencyKeys
  | OutboxRelay
  | DeliverySignal
  | WebhookEndpoints
  | WebhookDispatcher
  | SubmissionCounters
  | SubmissionStats

/**
 * The queue's hooks into the outbox: an ack settles its row with the result
 * and the `formula.processed` event (the ack fails if that fails: durable when
 * answered); a dead-lettering is recorded with its `formula.dead_lettered`
 * event, a redrive undoes it, a purge settles the row for good. A commit that
 * wrote webhook deliveries wakes the dispatcher (DeliverySignal: one per runtime,
 * provided here, so the dispatcher must take this one).
 */
const wakeDispatcher = (outcome: SettleOutcome) =>
  outcome.deliveries === 0 ? Effect.void : DeliverySignal.use((signal) => Effect.sync(signal.wake))

const settleHooks = {
  onAck: ({ attempts, messageId, result }: Acked) =>
    Effect.gen(function* () {
      const resultText = yield* storableResult(result)
      const store = yield* FormulaStore
      const outcome = yield* store.settleProcessed({ messageId, attempts, resultText })
      yield* wakeDispatcher(outcome)
    }),
  onDeadLetter: (letter: DeadLetter) =>
    FormulaStore.use((store) =>
      store.settleDeadLettered({
        messageId: letter.messageId,
        attempts: letter.attempts,
        lastError: letter.lastError,
        deadLetteredAt: new Date(letter.deadLetteredAt)
      })
    ).pipe(Effect.flatMap(wakeDispatcher)),
  onRedrive: (messageIds: ReadonlyArray<string>) => FormulaStore.use((store) => store.markRedriven(messageIds)),
  onPurge: (messageIds: ReadonlyArray<string>) => FormulaStore.use((store) => store.markPurged(messageIds))
}

export interface RuntimeOptions {
  /** Queue settings; default: from the environment (QUEUE_*). */
  readonly queue?: Omit<MessageQueueOptions, QueueHook> | undefined
  /** Where the queue lives; default: from QUEUE_BACKEND (memory). */
  readonly queueBackend?: QueueBackend | undefined
  /** `postgres` backend: how often idle long polls look for due messages anyway; default: QUEUE_POLL_INTERVAL_MS (1 s). */
  readonly queuePollInterval?: Duration.Input | undefined
  /**
   * `memory` backend: how long to wait for another in-memory instance on the same database to stop before
   * refusing to start; default: INSTANCE_LOCK_WAIT_MS (30 s).
   */
  readonly instanceLockWait?: Duration.Input | undefined
  /** Default: from FINGERPRINT_CACHE_SIZE (50000). */
  readonly cacheCapacity?: number | undefined
  /** Default: from OUTBOX_RELAY_INTERVAL_MS (5 s). */
  readonly relayInterval?: Duration.Input | undefined
  /** Default: from GROUP_COMMIT_* (batches of up to 64, no linger, 2 writers). */
  readonly groupCommit?: GroupCommitSettings | undefined
  /** How long Idempotency-Keys are kept; default: from IDEMPOTENCY_KEY_TTL_HOURS (24 h). */
  readonly idempotencyKeyTtl?: Duration.Input | undefined
  /**
   * Webhook endpoints may resolve to private addresses (registration); default: `webhooks.allowPrivateNetworks`,
   * else WEBHOOK_ALLOW_PRIVATE_NETWORKS (false).
   */
  readonly webhookAllowPrivateNetworks?: boolean | undefined
  /**
   * The webhook dispatcher; default: from WEBHOOK_* (the host check is always SsrfGuard's). `false`: none in this
   * runtime (deliveries wait for another process's dispatcher).
   */
  readonly webhooks?: Omit<DispatcherOptions, "resolve"> | false | undefined
  /** How often duplicate / invalid counts are written to the statistics; default 1 s. `false`: not counted at all. */
  readonly statsFlushInterval?: Duration.Input | false | undefined
}

/** The runtime on a given (migrated) database; the queue's backend from `options`, else QUEUE_BACKEND. */
export const layerWith = <E, R>(
  database: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>,
  options: RuntimeOptions = {}
) =>
  options.queueBackend === undefined
    ? Layer.unwrap(
        Effect.map(QueueBackendSetting.config, (queueBackend) => layerOn(database, { ...options, queueBackend }))
      )
    : layerOn(database, { ...options, queueBackend: options.queueBackend })

/** The in-memory queue, its storage hooks on the outbox. */
const memoryQueue = (options: RuntimeOptions) =>
  options.queue === undefined
    ? MessageQueue.layerConfig<FormulaStore | DeliverySignal>(settleHooks)
    : MessageQueue.layerWith<FormulaStore | DeliverySignal>({ ...options.queue, ...settleHooks })

/** The queue in the database: settings from `options.queue` or QUEUE_*, polling from QUEUE_POLL_INTERVAL_MS. */
const postgresQueue = (options: RuntimeOptions) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const settings = options.queue ?? (yield* QueueConfig)
      const pollInterval = options.queuePollInterval ?? (yield* QueuePollIntervalMs.config)
      return PgMessageQueue.layerWith({ ...settings, pollInterval })
    })
  )

const layerOn = <E, R>(
  database: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>,
  options: RuntimeOptions & { readonly queueBackend: QueueBackend }
) => {
  const inDatabase = options.queueBackend === "postgres"
  const queue = inDatabase ? postgresQueue(options) : memoryQueue(options)
  const cache =
    options.cacheCapacity === undefined
      ? FingerprintCache.layer
      : FingerprintCache.layerWith({ capacity: options.cacheCapacity })
  const relay = inDatabase
    ? OutboxRelay.layerOff
    : options.relayInterval === undefined
      ? OutboxRelay.layer
      : OutboxRelay.layerWith({ interval: options.relayInterval })
  const store =
    options.groupCommit === undefined ? FormulaStore.layerNoDeps : FormulaStore.layerWith(options.groupCommit)
  const keys =
    options.idempotencyKeyTtl === undefined
      ? IdempotencyKeys.layerNoDeps
      : IdempotencyKeys.layerWith({ ttl: options.idempotencyKeyTtl })
  const allowPrivateNetworks =
    options.webhookAllowPrivateNetworks ??
    (options.webhooks === false ? undefined : options.webhooks?.allowPrivateNetworks)
  const webhooks =
    allowPrivateNetworks === undefined
      ? WebhookEndpoints.layerNoDeps
      : WebhookEndpoints.layerWith({ allowPrivateNetworks })
  // Registration and every attempt check the endpoint's addresses with the same guard (SsrfGuard.ts).
  const dispatcher =
    options.webhooks === undefined
      ? WebhookDispatcher.layerConfig(resolveAllowed)
      : options.webhooks === false
        ? WebhookDispatcher.layerOff
        : WebhookDispatcher.layerWith({ ...options.webhooks, resolve: resolveAllowed })
  const counters =
    options.statsFlushInterval === false
      ? SubmissionCounters.layerOff
      : SubmissionCounters.layerWith({ interval: options.statsFlushInterval })
  // The guard: the in-memory queue alone on its database schema, taken before the relay's start-up recovery.
  const guard = InstanceLock.layerFor(options)
  return Layer.mergeAll(FormulaIntake.layerNoDeps, SubmissionStats.layer, dispatcher).pipe(
    Layer.provideMerge(counters),
    Layer.provideMerge(relay),
    Layer.provideMerge(Layer.mergeAll(queue, cache, webhooks)),
    Layer.provideMerge(Layer.mergeAll(store, keys, DeliverySignal.layer, guard)),
    Layer.provide(database)
  )
}

/** The runtime on the database chosen by `DATABASE_URL` / `DATA_DIR`, every setting from the environment. */
export const layer = layerWith(Database.layer)

/** The database `settings` choose; a DATA_DIR another process holds is waited for as long as the instance lock. */
const databaseOf = (settings: Settings) =>
  Database.layerFrom(databaseChoice(settings), {
    waitMs: settings.databaseWaitMs,
    lockWaitMs: settings.instanceLockWaitMs
  })

/** The runtime as `settings` (read once by `Settings.load`) describe it; reads nothing more from the environment. */
export const layerFromSettings = (settings: Settings) =>
  layerWith(databaseOf(settings), {
    queue: {
      capacity: settings.queueCapacity,
      visibilityTimeout: settings.queueVisibilityTimeoutMs,
      maxDeliveries: settings.queueMaxDeliveries
    },
    queueBackend: settings.queueBackend,
    queuePollInterval: Duration.millis(settings.queuePollIntervalMs),
    instanceLockWait: Duration.millis(settings.instanceLockWaitMs),
    cacheCapacity: settings.fingerprintCacheSize,
    relayInterval: settings.outboxRelayIntervalMs,
    groupCommit: {
      maxBatch: settings.groupCommitMaxBatch,
      linger: settings.groupCommitLingerMs,
      workers: settings.groupCommitWorkers
    },
    idempotencyKeyTtl: Duration.hours(settings.idempotencyKeyTtlHours),
    webhookAllowPrivateNetworks: settings.webhookAllowPrivateNetworks,
    webhooks: {
      schedule: settings.webhookRetrySchedule,
      concurrency: settings.webhookConcurrency,
      disableAfter: Duration.hours(settings.webhookDisableAfterHours),
      allowPrivateNetworks: settings.webhookAllowPrivateNetworks
    }
  })
