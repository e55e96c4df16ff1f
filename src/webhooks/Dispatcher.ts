/**
 * The webhook dispatcher: sends due deliveries, records every attempt, and
 * settles each delivery by the retry policy (RetryPolicy.ts). Deliveries are
 * rows (written in the transaction of the change that caused their event), so
 * nothing here is the only copy of anything: a process that dies mid-attempt
 * leaves a lease that lapses, and the delivery is claimed again.
 *
 *   claim loop ──► claimDue (FOR UPDATE SKIP LOCKED, lease = timeout + 30 s)
 *       ▲                  │ one fiber per claimed delivery
 *       │                  ▼
 *       │          sign ─► send (Sender.ts, the checked address) ─► judge ─► settle (fenced by lease_token)
 *       │                                                                       │
 *       └──── wakes on: DeliverySignal.wake() (a commit in this process), ◄─────┘ a slot freed,
 *             the next known due time (a timer), the poll interval (rows of other processes)
 *
 * Settlements are written in batches (one transaction per batch, a few writers),
 * and a request's slot frees when its answer is in, before its settlement is
 * written: one commit per attempt held every slot for a round trip to the
 * database. At most 2 × `concurrency` deliveries are claimed and unsettled, so
 * a slow database slows claiming rather than letting leases lapse.
 *
 * Bounds: at most `concurrency` attempts at once in the process, at most
 * `perEndpoint` (4) per endpoint — the claim itself leaves out deliveries of an
 * endpoint that has no room — so one hanging endpoint holds at most 4 slots and
 * the others keep flowing. Several processes may run this at once on one
 * PostgreSQL: SKIP LOCKED and the lease keep them from sending one attempt
 * twice at once; the lease token fences settlements.
 *
 * Shutdown (the layer's scope closes): the claim loop stops first (no new
 * claims); attempts in flight finish — each is bounded by the timeout — and
 * settle; whatever is still running after that is interrupted and its lease lapses.
 *
 * Time: every timestamp written (attempt, due time, lease, endpoint health)
 * comes from Effect's Clock; tests drive it with TestClock.
 */
import { PgClient } from "@effect/sql-pg"
import {
  Clock,
  Config,
  Context,
  Deferred,
  Duration,
  Effect,
  Fiber,
  FiberSet,
  Latch,
  Layer,
  Metric,
  Random,
  Schedule
} from "effect"
import { isSqlError } from "effect/sql/SqlError"
import { randomUUID } from "node:crypto"
import { counterFamily, registerGaugeReading } from "../observability/Counters.ts"
import {
  WebhookAllowPrivateNetworks,
  WebhookConcurrency,
  WebhookDisableAfterHours,
  WebhookRetrySchedule
} from "../Settings.ts"
import { DeliverySignal } from "./DeliverySignal.ts"
import { type ClaimedDelivery, makeDeliverySql, type SettledStatus, type Settlement } from "./DeliverySql.ts"
import { judge, type Verdict } from "./RetryPolicy.ts"
import { type AttemptResult, closeAgents, makeAgents, type Resolve, resolveUnchecked, send } from "./Sender.ts"
import { liveSecrets, signedHeaders } from "./Signature.ts"

/** What one attempt came to, for observers (tests). */
export interface AttemptReport {
  readonly deliveryId: string
  readonly eventId: string
  readonly endpointId: string
  /** 1 for the first attempt. */
  readonly attempt: number
  readonly result: AttemptResult
  readonly verdict: Verdict
  /** False when the lease had lapsed and another claim held the delivery: nothing was written. */
  readonly settled: boolean
}

export interface DispatcherOptions {
  /** Delays of successive attempts in ms (WEBHOOK_RETRY_SCHEDULE). */
  readonly schedule: ReadonlyArray<number>
  /** Attempts at once in this process (WEBHOOK_CONCURRENCY). */
  readonly concurrency: number
  /** An endpoint failing this long without a success is disabled (WEBHOOK_DISABLE_AFTER_HOURS). */
  readonly disableAfter: Duration.Input
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS, passed to `resolve`. */
  readonly allowPrivateNetworks: boolean
  /** Resolves and checks an endpoint's host: SsrfGuard.resolveAllowed in the service. Default: unchecked DNS. */
  readonly resolve?: Resolve | undefined
  /** One attempt's timeout; default 15 s. The lease is this plus 30 s. */
  readonly timeout?: Duration.Input | undefined
  /** The backstop for deliveries written by other processes; default 2 s. */
  readonly pollInterval?: Duration.Input | undefined
  /** Attempts at once per endpoint; default 4. */
  readonly perEndpoint?: number | undefined
  /** Called after every attempt (tests observe the dispatcher through it). */
  readonly onAttempt?: ((report: AttemptReport) => Effect.Effect<void>) | undefined
}

