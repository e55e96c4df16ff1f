/**
 * Several real servers (`node src/main.ts`, QUEUE_BACKEND=postgres) on one
 * PostgreSQL database: the queue is the outbox table, shared by all of them.
 * PostgreSQL only (PGlite is one process's database); skipped without
 * TEST_DATABASE_URL.
 *
 * 1. Three instances, submissions round-robin over them, one external consumer
 *    per instance (HTTP long poll `/queue/receive`, then `/queue/ack`), every
 *    receipt and ack recorded with the consumer's clock. Mid-load, one
 *    consumer receives a batch and holds it (no ack) and its instance is
 *    SIGKILLed. Then:
 *      - every formula answered 201 had its message delivered and acked;
 *      - each message has exactly one successful ack (over all consumers);
 *      - no message had two owners at once: per message, the receipts'
 *        ownership intervals (receive → ack, or → visibility expiry when not
 *        acked) do not overlap. Intervals are taken from inside the true ones
 *        (from the receive's answer to the ack's request, or to the receive's
 *        request + the visibility timeout), so an overlap seen is a real one;
 *      - the held messages came back to another consumer, and not before
 *        their visibility timeout;
 *      - the table agrees: every outbox row settled, its attempts = the
 *        receipts the consumers saw for it.
 * 2. A submission through instance A wakes a long poll waiting on instance B
 *    within a bound far below QUEUE_POLL_INTERVAL_MS (10 s here): only
 *    LISTEN/NOTIFY can explain it. Three rounds, each must be fast (the
 *    backstop, firing at an arbitrary phase, would explain one fast round
 *    with probability ~ bound / 10 s, not three).
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Fiber, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { postgresUrl } from "../support/Databases.ts"
import { freePort, hasExited, outputOf, ownDatabase, type Running, spawnServer } from "./ServerProcess.ts"

const visibilityMs = 2_000

interface Instance {
  readonly name: string
  readonly base: string
  readonly running: Running
}

/** One server on `databaseUrl` with the postgres queue backend, once /health answers 200. */
const startInstance = (name: string, databaseUrl: string, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const port = yield* freePort
    const running = yield* spawnServer({
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_FORMAT: "json",
      ACCESS_LOG: "false",
      QUEUE_BACKEND: "postgres",
      QUEUE_CAPACITY: "100000",
      QUEUE_VISIBILITY_TIMEOUT_MS: String(visibilityMs),
      ...env
    })
    for (let i = 0; ; i++) {
      assert.isFalse(hasExited(running), `${name} exited during start-up; ${outputOf(running)}`)
      assert.isBelow(i, 600, `${name}: /health never answered 200; ${outputOf(running)}`)
      const status = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) }).then(
          (response) => response.arrayBuffer().then(() => response.status),
          () => 0
        )
      )
      if (status === 200) return { name, base: `http://127.0.0.1:${port}`, running } satisfies Instance
      yield* Effect.sleep(Duration.millis(100))
    }
  })

interface Answer {
  readonly status: number
  readonly json: any
}

