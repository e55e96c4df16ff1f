/**
 * PgMessageQueue: the `MessageQueue` port on the outbox table
 * (QUEUE_BACKEND=postgres), for several instances on one database. The
 * outbox row *is* the message; there is no copy in memory.
 *
 * A row's states (columns of `outbox`, migration 0009):
 *
 *   submit's INSERT commits       claim (receive)            ack
 *   ─────────────────────► ready ─────────────────► in flight ───► settled (delivered_at, result)
 *                          ▲ ▲ ▲ visible_at ≤ now   receipt set,  │ │ │
 *                          │ │ └─ nack (delay 0), ──┘ visible_at  │ │ │
 *                          │ │    release, expiry     = deadline  │ │ │
 *                          │ └── delayed ◄── nack (delay) ────────┘ │ │
 *                          │     receipt NULL, visible_at > now     │ │
 *                     redrive ◄── dead letter ◄────────────────────┘ │  nack of the last delivery, or a
 *                                  (dead_lettered_at) ◄──────────────┘  claim meeting an expired last one
 *                                     │ purge ──► settled (purged_at)
 *
 * - Receivable when the inserting transaction commits: two-phase publish for
 *   free. `reserve`/`commit`/`abort` are admission only (capacity); the submit
 *   path's own INSERT writes the row, and `commit` wakes local long polls.
 * - One statement claims due rows `FOR UPDATE SKIP LOCKED` (PgQueueSql.ts):
 *   concurrent claims in any number of instances never take one row twice, and
 *   each claim sets a fresh receipt, so one message never has two owners.
 *   Rows are claimed in the order they fell due, `greatest(visible_at,
 *   created_at)`: a redelivery (expiry, nack) joins the end of the ready line
 *   at its deadline, as in the in-memory queue, and is not starved by a
 *   stream of new messages. A
 *   receipt is current until its deadline: ack/nack/extend/release match it
 *   and `visible_at > now` in the same statement (stale: `ReceiptInvalid`).
 * - Time is the Effect Clock plus an offset (database `now()` − Clock,
 *   measured once at start), bound as a parameter: a TestClock drives this
 *   queue as it drives the in-memory one, and instances share the database's
 *   clock. Times handed out (dead letters) are in the Clock's frame.
 * - Long polls wake on NOTIFY (store/QueueChannel.ts: to every instance
 *   LISTENing on the schema's channel), on local commits, at the next due row
 *   (an expiry, a nack delay) and at least every `pollInterval` (the backstop:
 *   a lost connection, a notification missed while reconnecting, a process
 *   killed between a commit and its announcement). On the embedded database
 *   (one connection, nothing to LISTEN with; or any pool of one) only the
 *   local wakes and the backstop.
 * - Announcing: whatever makes rows ready here — `commit` (after the submit
 *   path's INSERT committed), publish, nack without delay, release, redrive —
 *   wakes local long polls at once and asks one announcer fiber to send
 *   `SELECT pg_notify(…)` afterwards, as a statement of its own: at most one
 *   in flight per instance, and the requests that arrive meanwhile make
 *   exactly one more, its payload their total. Never inside the statement
 *   that made the rows ready: PostgreSQL serializes the commits of notifying
 *   transactions across the server (a lock held through the commit's WAL
 *   flush), so a NOTIFY in every submission held pgbench's one-submission
 *   transactions to ~290–470/s at any concurrency, against 873–2,805/s
 *   without, and the service to 0.26–0.56× of pgbench (BENCHMARKS.md). A
 *   failed announcement is logged and changes nothing else: the backstop
 *   wakes the other instances' long polls.
 *
 * Capacity (unsettled rows that are not dead letters) is approximate across
 * processes, and never counted on the hot path far from full. Each instance
 * keeps the count it last read (every `pollInterval`, and on demand) plus the
 * reservations that count cannot have seen (admitted since it began, or open
 * when it began). It admits without counting while that estimate is below the
 * capacity *and* it has admitted fewer than a quota = ⌈(capacity − count) / 8⌉
 * since the count; past either it counts first (one count in flight per
 * instance, shared by the reservations waiting for it), and after a fresh
 * count only the capacity decides. So a refusal (`QueueFull`) always rests on
 * a count that began after the refused reserve did, and near full (room < 9)
 * every admission counts.
 *
 * The bound: what a deciding count cannot see is the *other* instances'
 * reservations still open at its snapshot (their submissions not yet
 * committed), plus, while they have not counted again, at most one quota each.
 * With N instances each holding at most c reservations open at once, the
 * queue exceeds its capacity by at most (N − 1) × c plus those quotas — and
 * the quotas alone never overshoot while N ≤ 8 (each is an eighth of the room
 * its instance saw). Measured (test/queue/PgMessageQueue.test.ts, capacity
 * 40, two instances × 4 concurrent publishers on PostgreSQL): 40 to 44 over
 * six runs; filling in turns (nothing open at once) stops at exactly 40. On
 * the embedded database (one connection, one process) it is exact.
 *
 * Differences from the in-memory queue, by design: `reserve` + `commit` write
 * no row (the submit path's INSERT does; a message of one's own goes through
 * `publish`), so a reserved id is never joined nor reported duplicate; a
 * settled, purged or dead-lettered id stays in the table, so publishing it
 * again is a duplicate (memory forgets acked and purged ids); message ids must be UUIDs (the
 * outbox's key; anything else is a defect); a released delivery takes its
 * place by age, not the front of the line (the in-memory queue's);
 * `pending` is this instance's open reservations; `totals` are this
 * instance's counters since it started; `attemptsOf` is always undefined (the
 * row's `attempts` is current, so readers take it from there); the gauges
 * are as of the latest count (every `pollInterval`, and each `stats`); an
 * `AckNotRecorded` carries no message id (an ack knows only its receipt).
 * Database failures: an ack fails with `AckNotRecorded` (503; unconfirmed: if
 * the connection was lost after sending, it may have been recorded, and
 * acking again then answers 409);
 * receive logs them and returns nothing (waiting out its long poll, retrying
 * each `pollInterval`); every other operation dies (500).
 */