const metric = {
  deliveries: Metric.counter("webhook_deliveries_total", {
    description:
      "Webhook attempts by outcome: succeeded, retried, failed (after the last step), gone (410: endpoint disabled), lease_lost (settled elsewhere)"
  }),
  duration: Metric.histogram("webhook_attempt_duration_seconds", {
    description: "Duration of one webhook attempt (resolve, connect, answer, first KiB)",
    boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15]
  }),
  pending: Metric.gauge("webhook_deliveries_pending", {
    description: "Pending webhook deliveries in the database (all processes)"
  }),
  disabled: Metric.gauge("webhook_endpoints_disabled", { description: "Disabled webhook endpoints in the database" })
}

const outcomeOf = (verdict: Verdict, settled: boolean) =>
  !settled
    ? "lease_lost"
    : verdict._tag === "Succeeded"
      ? "succeeded"
      : verdict._tag === "Retry"
        ? "retried"
        : verdict._tag === "Gone"
          ? "gone"
          : "failed"

const statusOf = (verdict: Verdict): SettledStatus =>
  verdict._tag === "Succeeded" ? "succeeded" : verdict._tag === "Retry" ? "pending" : "failed"

/**
 * How far an endpoint's `last_success_at` may lag its newest success while it
 * is not failing (DeliverySql.settleBatch): a healthy endpoint's row is then
 * written about once a second under load rather than by every batch.
 */
const successFreshMs = 1_000

/** Transactions writing settlements at once. */
const settleWriters = 3

/** The pause after repeated claims that found due rows locked by another process's claim. */
const minWaitMs = 20

export class WebhookDispatcher extends Context.Service<
  WebhookDispatcher,
  {
    /** Attempts running now in this process. */
    readonly inFlight: Effect.Effect<number>
  }
>()("formula-intake/webhooks/WebhookDispatcher") {
  static readonly layerWith = (
    options: DispatcherOptions
  ): Layer.Layer<WebhookDispatcher, never, PgClient.PgClient | DeliverySignal> =>
    Layer.effect(WebhookDispatcher, make(options))

  /**
   * No dispatching in this process: the deliveries stay rows for another
   * process's dispatcher (and for tests that read them as they were written).
   */
  static readonly layerOff: Layer.Layer<WebhookDispatcher> = Layer.succeed(WebhookDispatcher, {
    inFlight: Effect.succeed(0)
  })

  /** Settings from WEBHOOK_*; `resolve` checks endpoint hosts (SsrfGuard.resolveAllowed in the service). */
  static readonly layerConfig = (resolve: Resolve) =>
    Layer.unwrap(
      Effect.map(
        Config.all({
          schedule: WebhookRetrySchedule.config,
          concurrency: WebhookConcurrency.config,
          disableAfterHours: WebhookDisableAfterHours.config,
          allowPrivateNetworks: WebhookAllowPrivateNetworks.config
        }),
        (settings) =>
          WebhookDispatcher.layerWith({
            schedule: settings.schedule,
            concurrency: settings.concurrency,
            disableAfter: Duration.hours(settings.disableAfterHours),
            allowPrivateNetworks: settings.allowPrivateNetworks,
            resolve
          })
      )
    )
}

