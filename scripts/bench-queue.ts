/**
 * MessageQueue benchmark: throughput against Effect's own Queue in the same run,
 * redelivery lateness on the real clock, and memory per queued message; then
 * the PostgreSQL backend against pgbench running its own statements
 * (scripts/bench/pg-queue.ts).
 *
 *   node --expose-gc scripts/bench-queue.ts [--quick] [--only=memory | --only=postgres]
 *                                           [--levels=1,4,16] [--duration=5] [--warmup=1] [--rounds=3]
 *
 * Prints Markdown sections and writes them into BENCHMARKS.md between the
 * `<!-- bench:queue -->` and `<!-- bench:queue-postgres -->` markers (other
 * sections are left alone). The PostgreSQL part needs pgbench, psql and a
 * server reachable as BENCH_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres, allowed to CREATE DATABASE);
 * without them it is skipped with a note.
 */
import { Effect, Queue } from "effect"
import { execSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { mkdtempSync } from "node:fs"
import { join } from "node:path"
import { MessageQueue, type MessageQueueService } from "../src/queue/MessageQueue.ts"
import { pgQueueBench, renderPgQueueSection } from "./bench/pg-queue.ts"
import { psql } from "./bench/postgres.ts"
import { cleanup, installSignalHandlers, onCleanup, removeDir } from "./bench/processes.ts"

const argv = process.argv.slice(2)
for (const arg of argv) {
  if (!/^--(quick|only=(memory|postgres)|levels=[\d,]+|duration=\d+|warmup=\d+|rounds=\d+)$/.test(arg)) {
    console.error(
      `unknown argument ${arg}\nusage: node --expose-gc scripts/bench-queue.ts [--quick] [--only=memory|--only=postgres] [--levels=1,4,16] [--duration=S] [--warmup=S] [--rounds=N]`
    )
    process.exit(2)
  }
}
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const quick = argv.includes("--quick")
const only = option("only")
const gc = (globalThis as { gc?: () => void }).gc

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const fmt2 = (n: number) => n.toFixed(2)

const withQueue = <A>(capacity: number, f: (queue: MessageQueueService) => Effect.Effect<A>) =>
  Effect.runPromise(Effect.provide(MessageQueue.use(f), MessageQueue.layerWith({ capacity, name: "bench" })))

/** Messages per second of `run(n)`, median of `reps` runs after one warm-up. */
const measure = async (n: number, reps: number, run: (n: number) => Promise<void>) => {
  await run(Math.min(n, 50_000))
  const rates: Array<number> = []
  for (let i = 0; i < reps; i++) {
    gc?.()
    const start = performance.now()
    await run(n)
    rates.push(n / ((performance.now() - start) / 1000))
  }
  return median(rates)
}

const body = { type: "FormulaSubmitted" }

// --- throughput -----------------------------------------------------------------

/** One message at a time: publish, receive(max 1), ack — vs offer, take. */
const oneAtATime = {
  queue: (n: number) =>
    withQueue(1_000, (queue) =>
      Effect.gen(function* () {
        for (let i = 0; i < n; i++) {
          yield* queue.publish({ messageId: `m${i}`, body })
          const deliveries = yield* queue.receive()
          yield* queue.ack(deliveries[0].receipt)
        }
      }).pipe(Effect.orDie)
    ),
  raw: (n: number) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const queue = yield* Queue.bounded<{ messageId: string; body: unknown }>(1_000)
        for (let i = 0; i < n; i++) {
          yield* Queue.offer(queue, { messageId: `m${i}`, body })
          yield* Queue.take(queue)
        }
      })
    )
}

/**
 * Batches of 100: publish ×100, receive(max 100), ack ×100 — vs offer ×100 and
 * either take ×100 or one takeBetween(1, 100).
 */
const batched = {
  rawTake: (n: number) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const queue = yield* Queue.bounded<{ messageId: string; body: unknown }>(1_000)
        for (let i = 0; i < n; i += 100) {
          for (let j = i; j < i + 100; j++) yield* Queue.offer(queue, { messageId: `m${j}`, body })
          for (let j = i; j < i + 100; j++) yield* Queue.take(queue)
        }
      })
    ),
  queue: (n: number) =>
    withQueue(1_000, (queue) =>
      Effect.gen(function* () {
        for (let i = 0; i < n; i += 100) {
          for (let j = i; j < i + 100; j++) yield* queue.publish({ messageId: `m${j}`, body })
          const deliveries = yield* queue.receive({ max: 100 })
          for (const delivery of deliveries) yield* queue.ack(delivery.receipt)
        }
      }).pipe(Effect.orDie)
    ),
  raw: (n: number) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const queue = yield* Queue.bounded<{ messageId: string; body: unknown }>(1_000)
        for (let i = 0; i < n; i += 100) {
          for (let j = i; j < i + 100; j++) yield* Queue.offer(queue, { messageId: `m${j}`, body })
          yield* Queue.takeBetween(queue, 1, 100)
        }
      })
    )
}

