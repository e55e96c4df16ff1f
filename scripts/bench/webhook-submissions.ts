/**
 * What a registered webhook endpoint costs submissions (part of
 * `npm run bench -- --only=webhooks`).
 *
 * One service process (`node src/main.ts`) on a fresh PostgreSQL database,
 * WEBHOOK_ALLOW_PRIVATE_NETWORKS=true so that its dispatcher may send to the
 * local receiver. Client `hooked` has one endpoint (POST /webhooks) on the
 * receiver, subscribed to formula.created; client `plain` has none. wrk's
 * unique load (every request a new make-up, scripts/bench/formulas.lua) runs
 * three ways, in rotating order per round:
 *
 *   none      no X-Client-Id: the statement submissions always ran
 *   plain     X-Client-Id of a client without endpoints (an index lookup more)
 *   hooked    X-Client-Id of the client with the endpoint: each formula's
 *             statement also writes its event and delivery rows, and the same
 *             process's dispatcher claims, signs, sends and settles them
 *             while the load runs
 *
 * Deliveries still pending when a `hooked` round ends are drained (waited
 * for) before the next round, so that no round pays for another's. Medians of
 * the rounds; ratios to `none`.
 */
import { join } from "node:path"
import { createDatabase, psql, redact } from "./postgres.ts"
import { sleep } from "./processes.ts"
import { startService } from "./servers.ts"
import { luaScript, runWrk, type WrkResult } from "./wrk.ts"

export type SubmissionMode = "none" | "plain" | "hooked"
const modes: ReadonlyArray<SubmissionMode> = ["none", "plain", "hooked"]
const clientOf: Record<SubmissionMode, string | undefined> = { none: undefined, plain: "plain", hooked: "hooked" }

export interface SubmissionRound {
  readonly mode: SubmissionMode
  readonly round: number
  /** 201s per second. */
  readonly rate: number
  readonly p99Ms: number
  /** Responses other than 201, and socket errors. */
  readonly unexpected: number
  /** hooked only: deliveries pending when the load stopped, and the ms it took to drain them. */
  readonly pendingAtEnd?: number
  readonly drainMs?: number
}