import { PgClient } from "@effect/sql-pg"
import { Cause, Clock, Deferred, Duration, Effect, Latch, Layer, Queue } from "effect"
import { encodeResult } from "../domain/MessageResult.ts"
import { hasOneConnection } from "../store/Database.ts"
import { FormulaStore, type SettleOutcome } from "../store/FormulaStore.ts"
import { DeliverySignal } from "../webhooks/DeliverySignal.ts"
import {
  type AckOptions,
  type DeadLetter,
  type Delivery,
  type Message,
  MessageQueue,
  type MessageQueueService,
  type NackOptions,
  type PublishResult,
  type QueueStats,
  type ReceiveOptions,
  registerQueueMetrics,
  type Reservation,
  settingsOf,
  toMillis,
  type Totals
} from "./MessageQueue.ts"
import { expiredError, nackedError } from "./QueueCore.ts"
import { AckNotRecorded, QueueFull, ReceiptInvalid } from "./QueueErrors.ts"
import { jsonValue, makePgQueueSql } from "./PgQueueSql.ts"

export interface PgMessageQueueOptions {
  /** Default 10000 (approximate across instances: see the module doc). */
  readonly capacity?: number | undefined
  /** Default 30 seconds. */
  readonly visibilityTimeout?: Duration.Input | undefined
  /** Default 5. */
  readonly maxDeliveries?: number | undefined
  /** The `queue` attribute of the metrics (default "messages"). */
  readonly name?: string | undefined
  /** The backstop: how often idle long polls and the counts look at the table anyway (default 1 s). */
  readonly pollInterval?: Duration.Input | undefined
}

/** Admissions per count are at most the room it saw divided by this (see the module doc). */
const quotaDivisor = 8

/** Claims repeated at most this often in one receive when they met only rows to dead-letter. */
const maxClaimRounds = 10

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

class PgReservation implements Reservation {
  readonly messageId: string
  readonly duplicate = false
  readonly owner: object
  settled = false
  constructor(owner: object, messageId: string) {
    this.owner = owner
    this.messageId = messageId
  }
}

type MutableTotals = { -readonly [K in keyof Totals]: number }