/**
 * A producer fiber and a consumer fiber running concurrently, the consumer
 * long-polling. Both queues are big enough never to be full: a full MessageQueue
 * refuses at once (back-pressure for the caller) where a full Effect Queue
 * suspends the offer, which is not the same operation.
 */
const concurrent = {
  queue: (n: number) =>
    withQueue(n, (queue) =>
      Effect.gen(function* () {
        const producer = Effect.gen(function* () {
          for (let i = 0; i < n; i++) yield* queue.publish({ messageId: `m${i}`, body })
        }).pipe(Effect.orDie)
        const consumer = Effect.gen(function* () {
          let received = 0
          while (received < n) {
            const deliveries = yield* queue.receive({ max: 100, wait: 1_000 })
            for (const delivery of deliveries) yield* queue.ack(delivery.receipt)
            received += deliveries.length
          }
        })
        yield* Effect.all([producer, consumer.pipe(Effect.orDie)], { concurrency: 2, discard: true })
      })
    ),
  raw: (n: number) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const queue = yield* Queue.bounded<{ messageId: string; body: unknown }>(n)
        const producer = Effect.gen(function* () {
          for (let i = 0; i < n; i++) yield* Queue.offer(queue, { messageId: `m${i}`, body })
        })
        const consumer = Effect.gen(function* () {
          let received = 0
          while (received < n) received += (yield* Queue.takeBetween(queue, 1, 100)).length
        })
        yield* Effect.all([producer, consumer], { concurrency: 2, discard: true })
      })
    )
}

// --- redelivery lateness --------------------------------------------------------

/**
 * `count` messages are received with visibility timeouts spread over 20–219 ms and
 * never acked; a long-polling receiver records when each one is delivered again.
 * Lateness = redelivery time − (first delivery time + visibility timeout).
 */
const lateness = (count: number, background: number) =>
  withQueue(count + background + 10, (queue) =>
    Effect.gen(function* () {
      // Messages in flight with a far deadline: the timer heap holds them all.
      for (let i = 0; i < background; i++) yield* queue.publish({ messageId: `bg${i}`, body })
      yield* queue.receive({ max: background, visibilityTimeout: 3_600_000 })
      // The set-up's garbage would otherwise be collected during the measurement.
      gc?.()

      const due = new Map<string, number>()
      for (let i = 0; i < count; i++) yield* queue.publish({ messageId: `m${i}`, body })
      for (let i = 0; i < count; i++) {
        const timeout = 20 + (i % 200)
        const [delivery] = yield* queue.receive({ visibilityTimeout: timeout })
        due.set(delivery.messageId, Date.now() + timeout)
      }
      const late: Array<number> = []
      while (late.length < count) {
        const deliveries = yield* queue.receive({ max: 100, wait: 1_000, visibilityTimeout: 3_600_000 })
        const now = Date.now()
        for (const delivery of deliveries) late.push(now - due.get(delivery.messageId)!)
      }
      return late.sort((a, b) => a - b)
    }).pipe(Effect.orDie)
  )

// --- memory -----------------------------------------------------------------------

const heapUsed = () => {
  gc!()
  gc!()
  return process.memoryUsage().heapUsed
}

/** Heap bytes per message added by `fill`, measured after the previous run's garbage is gone. */
const heapPerMessage = (n: number, fill: (ids: ReadonlyArray<string>) => Effect.Effect<void>) =>
  Effect.gen(function* () {
    const ids = Array.from({ length: n }, (_, i) => `message-${i.toString().padStart(8, "0")}`)
    yield* Effect.sleep(50)
    const base = heapUsed()
    yield* fill(ids)
    return (heapUsed() - base) / n
  })

