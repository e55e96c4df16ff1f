/**
 * The webhook dispatcher's benchmark (`npm run bench -- --only=webhooks`).
 *
 * A receiver that answers 204 at once runs as a child process
 * (webhook-receiver.ts). In this process, on a fresh PostgreSQL database:
 *
 *   throughput  N deliveries (8 endpoints on that receiver, ~300-byte
 *               formula.created bodies) are committed at once and the
 *               dispatcher is woken; deliveries/s = N / time until the last
 *               one is settled (attempt recorded, delivery succeeded). The
 *               reference, in the same run: a bare `fetch` loop posting the
 *               same bodies to the same receiver at the same concurrency
 *               (WEBHOOK_CONCURRENCY = 32). Rounds alternate the order; medians.
 *   latency     deliveries committed one at a time at a steady rate well below
 *               capacity, each followed by DeliverySignal.wake() (what an
 *               in-process event writer does); due → sent = arrival at the
 *               receiver − next_attempt_at. p50 and p99.
 *
 *   submissions wrk's unique load on a service process with and without a
 *               client whose endpoint is on the same receiver
 *               (webhook-submissions.ts).
 *
 * Ratios only: the machine is shared and noisy.
 */
import { PgClient, PgTypes } from "@effect/sql-pg"
import { Duration, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { join } from "node:path"
import * as Database from "../../src/store/Database.ts"
import { DeliverySignal } from "../../src/webhooks/DeliverySignal.ts"
import { WebhookDispatcher } from "../../src/webhooks/Dispatcher.ts"
import { createDatabase } from "./postgres.ts"
import { freePort, sleep, spawnLogged, stopChild } from "./processes.ts"
import { repoRoot } from "./servers.ts"
import { renderSubmissionLines, submissionBench, type SubmissionBenchResult } from "./webhook-submissions.ts"

export interface WebhookBenchOptions {
  readonly adminUrl: string
  readonly runId: string
  readonly tmp: string
  readonly quick: boolean
  readonly log: (line: string) => void
}

export interface WebhookBenchResult {
  readonly concurrency: number
  readonly endpoints: number
  readonly deliveries: number
  readonly rounds: ReadonlyArray<{ readonly dispatcher: number; readonly fetch: number }>
  readonly dispatcherRate: number
  readonly fetchRate: number
  readonly ratio: number
  readonly latency: {
    readonly rate: number
    readonly count: number
    readonly p50Ms: number
    readonly p99Ms: number
    readonly maxMs: number
  }
  /** Submissions with one endpoint registered vs without (webhook-submissions.ts). */
  readonly submissions: SubmissionBenchResult
}

const concurrency = 32
const endpointCount = 8

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

const bodyOf = (i: number, at: Date) =>
  JSON.stringify({
    type: "formula.created",
    timestamp: at.toISOString(),
    data: {
      id: randomUUID(),
      name: `Summer Breeze ${i}`,
      materials: [
        { name: "Bergamot Oil", concentration: "15.5" },
        { name: "Lavender Absolute", concentration: "10" },
        { name: "Sandalwood", concentration: "5.2" }
      ],
      createdAt: at.toISOString()
    }
  })

const arrayOf = (oid: number) => (values: ReadonlyArray<unknown>) => {
  const parameter = PgTypes.array(values, oid)
  if (parameter._tag === "Failure") throw parameter.failure
  return parameter.success
}
const texts = arrayOf(PgTypes.OID.text)
const uuids = arrayOf(PgTypes.OID.uuid)

export const webhookBench = async (options: WebhookBenchOptions): Promise<WebhookBenchResult> => {
  const { log } = options
  const deliveries = options.quick ? 2_000 : 10_000
  const roundCount = options.quick ? 3 : 5
  const latencySeconds = options.quick ? 3 : 10
  const latencyRate = 100

  const port = await freePort()
  const receiver = spawnLogged(process.execPath, [join(repoRoot, "scripts/bench/webhook-receiver.ts"), String(port)], {
    logFile: join(options.tmp, "webhook-receiver.log")
  })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (
      await fetch(`${base}/arrivals`).then(
        (r) => r.ok,
        () => false
      )
    )
      break
    if (i > 100) throw new Error("the webhook receiver did not start")
    await sleep(50)
  }

  const url = await createDatabase(options.adminUrl, `bench_webhooks_${options.runId.replace(/\W/g, "_")}`)
  let settled = 0
  let waiter: { readonly count: number; readonly resolve: () => void } | undefined
  const runtime = ManagedRuntime.make(
    WebhookDispatcher.layerWith({
      schedule: [0, 5_000],
      concurrency,
      disableAfter: Duration.hours(120),
      allowPrivateNetworks: true,
      onAttempt: () =>
        Effect.sync(() => {
          settled++
          if (waiter !== undefined && settled >= waiter.count) waiter.resolve()
        })
    }).pipe(
      Layer.provideMerge(DeliverySignal.layer),
      Layer.provideMerge(Database.migrated(Database.layerPostgres(Redacted.make(url), { maxConnections: 10 })))
    )
  )
  const sql = <A>(f: (sql: PgClient.PgClient) => Effect.Effect<A, unknown>) =>
    runtime.runPromise(PgClient.PgClient.use(f))
  const wake = () => runtime.runSync(DeliverySignal.use((signal) => Effect.sync(() => signal.wake())))
  const settledUpTo = (count: number) =>
    new Promise<void>((resolve) => {
      if (settled >= count) return resolve()
      waiter = { count, resolve }
    })

  try {
    const endpointIds = Array.from({ length: endpointCount }, () => randomUUID())
    const now = new Date()
    await sql(
      (sql) => sql`
        INSERT INTO webhook_endpoints (id, client_id, url, events, secret, created_at, updated_at)
        SELECT id, 'bench', ${base} || '/hooks/' || ord, ARRAY['formula.created'],
               'whsec_' || encode(sha256(id::text::bytea), 'base64'), ${now}, ${now}
          FROM unnest(${uuids(endpointIds)}) WITH ORDINALITY AS e (id, ord)`
    )

    /** Commits `bodies` as events with one delivery each (endpoints round-robin), due at `at`. */
    const insert = (bodies: ReadonlyArray<string>, at: Date) => {
      const eventIds = bodies.map(() => `evt_${randomUUID().replaceAll("-", "")}`)
      return sql((sql) =>
        sql.withTransaction(
          Effect.andThen(
            sql`INSERT INTO webhook_events (id, client_id, type, body, created_at)
                SELECT id, 'bench', 'formula.created', body, ${at}
                  FROM unnest(${texts(eventIds)}, ${texts(bodies)}) AS t (id, body)`,
            sql`INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at, updated_at)
                SELECT gen_random_uuid(), id, endpoint_id, ${at}, ${at}, ${at}
                  FROM unnest(${texts(eventIds)}, ${uuids(eventIds.map((_, i) => endpointIds[i % endpointCount]!))})
                    AS t (id, endpoint_id)`
          )
        )
      ).then(() => eventIds)
    }

    const dispatcherRound = async () => {
      const at = new Date()
      const bodies = Array.from({ length: deliveries }, (_, i) => bodyOf(i, at))
      const target = settled + deliveries
      await insert(bodies, at)
      const start = performance.now()
      wake()
      await settledUpTo(target)
      const rate = deliveries / ((performance.now() - start) / 1000)
      await fetch(`${base}/arrivals`).then((r) => r.arrayBuffer())
      return rate
    }

    const fetchRound = async () => {
      const at = new Date()
      const bodies = Array.from({ length: deliveries }, (_, i) => bodyOf(i, at))
      let next = 0
      const start = performance.now()
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < bodies.length) {
            const i = next++
            const response = await fetch(`${base}/hooks/${(i % endpointCount) + 1}`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: bodies[i]!
            })
            await response.arrayBuffer()
            if (response.status !== 204) throw new Error(`the receiver answered ${response.status}`)
          }
        })
      )
      return deliveries / ((performance.now() - start) / 1000)
    }

    log(
      `Webhooks: ${deliveries} deliveries per round to a local 204 receiver, concurrency ${concurrency}, ${endpointCount} endpoints`
    )
    // Warm-up: connections, JIT, the dispatcher's statements prepared.
    await fetchRound()
    await dispatcherRound()
    const rounds: Array<{ dispatcher: number; fetch: number }> = []
    for (let round = 1; round <= roundCount; round++) {
      let dispatcher: number
      let bare: number
      if (round % 2 === 1) {
        dispatcher = await dispatcherRound()
        bare = await fetchRound()
      } else {
        bare = await fetchRound()
        dispatcher = await dispatcherRound()
      }
      rounds.push({ dispatcher, fetch: bare })
      log(
        `  round ${round}: dispatcher ${Math.round(dispatcher)}/s, bare fetch ${Math.round(bare)}/s, ratio ${(dispatcher / bare).toFixed(2)}×`
      )
    }

    // Latency: one delivery at a time, each committed then woken, at a steady rate.
    const dueAt = new Map<string, number>()
    const count = latencySeconds * latencyRate
    const target = settled + count
    const start = performance.now()
    for (let i = 0; i < count; i++) {
      const wait = start + (i * 1000) / latencyRate - performance.now()
      if (wait > 0) await sleep(wait)
      const at = new Date()
      const [id] = await insert([bodyOf(i, at)], at)
      dueAt.set(id!, at.getTime())
      wake()
    }
    await settledUpTo(target)
    const arrivals = (await fetch(`${base}/arrivals`).then((r) => r.json())) as Record<string, number>
    const delays = [...dueAt].map(([id, due]) => arrivals[id]! - due).filter((d) => Number.isFinite(d))
    const latency = {
      rate: latencyRate,
      count: delays.length,
      p50Ms: percentile(delays, 50),
      p99Ms: percentile(delays, 99),
      maxMs: Math.max(...delays)
    }
    log(
      `  due → sent at ${latencyRate}/s: p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms, max ${latency.maxMs} ms (${delays.length} deliveries)`
    )

    const submissions = await submissionBench({ ...options, receiver: base })

    const dispatcherRate = median(rounds.map((r) => r.dispatcher))
    const fetchRate = median(rounds.map((r) => r.fetch))
    return {
      concurrency,
      endpoints: endpointCount,
      deliveries,
      rounds,
      dispatcherRate,
      fetchRate,
      ratio: median(rounds.map((r) => r.dispatcher / r.fetch)),
      latency,
      submissions
    }
  } finally {
    await runtime.dispose()
    await stopChild(receiver.child, 2_000)
  }
}