/** Builds the queue in the current scope: its listener and count fibers live as long as the scope. */
export const make = Effect.fnUntraced(function* (options: PgMessageQueueOptions) {
  // Claims skip locked rows: consumeTransactional's row lock alone keeps a delivery from everyone else.
  const settings = { ...(yield* settingsOf(options)), lockedRowsAreSkipped: true }
  const pollMs = Math.max(1, toMillis(options.pollInterval, 1_000))
  const name = options.name ?? "messages"
  const sql = yield* PgClient.PgClient
  const store = yield* FormulaStore
  const signal = yield* DeliverySignal
  const clock = yield* Clock.Clock
  // The embedded database (or a pool of one): no connection to LISTEN with, so nothing to announce to.
  const listening = !hasOneConnection(sql)
  const q = makePgQueueSql(sql)
  const owner = {}

  // The database's clock, read once: the queue's now is the Clock plus this.
  const offset = (yield* Effect.orDie(q.databaseNow)).getTime() - clock.currentTimeMillisUnsafe()
  const now = () => clock.currentTimeMillisUnsafe() + offset

  // When a published row is written (its `created_at`, its place in the claim order): the queue's now,
  // in the frame of the deadlines it will be compared with (the column's default, the database's
  // `now()`, is another frame under a TestClock), plus a microsecond per earlier publish in the same
  // millisecond, so this instance's publishes keep their order.
  let lastWrittenAt = -Infinity
  let sameMillisecond = 0
  const writtenAt = () => {
    const at = now()
    sameMillisecond = at === lastWrittenAt ? Math.min(sameMillisecond + 1, 999) : 0
    lastWrittenAt = at
    return { at: new Date(at), micros: sameMillisecond }
  }

  const totals: MutableTotals = {
    published: 0,
    duplicates: 0,
    aborted: 0,
    delivered: 0,
    redelivered: 0,
    acked: 0,
    nacked: 0,
    expired: 0,
    released: 0,
    deadLettered: 0,
    redriven: 0,
    purged: 0
  }

  // --- waking long polls --------------------------------------------------------------

  // Receivers waiting in a long poll; `wake(n)` wakes n of them (messages that became ready).
  // `wakes` counts every wake, so a receiver that claimed nothing can tell whether one came
  // while its claim ran (and claim again) instead of sleeping through it.
  const waiters = new Set<() => void>()
  let wakes = 0
  let waiting = true
  const wake = (count: number) => {
    wakes++
    for (const waiter of waiters) {
      if (count-- <= 0) break
      waiters.delete(waiter)
      waiter()
    }
  }

  const awaitWake = (millis: number): Effect.Effect<void> =>
    Effect.raceFirst(
      Effect.callback<void>((resume) => {
        const waiter = () => resume(Effect.void)
        waiters.add(waiter)
        return Effect.sync(() => {
          waiters.delete(waiter)
        })
      }),
      clock.sleep(Duration.millis(millis))
    )

  // A sleeping long poll knows when the next row falls due as of its last look. A nack with a delay or
  // an extend by this instance can make one due sooner: `armAt` wakes one sleeper then (in the Clock's
  // frame); one timer fiber, sleeping until the earliest such time, as in the in-memory queue.
  const timerLatch = Latch.makeUnsafe(false)
  let armedAt = Infinity
  const armAt = (at: number) => {
    if (waiters.size > 0 && at < armedAt) {
      armedAt = at
      timerLatch.openUnsafe()
    }
  }
  yield* Effect.gen(function* () {
    while (true) {
      timerLatch.closeUnsafe()
      const local = clock.currentTimeMillisUnsafe()
      if (armedAt <= local) {
        armedAt = Infinity
        wake(1)
        continue
      }
      yield* armedAt === Infinity
        ? timerLatch.await
        : Effect.raceFirst(clock.sleep(Duration.millis(armedAt - local)), timerLatch.await)
    }
  }).pipe(Effect.annotateLogs({ module: "PgMessageQueue", fiber: "timer" }), Effect.interruptible, Effect.forkScoped)

  if (listening) {
    const channel = yield* Effect.orDie(q.readyChannel)
    const firstListen = Deferred.makeUnsafe<void>()
    // One LISTEN connection for the instance. If it fails (the connection dropped), the backstop
    // serves until it is back; then every waiter looks once, for what was announced meanwhile.
    const listenOnce = Effect.scoped(
      Effect.gen(function* () {
        const notifications = yield* sql.listen(channel)
        Deferred.doneUnsafe(firstListen, Effect.void)
        wake(waiters.size)
        while (true) {
          const notification = yield* Queue.take(notifications)
          const count = Number(notification.payload)
          wake(Number.isInteger(count) && count > 0 ? count : waiters.size)
        }
      })
    )
    yield* listenOnce.pipe(
      Effect.catchCause((cause) =>
        Effect.andThen(
          Effect.sync(() => Deferred.doneUnsafe(firstListen, Effect.void)),
          Cause.hasInterruptsOnly(cause)
            ? Effect.interrupt
            : Effect.andThen(
                Effect.logWarning(`PgMessageQueue: LISTEN failed; polling every ${pollMs} ms until it is back`, cause),
                clock.sleep(Duration.millis(pollMs))
              )
        )
      ),
      Effect.forever,
      Effect.annotateLogs({ module: "PgMessageQueue", fiber: "listen" }),
      Effect.interruptible,
      Effect.forkScoped
    )
    // Answer only once listening: a message committed after this returns wakes this queue's long polls.
    yield* Deferred.await(firstListen)
  }

  // Messages made ready here and not yet announced; the announcer takes them all at once (module doc).
  let unannounced = 0
  const announceLatch = Latch.makeUnsafe(false)
  if (listening) {
    yield* Effect.gen(function* () {
      while (true) {
        yield* announceLatch.await
        // Closed before the statement: a request while it is in flight opens it again, for one more.
        announceLatch.closeUnsafe()
        const count = unannounced
        unannounced = 0
        yield* q
          .announce(count)
          .pipe(
            Effect.catch((error) =>
              Effect.logWarning(
                `PgMessageQueue: could not announce ${count} ready message(s); other instances find them at their next poll`,
                error
              )
            )
          )
      }
    }).pipe(
      Effect.annotateLogs({ module: "PgMessageQueue", fiber: "announce" }),
      Effect.interruptible,
      Effect.forkScoped
    )
  }

  /** `count` messages became ready (their statement committed): wakes local long polls, announces to all. */
  const madeReady = (count: number) => {
    wake(count)
    if (!listening) return
    unannounced += count
    announceLatch.openUnsafe()
  }

  // --- capacity -----------------------------------------------------------------------

  // `counted`: unsettled non-dead rows at the last count. Local reservations it may have missed: those
  // admitted since it began (`admitted - admittedAtCount`) and those open when it began (`openAtCount`;
  // one committed before its snapshot is counted twice, one aborted since still counts: both err on the
  // full side, and only until the next count). `open`: reservations not yet committed or aborted.
  let counted = 0
  let admitted = 0
  let admittedAtCount = 0
  let openAtCount = 0
  let countBegan = -1
  let open = 0
  let recounting: Deferred.Deferred<void> | undefined = undefined

  const sinceCount = () => admitted - admittedAtCount
  const estimate = () => counted + sinceCount() + openAtCount
  const quota = () => Math.max(1, Math.ceil((settings.capacity - counted) / quotaDivisor))

  let countSeq = 0
  /** Begins a count: what it will not see is what is local now or later. Returns its completion. */
  const beginCount = () => {
    const began = countSeq++
    const mark = admitted
    const openMark = open
    return (count: number) => {
      if (began < countBegan) return // a later count completed first
      countBegan = began
      counted = count
      admittedAtCount = mark
      openAtCount = openMark
    }
  }

  /** Counts now, or joins the count in flight (which began after the caller's last look). */
  const recount: Effect.Effect<void> = Effect.suspend(() => {
    if (recounting !== undefined) return Deferred.await(recounting)
    const done = Deferred.makeUnsafe<void>()
    recounting = done
    const record = beginCount()
    return q.capacityCount.pipe(
      Effect.tap((count) => Effect.sync(() => record(count))),
      Effect.catch((error) => Effect.logWarning("PgMessageQueue: counting the queue failed", error)),
      Effect.ensuring(
        Effect.sync(() => {
          recounting = undefined
          Deferred.doneUnsafe(done, Effect.void)
        })
      ),
      Effect.asVoid,
      Effect.uninterruptible
    )
  })

  const admitNow = (): boolean => {
    if (estimate() >= settings.capacity || sinceCount() >= quota()) return false
    admitted++
    open++
    return true
  }

  /** Admission; after a fresh count only the capacity decides. */
  const admit = (messageId: string): Effect.Effect<void, QueueFull> =>
    Effect.suspend(() => {
      if (admitNow()) return Effect.void
      return Effect.flatMap(recount, () => {
        if (estimate() >= settings.capacity) {
          return Effect.fail(new QueueFull({ messageId, capacity: settings.capacity }))
        }
        admitted++
        open++
        return Effect.void
      })
    })

  // The gauges' readings, refreshed with the count every pollInterval (and by `stats`).
  let gauges = { ready: 0, delayed: 0, inFlight: 0, deadLettered: 0 }

  const countNow = Effect.suspend(() => {
    const record = beginCount()
    return Effect.map(q.counts(new Date(now())), (row) => {
      gauges = { ready: row.ready, delayed: row.delayed, inFlight: row.in_flight, deadLettered: row.dead_lettered }
      record(row.ready + row.delayed + row.in_flight)
      return gauges
    })
  })

  yield* registerQueueMetrics(name, {
    ready: () => gauges.ready,
    pending: () => open,
    delayed: () => gauges.delayed,
    inFlight: () => gauges.inFlight,
    deadLettered: () => gauges.deadLettered,
    published: () => totals.published,
    delivered: () => totals.delivered,
    redelivered: () => totals.redelivered,
    acked: () => totals.acked,
    deadLetteredTotal: () => totals.deadLettered
  })

  // --- publishing -----------------------------------------------------------------------

  const handle = (reservation: Reservation): PgReservation => {
    if (reservation instanceof PgReservation && reservation.owner === owner) return reservation
    throw new TypeError(`PgMessageQueue: reservation for ${reservation.messageId} was not issued by this queue`)
  }

  const reserve = (message: Message): Effect.Effect<Reservation, QueueFull> =>
    Effect.as(admit(message.messageId), new PgReservation(owner, message.messageId))

  // The row was written by the caller's own transaction, now committed.
  const commit = (reservation: Reservation): Effect.Effect<void> =>
    Effect.sync(() => {
      const held = handle(reservation)
      if (held.settled) return
      held.settled = true
      open--
      totals.published++
      madeReady(1)
    })

  const abort = (reservation: Reservation): Effect.Effect<void> =>
    Effect.sync(() => {
      const held = handle(reservation)
      if (held.settled) return
      held.settled = true
      open-- // still in the estimate until the next count: conservative
      totals.aborted++
    })

  const withReservation = <A, E, R>(
    message: Message,
    use: (reservation: Reservation) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | QueueFull, R> =>
    Effect.acquireUseRelease(reserve(message), use, (reservation, exit) =>
      exit._tag === "Success" ? commit(reservation) : abort(reservation)
    )

  const publish = (message: Message): Effect.Effect<PublishResult, QueueFull> =>
    Effect.suspend(() => {
      if (!uuidPattern.test(message.messageId)) {
        return Effect.die(
          new TypeError(
            `PgMessageQueue: message ids are UUIDs (the outbox's key); got ${JSON.stringify(message.messageId)}`
          )
        )
      }
      const messageId = message.messageId.toLowerCase()
      const duplicate = { messageId: message.messageId, duplicate: true }
      return admit(messageId).pipe(
        // Full: a message already there is still answered as the duplicate it is.
        Effect.catchTag("QueueFull", (full) =>
          Effect.flatMap(Effect.orDie(q.exists(messageId)), (found) =>
            found ? Effect.succeed(null) : Effect.fail(full)
          )
        ),
        Effect.flatMap((admission) => {
          if (admission === null) {
            totals.duplicates++
            return Effect.succeed(duplicate)
          }
          return q.publish({ messageId, bodyText: JSON.stringify(message.body) ?? "null", written: writtenAt() }).pipe(
            Effect.onExit((exit) =>
              Effect.sync(() => {
                open--
                if (exit._tag === "Success" && exit.value) {
                  totals.published++
                  madeReady(1)
                } else if (exit._tag === "Success") {
                  totals.duplicates++
                }
              })
            ),
            Effect.orDie,
            Effect.map((added) => (added ? { messageId: message.messageId, duplicate: false } : duplicate))
          )
        })
      )
    })

  // --- receiving ------------------------------------------------------------------------

  const wakeDispatcher = (outcome: SettleOutcome) => {
    if (outcome.deliveries > 0) signal.wake()
  }

  /** Dead-letters the exhausted rows a claim met (several instances may try: the store keeps the first). */
  const deadLetterExhausted = (messageIds: ReadonlyArray<string>, at: number) =>
    Effect.forEach(
      messageIds,
      (messageId) =>
        store
          .deadLetterExhausted({
            messageId,
            maxDeliveries: settings.maxDeliveries,
            expiredError,
            nackedError,
            now: new Date(at)
          })
          .pipe(
            Effect.map((outcome) => {
              if (outcome.changed) {
                totals.expired++ // almost always: else its last nack's delay ended (maxDeliveries lowered since)
                totals.deadLettered++
              }
              wakeDispatcher(outcome)
            })
          ),
      { discard: true }
    )

  // A claim skips rows another transaction holds (SKIP LOCKED): had this instance's sweep just locked an
  // expired delivery to clear its receipt, a claim running meanwhile would miss a message that is due. So
  // they take turns: the expiries are skipped while a claim runs (it ends those it meets; the next sweep
  // the rest), and a claim waits for the expiry under way (one statement).
  let claimsRunning = 0
  let expiring: Deferred.Deferred<void> | undefined = undefined
  const expireDue = Effect.suspend(() => {
    if (claimsRunning > 0) return Effect.succeed(0)
    // One at a time, so that `expiring` is the one under way (the one running counts what it ends).
    if (expiring !== undefined) return Effect.as(Deferred.await(expiring), 0)
    const done = Deferred.makeUnsafe<void>()
    expiring = done
    return q.expireDue({ now: new Date(now()), maxDeliveries: settings.maxDeliveries }).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          expiring = undefined
          Deferred.doneUnsafe(done, Effect.void)
        })
      )
    )
  })
  const claimRows = (params: Parameters<typeof q.claim>[0]) =>
    Effect.gen(function* () {
      while (expiring !== undefined) yield* Deferred.await(expiring)
      claimsRunning++
      return yield* Effect.ensuring(
        q.claim(params),
        Effect.sync(() => {
          claimsRunning--
        })
      )
    })

  /**
   * Ends every delivery whose deadline passed, before anything that lists or counts (and every
   * pollInterval): one with deliveries left becomes ready (its receipt cleared), a last one a dead
   * letter. The in-memory queue does this at the deadline; seen from outside, so does this one. A claim
   * does it too, for the rows it meets.
   */
  const sweepExhausted: Effect.Effect<void> = Effect.gen(function* () {
    totals.expired += yield* expireDue
    while (true) {
      const at = now()
      const due = yield* q.exhaustedDue({ now: new Date(at), maxDeliveries: settings.maxDeliveries, limit: 100 })
      yield* deadLetterExhausted(due, at)
      if (due.length < 100) return
    }
  }).pipe(
    // Best effort: what it leaves, the next sweep or claim does; whatever reads after it reads the table as is.
    Effect.catch((error) => Effect.logWarning("PgMessageQueue: ending expired deliveries failed", error))
  )

  // Swept first, so that a last delivery that expired counts as the dead letter it is.
  const readCounts = Effect.andThen(sweepExhausted, countNow)

  yield* Effect.orDie(readCounts)
  yield* readCounts.pipe(
    Effect.catch((error) => Effect.logWarning("PgMessageQueue: counting the queue failed", error)),
    Effect.andThen(clock.sleep(Duration.millis(pollMs))),
    Effect.forever,
    Effect.annotateLogs({ module: "PgMessageQueue", fiber: "counts" }),
    Effect.interruptible,
    Effect.forkScoped
  )

  /** One claim (repeated while it met only rows to dead-letter); a database failure is logged: nothing. */
  const claim = (max: number, visibilityMs: number): Effect.Effect<ReadonlyArray<Delivery>> =>
    Effect.gen(function* () {
      const deliveries: Array<Delivery> = []
      for (let round = 0; round < maxClaimRounds && deliveries.length < max; round++) {
        const at = now()
        const rows = yield* claimRows({
          now: new Date(at),
          until: new Date(at + visibilityMs),
          max: max - deliveries.length,
          maxDeliveries: settings.maxDeliveries
        })
        const exhausted: Array<string> = []
        for (const row of rows) {
          if (row.exhausted || row.receipt === null) {
            exhausted.push(row.message_id)
            continue
          }
          const attempt = row.attempts!
          if (row.expired) totals.expired++
          totals.delivered++
          if (attempt > 1) totals.redelivered++
          deliveries.push({ messageId: row.message_id, receipt: row.receipt, attempt, body: jsonValue(row.body) })
        }
        if (exhausted.length === 0) break
        yield* deadLetterExhausted(exhausted, at)
      }
      return deliveries as ReadonlyArray<Delivery>
    }).pipe(
      Effect.catch((error) =>
        Effect.as(Effect.logWarning("PgMessageQueue: receive could not reach the database", error), [])
      )
    )

  /**
   * When (in the Clock's frame) the next row falls due that was not due at `at` (an expiry, a nack's
   * delay): Infinity when none, or when the database cannot say (the backstop serves).
   */
  const nextDueAfter = (at: number) =>
    q.nextDue(new Date(at)).pipe(
      Effect.map((next) => (next === undefined ? Infinity : next.getTime() - offset)),
      Effect.orElseSucceed(() => Infinity)
    )

  // Long polls in progress (`stats.waiting`): from their start, not only while asleep, since between
  // sleeps they are in a claim, which takes a round trip here.
  let longPolls = 0

  // Uninterruptible except while waiting, so rows claimed always reach the caller (a claim cut short
  // would leave them in flight until their deadline).
  const receive = (options?: ReceiveOptions): Effect.Effect<ReadonlyArray<Delivery>> =>
    Effect.uninterruptibleMask((restore) => {
      const max = Math.max(1, Math.floor(options?.max ?? 1))
      const visibilityMs = toMillis(options?.visibilityTimeout, settings.visibilityTimeoutMs)
      const deadline = clock.currentTimeMillisUnsafe() + toMillis(options?.wait, 0)
      const poll = Effect.gen(function* () {
        while (true) {
          const seen = wakes
          const claimedAt = now()
          const deliveries = yield* claim(max, visibilityMs)
          if (deliveries.length > 0 || clock.currentTimeMillisUnsafe() >= deadline || !waiting) return deliveries
          if (wakes !== seen) continue
          const nextDue = yield* nextDueAfter(claimedAt)
          if (wakes !== seen) continue
          // Asleep until a wake, the next due row, the backstop or the end of the wait; at once if one is past.
          const local = clock.currentTimeMillisUnsafe()
          const sleepMs = Math.min(deadline, local + pollMs, nextDue) - local
          if (sleepMs > 0) yield* restore(awaitWake(sleepMs))
        }
      })
      if (deadline <= clock.currentTimeMillisUnsafe()) return poll
      longPolls++
      return Effect.ensuring(
        poll,
        Effect.sync(() => {
          longPolls--
        })
      )
    })

  // --- settling -------------------------------------------------------------------------

  const receiptInvalid = (receipt: string) => Effect.fail(new ReceiptInvalid({ receipt }))

  const ack = (receipt: string, ackOptions?: AckOptions): Effect.Effect<void, ReceiptInvalid | AckNotRecorded> =>
    Effect.suspend((): Effect.Effect<void, ReceiptInvalid | AckNotRecorded> => {
      if (!uuidPattern.test(receipt)) return receiptInvalid(receipt)
      const encoded = encodeResult(ackOptions?.result)
      if (encoded._tag !== "Encoded") {
        const message =
          encoded._tag === "TooLarge"
            ? `result is ${encoded.bytes} bytes serialized`
            : `result is not JSON: ${encoded.reason}`
        return Effect.fail(new AckNotRecorded({ messageId: "", message }))
      }
      return store.settleByReceipt({ receipt, resultText: encoded.text, now: new Date(now()) }).pipe(
        // A server that answered changed nothing. A connection lost after the statement was sent leaves
        // the outcome unknown, and the receipt — cleared by a committed ack — cannot tell afterwards:
        // acking again answers 204 (it was not recorded) or 409 (it was, or the receipt went stale).
        Effect.mapError(
          (error) =>
            new AckNotRecorded({
              messageId: "",
              message: `the database did not confirm the ack (${error.message}); ack again: a 409 then means it was recorded or the receipt went stale`
            })
        ),
        Effect.flatMap((outcome) => {
          if (!outcome.changed) return receiptInvalid(receipt)
          totals.acked++
          wakeDispatcher(outcome)
          return Effect.void
        })
      )
    })

  const nack = (receipt: string, nackOptions?: NackOptions): Effect.Effect<void, ReceiptInvalid> =>
    Effect.gen(function* () {
      if (!uuidPattern.test(receipt)) return yield* receiptInvalid(receipt)
      const at = now()
      const delayMs = toMillis(nackOptions?.delay, 0)
      const lastError = nackOptions?.error ?? nackedError
      const requeued = yield* q.requeueByReceipt({
        receipt,
        now: new Date(at),
        until: new Date(at + delayMs),
        lastError,
        maxDeliveries: settings.maxDeliveries
      })
      if (requeued) {
        totals.nacked++
        if (delayMs <= 0) madeReady(1)
        else armAt(clock.currentTimeMillisUnsafe() + delayMs)
        return
      }
      // Not requeued: the last delivery (dead-lettered now), or a stale receipt.
      const outcome = yield* store.deadLetterByReceipt({
        receipt,
        maxDeliveries: settings.maxDeliveries,
        lastError,
        now: new Date(at)
      })
      if (!outcome.changed) return yield* receiptInvalid(receipt)
      totals.nacked++
      totals.deadLettered++
      wakeDispatcher(outcome)
    }).pipe(Effect.catchTag(["SqlError", "DatabaseUnavailable"], Effect.die))

  const extend = (receipt: string, visibilityTimeout: Duration.Input): Effect.Effect<void, ReceiptInvalid> =>
    Effect.suspend(() => {
      if (!uuidPattern.test(receipt)) return receiptInvalid(receipt)
      const at = now()
      const visibilityMs = toMillis(visibilityTimeout, 0)
      return q.extendByReceipt({ receipt, now: new Date(at), until: new Date(at + visibilityMs) }).pipe(
        Effect.orDie,
        Effect.flatMap((changed) => {
          if (!changed) return receiptInvalid(receipt)
          armAt(clock.currentTimeMillisUnsafe() + visibilityMs)
          return Effect.void
        })
      )
    })

  const release = (receipt: string): Effect.Effect<void, ReceiptInvalid> =>
    Effect.suspend(() => {
      if (!uuidPattern.test(receipt)) return receiptInvalid(receipt)
      return q.releaseByReceipt({ receipt, now: new Date(now()) }).pipe(
        Effect.orDie,
        Effect.flatMap((changed) => {
          if (!changed) return receiptInvalid(receipt)
          totals.released++
          madeReady(1)
          return Effect.void
        })
      )
    })

  // --- dead letters and the rest ----------------------------------------------------------

  const deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>> = Effect.map(
    Effect.orDie(Effect.andThen(sweepExhausted, q.deadLetters)),
    (rows) =>
      rows.map(
        (row): DeadLetter => ({
          messageId: row.message_id,
          attempts: row.attempts,
          lastError: row.last_error ?? nackedError,
          body: jsonValue(row.body),
          deadLetteredAt: row.dead_lettered_at.getTime() - offset
        })
      )
  ).pipe(Effect.withSpan("PgMessageQueue.deadLetters"))

  // Ids that are not UUIDs name no row (and must not reach a uuid comparison).
  const rowIds = (messageIds: ReadonlyArray<string> | undefined) =>
    messageIds === undefined ? undefined : messageIds.filter((id) => uuidPattern.test(id))

  const redrive = Effect.fn("PgMessageQueue.redrive")(function* (redriveOptions?: {
    readonly messageIds?: ReadonlyArray<string> | undefined
  }) {
    // As many as fit, by a fresh count.
    yield* Effect.orDie(sweepExhausted)
    const room = settings.capacity - (yield* Effect.orDie(q.capacityCount)) - open
    if (room <= 0) return 0
    const redriven = yield* Effect.orDie(
      q.redrive({ messageIds: rowIds(redriveOptions?.messageIds), limit: room, now: new Date(now()) })
    )
    totals.redriven += redriven
    admitted += redriven // they take room until the next count sees them
    if (redriven > 0) madeReady(redriven)
    return redriven
  })

  const purge = Effect.fn("PgMessageQueue.purge")(function* (purgeOptions?: {
    readonly messageIds?: ReadonlyArray<string> | undefined
  }) {
    yield* Effect.orDie(sweepExhausted)
    const purged = yield* Effect.orDie(q.purge({ messageIds: rowIds(purgeOptions?.messageIds), now: new Date(now()) }))
    totals.purged += purged
    return purged
  })

  const stats: Effect.Effect<QueueStats> = Effect.map(Effect.orDie(readCounts), (counts) => {
    const size = counts.ready + counts.delayed + counts.inFlight + open
    return {
      pending: open,
      ...counts,
      capacity: settings.capacity,
      size,
      available: Math.max(0, settings.capacity - size),
      waiting: longPolls,
      maxDeliveries: settings.maxDeliveries,
      visibilityTimeoutMs: settings.visibilityTimeoutMs,
      totals: { ...totals }
    }
  })

  const stopWaiting = Effect.sync(() => {
    waiting = false
    wake(waiters.size)
  })

  // Room is made by consumers anywhere: looked for by counting, every pollInterval.
  const awaitRoom: Effect.Effect<void> = Effect.gen(function* () {
    while (true) {
      yield* recount
      if (estimate() < settings.capacity) return
      yield* clock.sleep(Duration.millis(pollMs))
    }
  })

  const service: MessageQueueService = {
    settings,
    reserve,
    commit,
    abort,
    withReservation,
    publish,
    receive,
    ack,
    nack,
    extend,
    release,
    deadLetters,
    redrive,
    purge,
    stats,
    // The row's `attempts` is current (each claim adds one): readers take it from the row.
    attemptsOf: () => undefined,
    // The table is the queue: a dead letter in it is listed already.
    restoreDeadLetter: () => Effect.succeed(false),
    // Every dead-lettering and redrive is one statement, done when it returns.
    awaitPersisted: Effect.void,
    stopWaiting,
    awaitRoom
  }
  return service
})

/** The queue on the runtime's database, with explicit settings (invalid settings are a defect). */
export const layerWith = (
  options: PgMessageQueueOptions
): Layer.Layer<MessageQueue, never, PgClient.PgClient | FormulaStore | DeliverySignal> =>
  Layer.effect(MessageQueue, make(options))