/** One HTTP exchange with a JSON body; `undefined` when no complete answer came back. */
const call = async (base: string, method: string, path: string, body?: unknown): Promise<Answer | undefined> => {
  try {
    const response = await fetch(base + path, {
      method,
      signal: AbortSignal.timeout(40_000),
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, json: text === "" ? undefined : JSON.parse(text) }
  } catch {
    return undefined
  }
}

const makeUp = (tag: string) => ({
  name: `Instances ${tag}`,
  materials: [
    { name: `Bergamot ${tag}`, concentration: 12.5 },
    { name: `Vetiver ${tag}`, concentration: "3.25" }
  ]
})

// ---------------------------------------------------------------------------------------------------------------
// What the clients saw

interface Submission {
  readonly instance: string
  readonly status: number | undefined
  readonly formulaId?: string
  readonly messageId?: string
}

interface Receipt {
  readonly consumer: string
  readonly messageId: string
  readonly formulaId: string
  readonly receipt: string
  readonly attempt: number
  /** performance.now() when the receive was sent and when its answer arrived. */
  readonly sentAt: number
  readonly answeredAt: number
}

interface Ack {
  readonly consumer: string
  readonly messageId: string
  readonly receipt: string
  readonly sentAt: number
  readonly answeredAt: number
  readonly status: number | undefined
}

interface Journal {
  readonly submissions: Array<Submission>
  readonly receipts: Array<Receipt>
  readonly acks: Array<Ack>
}

/** `clients` concurrent submitters, each sending to the next live instance in turn, until `stop.stopped`. */
const submitters = (
  instances: () => ReadonlyArray<Instance>,
  clients: number,
  journal: Journal,
  stop: { stopped: boolean }
) =>
  Effect.promise(() => {
    let next = 0
    return Promise.all(
      Array.from({ length: clients }, async () => {
        while (!stop.stopped) {
          const live = instances()
          const instance = live[next++ % live.length]!
          const answer = await call(instance.base, "POST", "/formulas", makeUp(randomBytes(6).toString("hex")))
          journal.submissions.push({
            instance: instance.name,
            status: answer?.status,
            ...(answer?.status === 201 ? { formulaId: answer.json.id, messageId: answer.json.message.id } : {})
          })
        }
      })
    )
  })

/** One receive on `instance`, recorded; fails the test on anything but 200. */
const receive = async (instance: Instance, journal: Journal, request: { max: number; waitMs: number }) => {
  const sentAt = performance.now()
  const answer = await call(instance.base, "POST", "/queue/receive", request)
  const answeredAt = performance.now()
  if (answer?.status !== 200) throw new Error(`receive on ${instance.name} answered ${JSON.stringify(answer)}`)
  const got: Array<Receipt> = answer.json.messages.map((message: any) => ({
    consumer: instance.name,
    messageId: message.messageId,
    formulaId: message.body.formulaId,
    receipt: message.receipt,
    attempt: message.attempt,
    sentAt,
    answeredAt
  }))
  journal.receipts.push(...got)
  return got
}

const ack = async (instance: Instance, journal: Journal, receipt: Receipt) => {
  const sentAt = performance.now()
  const answer = await call(instance.base, "POST", "/queue/ack", { receipt: receipt.receipt })
  journal.acks.push({
    consumer: instance.name,
    messageId: receipt.messageId,
    receipt: receipt.receipt,
    sentAt,
    answeredAt: performance.now(),
    status: answer?.status
  })
  if (answer === undefined) throw new Error(`ack on ${instance.name} got no answer`)
  if (answer.status !== 204 && answer.status !== 409) throw new Error(`ack on ${instance.name}: ${answer.status}`)
}

/**
 * The external consumer of one instance: long polls, acks everything it gets,
 * until `control.stopped`; when `control.hold` is set it receives one
 * non-empty batch, keeps it (no ack), hands it over and stops.
 */
const consumer = (
  instance: Instance,
  journal: Journal,
  control: { stopped: boolean; hold?: (held: ReadonlyArray<Receipt>) => void }
) =>
  Effect.promise(async () => {
    while (!control.stopped) {
      if (control.hold !== undefined) {
        const held = await receive(instance, journal, { max: 10, waitMs: 5_000 })
        if (held.length > 0) return control.hold(held)
        continue
      }
      const batch = await receive(instance, journal, { max: 10, waitMs: 1_000 })
      for (const receipt of batch) await ack(instance, journal, receipt)
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// The checks

/** Per message, the receipts' ownership intervals (from inside the true ones) must not overlap. */
const assertOneOwnerAtATime = (journal: Journal) => {
  const ackOf = new Map(journal.acks.filter((a) => a.status === 204).map((a) => [a.receipt, a]))
  const byMessage = new Map<string, Array<Receipt>>()
  for (const receipt of journal.receipts) {
    const list = byMessage.get(receipt.messageId) ?? []
    list.push(receipt)
    byMessage.set(receipt.messageId, list)
  }
  for (const [messageId, receipts] of byMessage) {
    const intervals = receipts
      .map((r) => ({
        r,
        start: r.answeredAt,
        // Acked: owned at least until the ack was sent. Not acked: at least until the visibility timeout, counted
        // from the receive's request (the claim came after it).
        end: ackOf.get(r.receipt)?.sentAt ?? r.sentAt + visibilityMs
      }))
      .sort((a, b) => a.start - b.start)
    for (let i = 1; i < intervals.length; i++) {
      const previous = intervals[i - 1]!
      const current = intervals[i]!
      assert.isAtLeast(
        current.start,
        previous.end,
        `message ${messageId}: ${current.r.consumer} received it (attempt ${current.r.attempt}) at ` +
          `${current.start.toFixed(0)} ms while ${previous.r.consumer} owned it (attempt ${previous.r.attempt}) ` +
          `until at least ${previous.end.toFixed(0)} ms`
      )
    }
  }
  return byMessage
}

const count = <A>(items: ReadonlyArray<A>, predicate: (a: A) => boolean) => items.filter(predicate).length

// ---------------------------------------------------------------------------------------------------------------

describe.skipIf(postgresUrl === undefined)("several instances on one PostgreSQL (QUEUE_BACKEND=postgres)", () => {
  it.live(
    "three instances under load, one SIGKILLed while its consumer holds messages: every formula delivered and acked once, never two owners at once, the held messages redelivered after their visibility timeout",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* ownDatabase(postgresUrl!, "instances")
        // The first one creates the tables; the other two start together against a migrated database.
        const first = yield* startInstance("A", databaseUrl)
        const [second, third] = yield* Effect.all([startInstance("B", databaseUrl), startInstance("C", databaseUrl)], {
          concurrency: 2
        })
        const instances: Array<Instance> = [first, second, third]
        const victim = third
        const journal: Journal = { submissions: [], receipts: [], acks: [] }

        const stopLoad = { stopped: false }
        const load = yield* submitters(() => instances, 6, journal, stopLoad).pipe(Effect.forkChild)
        const controls = new Map(
          instances.map((i) => [
            i.name,
            { stopped: false } as { stopped: boolean; hold?: (held: ReadonlyArray<Receipt>) => void }
          ])
        )
        const consumers = yield* Effect.forEach(instances, (instance) =>
          consumer(instance, journal, controls.get(instance.name)!).pipe(Effect.forkChild)
        )

        // Load until every instance has created formulas and every consumer acked some; then the victim's
        // consumer takes a batch and keeps it, and its instance is killed.
        for (let i = 0; ; i++) {
          const ready = ["A", "B", "C"].every(
            (name) =>
              count(journal.submissions, (s) => s.instance === name && s.status === 201) >= 30 &&
              count(journal.acks, (a) => a.consumer === name && a.status === 204) >= 10
          )
          if (ready) break
          assert.isBelow(i, 600, `the load did not reach every instance within 60 s; ${outputOf(first.running)}`)
          yield* Effect.sleep(Duration.millis(100))
        }
        const held = yield* Effect.callback<ReadonlyArray<Receipt>>((resume) => {
          controls.get(victim.name)!.hold = (batch) => resume(Effect.succeed(batch))
        })
        yield* Fiber.join(consumers[2]!)
        const killedAt = performance.now()
        victim.running.child.kill("SIGKILL")
        yield* Effect.promise(() => victim.running.exited)
        instances.splice(instances.indexOf(victim), 1)

        // The load goes on over the survivors, then stops; the consumers drain.
        yield* Effect.sleep(Duration.seconds(3))
        stopLoad.stopped = true
        yield* Fiber.join(load)

        const database = PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 1 })
        const outboxRows = PgClient.PgClient.use(
          (sql) => sql<{ readonly messageId: string; readonly attempts: number; readonly settled: boolean }>`
            SELECT message_id::text AS "messageId", attempts, delivered_at IS NOT NULL AS settled FROM outbox`
        ).pipe(Effect.provide(database))
        const created = journal.submissions.filter((s) => s.status === 201)
        const deadline = performance.now() + 60_000
        let rows: ReadonlyArray<{ readonly messageId: string; readonly attempts: number; readonly settled: boolean }>
        while (true) {
          rows = yield* outboxRows
          const acked = new Set(journal.acks.filter((a) => a.status === 204).map((a) => a.messageId))
          if (rows.every((row) => row.settled) && created.every((s) => acked.has(s.messageId!))) break
          assert.isBelow(
            performance.now(),
            deadline,
            `not drained within 60 s: ${count(rows, (r) => !r.settled)} of ${rows.length} rows unsettled; ` +
              `${outputOf(first.running)}`
          )
          yield* Effect.sleep(Duration.millis(200))
        }
        for (const instance of instances) controls.get(instance.name)!.stopped = true
        yield* Fiber.joinAll(consumers.slice(0, 2))
        const per = (name: string) =>
          `${name}: ${count(created, (s) => s.instance === name)} created, ` +
          `${count(journal.receipts, (r) => r.consumer === name)} received, ` +
          `${count(journal.acks, (a) => a.consumer === name && a.status === 204)} acked`
        console.info(
          `instances: ${per("A")}; ${per("B")}; ${per("C")}; ` +
            `${count(journal.submissions, (s) => s.status === undefined)} unanswered at the kill, ${rows.length} rows, ` +
            `${count(journal.acks, (a) => a.status === 409)} stale acks, ${held.length} held at the kill ` +
            `(${(killedAt - (held[0]?.answeredAt ?? killedAt)).toFixed(0)} ms before it)`
        )

        // The load was spread: every instance created formulas, every consumer received some.
        for (const name of ["A", "B", "C"]) {
          assert.isAbove(
            count(created, (s) => s.instance === name),
            10,
            `instance ${name} answered 201s`
          )
          assert.isAbove(
            count(journal.receipts, (r) => r.consumer === name),
            0,
            `consumer ${name} received messages`
          )
        }
        const unexpected = journal.submissions.filter(
          (s) => s.status !== 201 && !(s.status === undefined && s.instance === victim.name)
        )
        assert.deepStrictEqual(unexpected, [], "every submission to a live instance answered 201")
        assert.isAbove(held.length, 0, "the victim's consumer held messages at the kill")

        // Never two owners at once; the table counts every delivery the consumers saw, and no other.
        const byMessage = assertOneOwnerAtATime(journal)
        for (const row of rows) {
          assert.strictEqual(row.attempts, byMessage.get(row.messageId)?.length ?? 0, `attempts of ${row.messageId}`)
        }

        // Every created formula's message delivered and acked exactly once; so is every row in the table (a
        // submission the kill left unanswered may have committed: its message must be delivered too).
        const successfulAcks = new Map<string, number>()
        for (const a of journal.acks) {
          if (a.status === 204) successfulAcks.set(a.messageId, (successfulAcks.get(a.messageId) ?? 0) + 1)
        }
        for (const s of created)
          assert.strictEqual(successfulAcks.get(s.messageId!), 1, `message ${s.messageId} acked once`)
        for (const row of rows) {
          assert.strictEqual(successfulAcks.get(row.messageId), 1, `outbox row ${row.messageId} acked once`)
        }
        assert.strictEqual(successfulAcks.size, rows.length, "no ack for a message the table does not hold")

        // The held messages came back, to another consumer, after their visibility timeout (the database's
        // clock and ours are the same machine's; 50 ms for the queue's measured offset).
        for (const h of held) {
          const later = byMessage.get(h.messageId)!.filter((r) => r.receipt !== h.receipt)
          assert.isAbove(later.length, 0, `held message ${h.messageId} redelivered`)
          const next = later.reduce((a, b) => (a.answeredAt < b.answeredAt ? a : b))
          assert.notStrictEqual(next.consumer, victim.name)
          assert.isAtLeast(
            next.answeredAt,
            h.sentAt + visibilityMs - 50,
            `held ${h.messageId} not back before its timeout`
          )
          assert.strictEqual(next.attempt, h.attempt + 1)
        }

        const redeliveredLate = held.map((h) => {
          const next = byMessage.get(h.messageId)!.find((r) => r.receipt !== h.receipt)!
          return next.answeredAt - (h.sentAt + visibilityMs)
        })
        console.info(
          `instances: the held messages came back ${Math.min(...redeliveredLate).toFixed(0)}–` +
            `${Math.max(...redeliveredLate).toFixed(0)} ms after their visibility timeout`
        )
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "a submission through one instance wakes a long poll waiting on another, far sooner than the polling backstop",
    () =>
      Effect.gen(function* () {
        const databaseUrl = yield* ownDatabase(postgresUrl!, "instances_wake")
        const backstop = { QUEUE_POLL_INTERVAL_MS: "10000" }
        const a = yield* startInstance("A", databaseUrl, backstop)
        const b = yield* startInstance("B", databaseUrl, backstop)
        const journal: Journal = { submissions: [], receipts: [], acks: [] }
        const boundMs = 1_000
        const latencies: Array<number> = []
        for (let round = 0; round < 3; round++) {
          const poll = yield* Effect.promise(() => receive(b, journal, { max: 1, waitMs: 20_000 })).pipe(
            Effect.forkChild
          )
          // The poll has found nothing and waits (it counts in B's stats), and some backstop-free time has passed.
          for (let i = 0; ; i++) {
            const stats = yield* Effect.promise(() => call(b.base, "GET", "/queue/stats"))
            if (stats?.status === 200 && stats.json.waiting >= 1) break
            assert.isBelow(i, 100, `B's long poll never showed as waiting: ${JSON.stringify(stats)}`)
            yield* Effect.sleep(Duration.millis(50))
          }
          yield* Effect.sleep(Duration.millis(200))
          const answer = yield* Effect.promise(() =>
            call(a.base, "POST", "/formulas", makeUp(randomBytes(6).toString("hex")))
          )
          const answeredAt = performance.now()
          assert.strictEqual(answer?.status, 201)
          const [delivery] = yield* Fiber.join(poll)
          assert.isDefined(delivery, "B's long poll returned the message")
          assert.strictEqual(delivery!.messageId, answer!.json.message.id)
          latencies.push(delivery!.answeredAt - answeredAt)
          yield* Effect.promise(() => ack(b, journal, delivery!))
        }
        console.info(`cross-instance wake: ${latencies.map((l) => l.toFixed(1)).join(", ")} ms after the 201`)
        for (const latency of latencies) {
          assert.isBelow(latency, boundMs, `woken ${latency.toFixed(0)} ms after the 201 (backstop 10 s)`)
        }
      }).pipe(Effect.scoped),
    90_000
  )
})