/** Heap bytes per message for `n` messages ready, then in flight; bodies shared or one per message. */
const memory = async (n: number) => {
  const readyShared = await withQueue(n + 1, (queue) =>
    heapPerMessage(n, (ids) =>
      Effect.forEach(ids, (messageId) => queue.publish({ messageId, body }), { discard: true }).pipe(Effect.orDie)
    )
  )
  const inFlightShared = await withQueue(n + 1, (queue) =>
    heapPerMessage(n, (ids) =>
      Effect.forEach(ids, (messageId) => queue.publish({ messageId, body }), { discard: true }).pipe(
        Effect.andThen(queue.receive({ max: n })),
        Effect.asVoid,
        Effect.orDie
      )
    )
  )
  const readyOwnBody = await withQueue(n + 1, (queue) =>
    heapPerMessage(n, (ids) =>
      Effect.forEach(
        ids,
        (messageId) =>
          queue.publish({
            messageId,
            body: {
              type: "FormulaSubmitted",
              formulaId: messageId,
              fingerprint: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              name: "Summer Breeze",
              submittedAt: "2026-11-22T06:00:00.000Z"
            }
          }),
        { discard: true }
      ).pipe(Effect.orDie)
    )
  )
  const rawShared = await Effect.runPromise(
    Effect.flatMap(Queue.bounded<{ messageId: string; body: unknown }>(n + 1), (queue) =>
      heapPerMessage(n, (ids) =>
        Effect.forEach(ids, (messageId) => Queue.offer(queue, { messageId, body }), { discard: true })
      )
    )
  )
  return { readyShared, inFlightShared, readyOwnBody, rawShared }
}

// --- main -------------------------------------------------------------------------

const memoryMain = async () => {
  const n = quick ? 100_000 : 500_000
  const reps = quick ? 3 : 5
  const rows: Array<[string, number, number]> = []
  const scenarios = [
    ["one at a time: publish → receive(1) → ack, vs offer → take", oneAtATime.queue, oneAtATime.raw],
    [
      "batches of 100: publish ×100 → receive(100) → ack ×100, vs offer ×100 → take ×100",
      batched.queue,
      batched.rawTake
    ],
    ["same batches, vs offer ×100 → one takeBetween(1, 100)", batched.queue, batched.raw],
    [
      "producer fiber ∥ long-polling consumer fiber (receive(100) + acks), vs offer ∥ takeBetween(1, 100)",
      concurrent.queue,
      concurrent.raw
    ]
  ] as const
  const measured = new Map<(n: number) => Promise<void>, number>()
  const rate = async (run: (n: number) => Promise<void>) => {
    const known = measured.get(run)
    if (known !== undefined) return known
    const value = await measure(n, reps, run)
    measured.set(run, value)
    return value
  }
  for (const [name, queueRun, rawRun] of scenarios) {
    const raw = await rate(rawRun)
    const ours = await rate(queueRun)
    rows.push([name, ours, raw])
    console.error(`${name}: ${fmt(ours)} vs ${fmt(raw)} msgs/s`)
  }

  const lateCount = quick ? 2_000 : 5_000
  const late = await lateness(lateCount, 0)
  const lateLoaded = await lateness(lateCount, quick ? 20_000 : 100_000)
  console.error(`lateness p50 ${late[Math.floor(late.length / 2)]} ms, p99 ${percentile(late, 99)} ms`)

  const memoryN = quick ? 50_000 : 200_000
  const mem = gc === undefined ? undefined : await memory(memoryN)

  const cpus = os.cpus()
  let date: string
  try {
    date = execSync("date", { encoding: "utf8" }).trim()
  } catch {
    date = new Date().toString()
  }
  const ratios = rows.map(([, ours, raw]) => ours / raw)
  const p99 = percentile(lateLoaded, 99)
  const lines = [
    "## Message queue",
    "",
    `- Date: ${date}`,
    `- Machine: ${cpus.length} × ${cpus[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`,
    `- Command: \`node --expose-gc scripts/bench-queue.ts${quick ? " --quick" : ""}\` (via \`npx node\`)`,
    "",
    `### Throughput (${fmt(n)} messages per run, median of ${reps} runs)`,
    "",
    "Reference: Effect's own bounded `Queue` (`Queue.offer` / `Queue.take`), measured in the same run.",
    "",
    "| scenario | MessageQueue msgs/s | Effect Queue msgs/s | ratio |",
    "| --- | ---: | ---: | ---: |",
    ...rows.map(([name, ours, raw]) => `| ${name} | ${fmt(ours)} | ${fmt(raw)} | ${fmt2(ours / raw)}× |`),
    "",
    `Target ≥ 0.5× the raw Queue: ${ratios.every((r) => r >= 0.5) ? "met in every scenario" : `met in ${ratios.filter((r) => r >= 0.5).length} of ${ratios.length} scenarios`} (ratios ${ratios.map(fmt2).join(", ")}).`,
    "",
    "### Redelivery lateness (real clock)",
    "",
    `${fmt(lateCount)} messages received with visibility timeouts of 20–219 ms, never acked; a long-polling`,
    "receiver records each redelivery. Lateness = redelivered at − (received at + timeout), in ms",
    "(Date.now() resolution). The tail is garbage collection: an old-generation collection of the",
    "in-flight set pauses the thread for a few ms (see `node --trace-gc`).",
    "",
    "| in flight besides them | p50 | p90 | p99 | max |",
    "| ---: | ---: | ---: | ---: | ---: |",
    ...(
      [
        [0, late],
        [quick ? 20_000 : 100_000, lateLoaded]
      ] as const
    ).map(
      ([background, sorted]) =>
        `| ${fmt(background)} | ${percentile(sorted, 50)} | ${percentile(sorted, 90)} | ${percentile(sorted, 99)} | ${sorted[sorted.length - 1]} |`
    ),
    "",
    `Target p99 ≤ 10 ms: ${Math.max(p99, percentile(late, 99)) <= 10 ? "met" : "NOT met"}.`,
    "",
    "### Memory per queued message",
    "",
    ...(mem === undefined
      ? ["Not measured: run node with `--expose-gc`."]
      : [
          `Heap delta after GC divided by ${fmt(memoryN)} messages (ids of 16 characters, allocated before the baseline).`,
          "",
          "| state | bytes / message |",
          "| --- | ---: |",
          `| MessageQueue, ready, body shared (queue bookkeeping only) | ${fmt(mem.readyShared)} |`,
          `| MessageQueue, in flight (adds receipt, timer), body shared | ${fmt(mem.inFlightShared)} |`,
          `| MessageQueue, ready, own FormulaSubmitted body per message | ${fmt(mem.readyOwnBody)} |`,
          `| Effect Queue, \`{ messageId, body }\` element, body shared | ${fmt(mem.rawShared)} |`
        ])
  ]
  const section = lines.join("\n")
  console.log(section)
  writeSection("queue", section)
}