const make = Effect.fnUntraced(function* (options: DispatcherOptions) {
  const sqlClient = yield* PgClient.PgClient
  const sql = makeDeliverySql(sqlClient)
  const signal = yield* DeliverySignal
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.seconds(15))
  const leaseMs = Duration.toMillis(timeout) + 30_000
  const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? Duration.seconds(2))
  const perEndpoint = options.perEndpoint ?? 4
  const claimBatch = Math.max(1, Math.floor(options.concurrency / 8))
  const disableAfterMs = Duration.toMillis(options.disableAfter)
  const agents = makeAgents()
  yield* Effect.addFinalizer(() => Effect.sync(() => closeAgents(agents)))
  const sendOptions = {
    resolve: options.resolve ?? resolveUnchecked,
    allowPrivateNetworks: options.allowPrivateNetworks,
    timeout,
    agents
  }

  const countOutcome = yield* counterFamily(metric.deliveries, ["outcome"])
  const gauges = { pending: 0, disabled: 0 }
  yield* Effect.acquireRelease(
    Effect.contextWith((context: Context.Context<never>) =>
      Effect.succeed([
        registerGaugeReading(metric.pending, {}, context, () => gauges.pending),
        registerGaugeReading(metric.disabled, {}, context, () => gauges.disabled)
      ])
    ),
    (registrations) => Effect.sync(() => registrations.forEach((registration) => registration.remove()))
  )

  // In-flight attempts, in total and per endpoint: the claim asks only for what fits.
  let inFlight = 0
  /** Claimed and not yet settled (in flight, or waiting for their settlement to be written). */
  let unsettled = 0
  const perEndpointInFlight = new Map<string, number>()
  /** Opened when a slot frees or a delivery settles: the claim loop looks again. */
  const recheck = Latch.makeUnsafe(false)
  const attempts = yield* FiberSet.make<void, never>()

  // Settlements are written in batches, one transaction of two statements each (a group commit):
  // one commit per attempt was what bounded throughput, then one statement per settlement, each
  // updating its endpoint's row, queued concurrent batches on those rows. Endpoint rows are locked
  // in id order (DeliverySql.settleBatch), so concurrent batches cannot deadlock. A batch that
  // fails fails all its attempts' settlements: their leases lapse and they are attempted again.
  const queued: Array<{ readonly settlement: Settlement; readonly done: Deferred.Deferred<boolean, unknown> }> = []
  const settlementsQueued = Latch.makeUnsafe(false)
  const settle = (settlement: Settlement) =>
    Effect.suspend(() => {
      const done = Deferred.makeUnsafe<boolean, unknown>()
      queued.push({ settlement, done })
      settlementsQueued.openUnsafe()
      return Deferred.await(done)
    })
  const isConflict = (error: unknown) =>
    isSqlError(error) && (error.reason._tag === "DeadlockError" || error.reason._tag === "SerializationError")
  const settleWriter = Effect.gen(function* () {
    while (true) {
      yield* settlementsQueued.await
      settlementsQueued.closeUnsafe()
      while (queued.length > 0) {
        const batch = queued.splice(0, 100)
        const exit = yield* Effect.exit(
          sqlClient
            .withTransaction(
              sql.settleBatch(
                batch.map(({ settlement }) => settlement),
                successFreshMs
              )
            )
            .pipe(
              // Two batches can still deadlock (the health merge may write an endpoint the lock step left
              // unlocked): PostgreSQL aborts one, which is then written again, instead of leaving its attempts
              // unrecorded until their leases lapse and they are sent a second time.
              Effect.retry({
                while: isConflict,
                times: 5,
                schedule: Schedule.exponential("10 millis")
              })
            )
        )
        batch.forEach(({ done }, i) =>
          Deferred.doneUnsafe(done, exit._tag === "Success" ? Effect.succeed(exit.value[i]!) : Effect.fail(exit.cause))
        )
      }
    }
  })

  const attempt = (delivery: ClaimedDelivery, leaseToken: string) => {
    let released = false
    const releaseSlot = () => {
      if (released) return
      released = true
      inFlight--
      const left = (perEndpointInFlight.get(delivery.endpointId) ?? 1) - 1
      if (left === 0) perEndpointInFlight.delete(delivery.endpointId)
      else perEndpointInFlight.set(delivery.endpointId, left)
      recheck.openUnsafe()
    }
    return Effect.gen(function* () {
      const startedAt = yield* Clock.currentTimeMillis
      const headers = signedHeaders({
        eventId: delivery.eventId,
        body: delivery.body,
        secrets: liveSecrets(delivery, startedAt),
        nowMs: startedAt
      })
      const result = yield* send({ url: delivery.url, body: delivery.body, headers }, sendOptions)
      // The request is over: its slot is free for the next one while this one is recorded
      // (the delivery stays leased until then, so no claim takes it meanwhile).
      releaseSlot()
      const endedAt = yield* Clock.currentTimeMillis
      const attemptsMade = delivery.attemptCount + 1
      const verdict = judge({
        result,
        attemptsMade,
        schedule: options.schedule,
        nowMs: endedAt,
        random: yield* Random.next
      })
      const settled = yield* settle({
        deliveryId: delivery.id,
        endpointId: delivery.endpointId,
        leaseToken,
        status: statusOf(verdict),
        nextAttemptAt: verdict._tag === "Retry" ? new Date(endedAt + verdict.delayMs) : null,
        attempt: {
          at: new Date(startedAt),
          durationMs: endedAt - startedAt,
          status: result._tag === "Answered" ? result.status : null,
          error: result._tag === "Failed" ? result.error : null,
          response: result._tag === "Answered" ? result.body : null
        },
        succeeded: verdict._tag === "Succeeded",
        gone: verdict._tag === "Gone",
        disableIfFailingSince: new Date(endedAt - disableAfterMs),
        disabledReason:
          verdict._tag === "Gone"
            ? "the endpoint answered 410 Gone"
            : `failing without a success for ${Duration.format(Duration.millis(disableAfterMs))}`
      })
      // The delivery's next due time (or none) is now in the database: the claim loop's timer must see it.
      recheck.openUnsafe()
      countOutcome(outcomeOf(verdict, settled))
      yield* Metric.update(metric.duration, (endedAt - startedAt) / 1000)
      if (!settled) {
        yield* Effect.logWarning("webhook attempt settled elsewhere: its lease had lapsed").pipe(
          Effect.annotateLogs({ deliveryId: delivery.id })
        )
      }
      if (options.onAttempt !== undefined) {
        yield* options.onAttempt({
          deliveryId: delivery.id,
          eventId: delivery.eventId,
          endpointId: delivery.endpointId,
          attempt: attemptsMade,
          result,
          verdict,
          settled
        })
      }
    }).pipe(
      // A settlement the database refused leaves the lease to lapse: the delivery is attempted again then.
      Effect.catch((error) =>
        Effect.logWarning("webhook attempt not recorded (database unavailable); retried after its lease", error)
      ),
      Effect.ensuring(
        Effect.sync(() => {
          releaseSlot()
          unsettled--
          recheck.openUnsafe()
        })
      )
    )
  }

  /** One claim, and its attempts started; returns how long to wait before the next (undefined: until woken). */
  const claimAndStart = Effect.gen(function* () {
    // Requests end before their settlement is written; no more than `concurrency` may wait for that,
    // so a slow database slows claiming instead of letting leases lapse on unrecorded attempts.
    const free = Math.min(options.concurrency - inFlight, 2 * options.concurrency - unsettled)
    // Under load, claim for several freed slots at once rather than one statement per finished attempt.
    if (free <= 0 || (inFlight > 0 && free < claimBatch)) return undefined
    const now = yield* Clock.currentTimeMillis
    const leaseToken = randomUUID()
    const claimed = yield* sql.claimDue({
      now: new Date(now),
      leaseUntil: new Date(now + leaseMs),
      leaseToken,
      limit: free,
      perEndpoint,
      inFlight: perEndpointInFlight
    })
    if (claimed.length > 0) dueButSkipped = 0
    for (const delivery of claimed) {
      inFlight++
      unsettled++
      perEndpointInFlight.set(delivery.endpointId, (perEndpointInFlight.get(delivery.endpointId) ?? 0) + 1)
      yield* FiberSet.run(attempts, attempt(delivery, leaseToken))
    }
    if (claimed.length === free) return 0 // there may be more: claim again once there is room
    // Fewer than asked for, and some: the endpoints with due rows had no more room (or another
    // process holds them). An attempt just started, and its end (a slot freed) or its settlement
    // opens `recheck`: the claim runs again then, and looks for the next due time once it finds
    // nothing. Looking now cost one more statement per claim, and with a single busy endpoint a
    // claim per finished attempt is the norm.
    if (claimed.length > 0) return undefined
    const full = [...perEndpointInFlight].filter(([, count]) => count >= perEndpoint).map(([id]) => id)
    const next = yield* sql.nextDueAt(full)
    if (next === undefined) return undefined
    // Due now but not claimed: rows another process is claiming (SKIP LOCKED), or time moved on
    // during this pass. Claim again at once, a few times, then give the other claim a moment.
    if (next.getTime() <= (yield* Clock.currentTimeMillis)) return ++dueButSkipped <= 10 ? 0 : minWaitMs
    dueButSkipped = 0
    return next.getTime() - now
  })
  let dueButSkipped = 0

  const pollMs = Duration.toMillis(pollInterval)
  const loop = Effect.gen(function* () {
    while (true) {
      recheck.closeUnsafe()
      const wait = yield* claimAndStart.pipe(
        Effect.catch((error) =>
          Effect.as(Effect.logWarning("webhook dispatcher: database unavailable; will retry", error), pollMs)
        )
      )
      if (wait === 0) continue
      yield* Effect.raceAll([
        signal.waitForWake,
        recheck.await,
        Effect.sleep(Duration.millis(Math.min(wait ?? pollMs, pollMs)))
      ])
    }
  })

  const refreshGauges = sql.counts.pipe(
    Effect.tap((counts) =>
      Effect.sync(() => {
        gauges.pending = counts.pending
        gauges.disabled = counts.disabled
      })
    ),
    Effect.ignore,
    Effect.andThen(Effect.sleep(pollInterval)),
    Effect.forever
  )

  const loopFiber = yield* Effect.forkScoped(loop)
  yield* Effect.forkScoped(refreshGauges)
  // A few writers, so one batch's round trips do not hold up the next; each batch locks endpoint rows in
  // the same (sorted) order, so they wait for each other at worst.
  for (let i = 0; i < settleWriters; i++) yield* Effect.forkScoped(settleWriter)
  // Runs before the fibers' own finalizers (registered earlier): stop claiming, then let attempts finish.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* Fiber.interrupt(loopFiber)
      yield* FiberSet.awaitEmpty(attempts).pipe(
        Effect.timeoutOrElse({ duration: Duration.sum(timeout, Duration.seconds(5)), orElse: () => Effect.void })
      )
    })
  )

  return WebhookDispatcher.of({ inFlight: Effect.sync(() => inFlight) })
})