/** The `<!-- bench:webhooks -->` section of BENCHMARKS.md. */
export const renderWebhookSection = (
  m: {
    readonly date: string
    readonly revision: string
    readonly cores: number
    readonly cpu: string
    readonly node: string
  },
  r: WebhookBenchResult,
  args: string
): string =>
  [
    "<!-- bench:webhooks -->",
    "## Webhook dispatcher (deliveries to a local receiver answering 204)",
    "",
    `- Date: ${m.date}`,
    `- Service: ${m.revision}`,
    `- Machine: ${m.cores} × ${m.cpu}, Node ${m.node}; shared and noisy: read the ratios, not the rates.`,
    `- Command: \`node scripts/bench.ts ${args}\``,
    `- Load: ${r.deliveries} deliveries per round over ${r.endpoints} endpoints, WEBHOOK_CONCURRENCY ${r.concurrency} (4 per endpoint), committed at once then woken; PostgreSQL; the receiver in a process of its own.`,
    "",
    "| round | dispatcher deliveries/s | bare `fetch` loop posts/s | ratio |",
    "| --- | ---: | ---: | ---: |",
    ...r.rounds.map(
      (round, i) =>
        `| ${i + 1} | ${Math.round(round.dispatcher).toLocaleString("en-US")} | ${Math.round(round.fetch).toLocaleString("en-US")} | ${(round.dispatcher / round.fetch).toFixed(2)}× |`
    ),
    `| median | ${Math.round(r.dispatcherRate).toLocaleString("en-US")} | ${Math.round(r.fetchRate).toLocaleString("en-US")} | **${r.ratio.toFixed(2)}×** (target ≥ 0.5×) |`,
    "",
    `- Due → sent (arrival at the receiver − next_attempt_at), ${r.latency.count} deliveries committed one by one at ${r.latency.rate}/s, each followed by \`DeliverySignal.wake()\`: p50 ${r.latency.p50Ms} ms, p99 **${r.latency.p99Ms} ms**, max ${r.latency.maxMs} ms.`,
    "- A dispatcher delivery is more than a POST: claim (FOR UPDATE SKIP LOCKED + lease), sign (HMAC-SHA256), send, and its share of a batched settlement (one transaction per batch of up to 100: lock the endpoint rows that change, then one statement recording the attempts, settling the deliveries and merging each endpoint's health).",
    "- A claim reads every due row (the planner, its statistics saying few rows are pending, scans the due index whole and sorts), so a claim costs more the larger the backlog: this load commits all of a round's deliveries at once.",
    "",
    ...renderSubmissionLines(r.submissions),
    "<!-- /bench:webhooks -->"
  ].join("\n")