/** Writes `section` between its `<!-- bench:NAME -->` markers in BENCHMARKS.md (appended if they are not there). */
const writeSection = (name: string, section: string) => {
  const path = new URL("../BENCHMARKS.md", import.meta.url)
  const start = `<!-- bench:${name} -->`
  const end = `<!-- /bench:${name} -->`
  const block = `${start}\n${section}\n${end}`
  let text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmarks\n"
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  if (from !== -1 && to > from) text = text.slice(0, from) + block + text.slice(to + end.length)
  else text = text.trimEnd() + "\n\n" + block + "\n"
  writeFileSync(path, text)
}

// --- the PostgreSQL backend ---------------------------------------------------------

const postgresMain = async () => {
  const adminUrl = process.env["BENCH_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
  const levels = (option("levels") ?? "1,4,16").split(",").map(Number)
  const durationS = Number(option("duration") ?? (quick ? 2 : 5))
  const warmupS = Number(option("warmup") ?? 1)
  const rounds = Number(option("rounds") ?? (quick ? 1 : 3))
  let pgVersion: string
  try {
    pgVersion = await psql(adminUrl, "SELECT current_setting('server_version')")
    execSync("pgbench --version", { stdio: "ignore" })
  } catch (error) {
    console.error(
      `PostgreSQL backend not measured: no PostgreSQL/pgbench/psql at hand (${String(error).split("\n")[0]})`
    )
    return
  }
  installSignalHandlers()
  const tmp = mkdtempSync(join(os.tmpdir(), "formula-bench-queue-"))
  onCleanup(`temporary directory ${tmp}`, () => removeDir(tmp))
  console.error(`PostgreSQL backend: concurrency ${levels.join(", ")}, ${durationS} s per run, ${rounds} rounds`)
  const began = performance.now()
  try {
    const result = await pgQueueBench({ adminUrl, levels, durationS, warmupS, rounds, tmp, log: console.error })
    const cpus = os.cpus()
    const section = [
      "## Message queue on PostgreSQL",
      "",
      `- Date: ${new Date().toUTCString()}`,
      `- Machine: ${cpus.length} × ${cpus[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}, PostgreSQL ${pgVersion}, ${execSync("pgbench --version", { encoding: "utf8" }).trim()}`,
      `- Command: \`npm run bench:queue${argv.length === 0 ? "" : ` -- ${argv.join(" ")}`}\` (${Math.round((performance.now() - began) / 1000)} s for this part)`,
      "",
      ...renderPgQueueSection(result, { levels, durationS, warmupS, rounds })
    ].join("\n")
    console.log(section)
    writeSection("queue-postgres", section)
  } finally {
    await cleanup()
  }
}

if (only !== "postgres") await memoryMain()
if (only !== "memory") await postgresMain()