export interface SubmissionBenchResult {
  readonly concurrency: number
  readonly durationS: number
  readonly rounds: ReadonlyArray<SubmissionRound>
  readonly median: Record<SubmissionMode, number>
  /** Medians of the per-round ratios to `none`. */
  readonly ratio: { readonly plain: number; readonly hooked: number }
  /** After the last round: events written, deliveries by status. */
  readonly events: number
  readonly deliveries: Readonly<Record<string, number>>
  readonly wrkCommand: string
  readonly serviceCommand: string
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const unexpectedOf = (result: WrkResult) =>
  Object.entries(result.statuses).reduce((sum, [status, n]) => sum + (status === "201" ? 0 : n), 0) +
  result.socketErrors

export const submissionBench = async (options: {
  readonly adminUrl: string
  readonly runId: string
  readonly tmp: string
  readonly quick: boolean
  readonly log: (line: string) => void
  /** The 204 receiver's base URL. */
  readonly receiver: string
}): Promise<SubmissionBenchResult> => {
  const { log } = options
  const concurrency = 16
  const durationS = options.quick ? 3 : 8
  const roundCount = options.quick ? 3 : 5
  const url = await createDatabase(options.adminUrl, `bench_webhook_submissions_${options.runId.replace(/\W/g, "_")}`)
  const server = await startService({
    database: { url },
    logFile: join(options.tmp, "service-webhook-submissions.log"),
    shownUrl: redact(url),
    env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true" }
  })
  try {
    const registered = await fetch(`${server.baseUrl}/webhooks`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-client-id": "hooked" },
      body: JSON.stringify({ url: `${options.receiver}/hooks/submissions`, events: ["formula.created"] })
    })
    if (registered.status !== 201)
      throw new Error(`POST /webhooks answered ${registered.status}: ${await registered.text()}`)
    await registered.arrayBuffer()

    const pending = async () =>
      Number(await psql(url, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))
    const forget = () => fetch(`${options.receiver}/arrivals`).then((r) => r.arrayBuffer())
    const load = (mode: SubmissionMode, tag: string, seconds: number) => {
      const client = clientOf[mode]
      return runWrk({
        baseUrl: server.baseUrl,
        connections: concurrency,
        durationS: seconds,
        load: client === undefined ? { mode: "unique", tag } : { mode: "unique", tag, client }
      })
    }
    const drain = async () => {
      const start = performance.now()
      let left = await pending()
      const atEnd = left
      while (left > 0) {
        if (performance.now() - start > 120_000) throw new Error(`${left} deliveries still pending after 120 s`)
        await sleep(100)
        left = await pending()
      }
      await forget()
      return { pendingAtEnd: atEnd, drainMs: performance.now() - start }
    }

    log(
      `Submissions with a webhook endpoint: wrk unique make-ups, concurrency ${concurrency}, ${durationS} s × ${roundCount} rounds per mode (none, plain, hooked)`
    )
    // Warm-up: JIT, connections, the statements of each mode prepared.
    for (const mode of modes) {
      await load(mode, `${options.runId}-warm-${mode}`, 1)
      if (mode === "hooked") await drain()
    }
    const rounds: Array<SubmissionRound> = []
    let wrkCommand = ""
    for (let round = 1; round <= roundCount; round++) {
      // Rotating order, so that drift in the machine's speed falls on every mode alike.
      const order = modes.map((_, i) => modes[(i + round - 1) % modes.length]!)
      for (const mode of order) {
        const result = await load(mode, `${options.runId}-${round}-${mode}`, durationS)
        if (mode === "hooked") wrkCommand = result.command
        const rate = (result.statuses["201"] ?? 0) / result.durationS
        const drained = mode === "hooked" ? await drain() : {}
        const entry: SubmissionRound = {
          mode,
          round,
          rate,
          p99Ms: result.latencyMs.p99,
          unexpected: unexpectedOf(result),
          ...drained
        }
        rounds.push(entry)
        log(
          `  round ${round} ${mode.padEnd(6)}: ${Math.round(rate)}/s  p99 ${result.latencyMs.p99.toFixed(1)} ms` +
            (entry.unexpected > 0 ? `  UNEXPECTED ${entry.unexpected}` : "") +
            (entry.pendingAtEnd === undefined
              ? ""
              : `  (${entry.pendingAtEnd} deliveries pending at the end, drained in ${Math.round(entry.drainMs!)} ms)`)
        )
      }
    }
    const rateOf = (mode: SubmissionMode, round: number) =>
      rounds.find((r) => r.mode === mode && r.round === round)!.rate
    const roundNumbers = Array.from({ length: roundCount }, (_, i) => i + 1)
    const events = Number(await psql(url, "SELECT count(*) FROM webhook_events"))
    const deliveries = Object.fromEntries(
      (await psql(url, "SELECT status || '=' || count(*) FROM webhook_deliveries GROUP BY status"))
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => {
          const [status, n] = line.split("=")
          return [status!, Number(n)]
        })
    )
    return {
      concurrency,
      durationS,
      rounds,
      median: {
        none: median(rounds.filter((r) => r.mode === "none").map((r) => r.rate)),
        plain: median(rounds.filter((r) => r.mode === "plain").map((r) => r.rate)),
        hooked: median(rounds.filter((r) => r.mode === "hooked").map((r) => r.rate))
      },
      ratio: {
        plain: median(roundNumbers.map((n) => rateOf("plain", n) / rateOf("none", n))),
        hooked: median(roundNumbers.map((n) => rateOf("hooked", n) / rateOf("none", n)))
      },
      events,
      deliveries,
      wrkCommand: wrkCommand
        .replace(luaScript, "scripts/bench/formulas.lua")
        .replace(/http:\/\/127\.0\.0\.1:\d+/, "http://127.0.0.1:$PORT")
        .replace(/-- unique \S+/, "-- unique <tag>"),
      serviceCommand: server.command.replaceAll(options.tmp, "$TMP").replace(/PORT=\d+/, "PORT=$PORT")
    }
  } finally {
    await server.stop()
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US")

/** The submissions part of the `<!-- bench:webhooks -->` section. */
export const renderSubmissionLines = (r: SubmissionBenchResult): ReadonlyArray<string> => {
  const roundNumbers = [...new Set(r.rounds.map((x) => x.round))]
  const of = (mode: SubmissionMode, n: number) => r.rounds.find((x) => x.mode === mode && x.round === n)!
  const unexpected = r.rounds.reduce((sum, x) => sum + x.unexpected, 0)
  return [
    "### Submissions with one webhook endpoint registered",
    "",
    `- Service: \`${r.serviceCommand}\` (its dispatcher at the default WEBHOOK_CONCURRENCY, 4 per endpoint); the receiver above.`,
    `- Load: \`${r.wrkCommand}\` — wrk's unique make-ups (every request a new formula → 201), concurrency ${r.concurrency}, ${r.durationS} s per run, the modes' order rotating by round:`,
    "  **none** — no `X-Client-Id` (the statement submissions always ran); **plain** — `X-Client-Id` of a client without endpoints;",
    "  **hooked** — `X-Client-Id` of a client with one endpoint on the local 204 receiver: each submission's statement also inserts its",
    "  `formula.created` event and delivery rows, and the same process's dispatcher claims, signs, sends and settles them while the load runs.",
    "  Deliveries still pending when a hooked run ends are drained before the next run (shown below), so no run pays for another's.",
    "",
    "| round | none 201/s | plain 201/s | hooked 201/s | hooked / none | hooked: pending at the end → drained in |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...roundNumbers.map((n) => {
      const hooked = of("hooked", n)
      return `| ${n} | ${fmt(of("none", n).rate)} | ${fmt(of("plain", n).rate)} | ${fmt(hooked.rate)} | ${(hooked.rate / of("none", n).rate).toFixed(2)}× | ${hooked.pendingAtEnd} → ${fmt(hooked.drainMs ?? NaN)} ms |`
    }),
    `| median | ${fmt(r.median.none)} | ${fmt(r.median.plain)} | ${fmt(r.median.hooked)} | **${r.ratio.hooked.toFixed(2)}×** | |`,
    "",
    "- One endpoint gets at most 4 attempts at once and every freed slot costs a claim, so the drain rate above is the dispatcher's bound for a single endpoint, not the receiver's.",
    `- Ratios to none (medians of the rounds' ratios): plain **${r.ratio.plain.toFixed(2)}×**, hooked **${r.ratio.hooked.toFixed(2)}×**.`,
    `- Afterwards (warm-ups included): ${fmt(r.events)} events written; deliveries ${Object.entries(r.deliveries)
      .map(([status, n]) => `${status} ${fmt(n)}`)
      .join(
        ", "
      )}; ${unexpected === 0 ? "every response a 201" : `**${unexpected} responses other than 201 or socket errors**`}.`
  ]
}
