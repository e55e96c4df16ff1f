/**
 * An external worker that uses nothing but the service's HTTP API, as seed
 * 004's slow heuristic would: it long-polls the queue, keeps its messages
 * invisible to others while it works (extend), and acknowledges each with a
 * result, the fragrance concentration class of the formula, which the service
 * stores on the formula and pushes to the client's webhooks as
 * `formula.processed`. A failure is nacked with an exponential backoff, so the
 * message comes back later (and is dead-lettered after QUEUE_MAX_DELIVERIES).
 *
 *   npx node examples/worker.ts [--url http://localhost:8080] [--delay-ms 2000] [--exit-when-idle]
 *
 * Plain `fetch`, no Effect and no code from src/: any team's worker in any
 * language can do the same. SIGINT / SIGTERM: it stops polling, finishes the
 * message in hand, and exits.
 */
import { parseArgs } from "node:util"
import { concentrationClass, millionths, percent } from "./concentration.ts"

const { values: options } = parseArgs({
  options: {
    url: { type: "string", default: process.env["FORMULAS_URL"] ?? "http://localhost:8080" },
    "delay-ms": { type: "string", default: "0" },
    "visibility-ms": { type: "string", default: "30000" },
    "poll-wait-ms": { type: "string", default: "20000" },
    "exit-when-idle": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false }
  }
})
if (options.help) {
  console.log(`usage: npx node examples/worker.ts [--url URL] [--delay-ms N] [--visibility-ms N] [--poll-wait-ms N] [--exit-when-idle]

  --url             the service (default FORMULAS_URL or http://localhost:8080)
  --delay-ms        work this long on each message, to be slow on purpose (default 0)
  --visibility-ms   how long a received message stays invisible to others (default 30000);
                    the worker extends it while it works
  --poll-wait-ms    how long one long poll waits for a message (default 20000, the most the service allows)
  --exit-when-idle  exit when a long poll comes back empty`)
  process.exit(0)
}
const base = options.url.replace(/\/+$/, "")
const delayMs = Number(options["delay-ms"])
const visibilityMs = Number(options["visibility-ms"])
const pollWaitMs = Number(options["poll-wait-ms"])
if (
  !Number.isInteger(delayMs) ||
  delayMs < 0 ||
  !Number.isInteger(visibilityMs) ||
  visibilityMs < 1000 ||
  !Number.isInteger(pollWaitMs) ||
  pollWaitMs < 0 ||
  pollWaitMs > 20_000
) {
  console.error("--delay-ms must be a whole number ≥ 0, --visibility-ms one ≥ 1000, --poll-wait-ms one from 0 to 20000")
  process.exit(2)
}

interface Delivery {
  readonly messageId: string
  readonly receipt: string
  readonly attempt: number
  readonly body: { readonly formulaId: string; readonly name: string }
}

interface Formula {
  readonly id: string
  readonly name: string
  readonly materials: ReadonlyArray<{ readonly name: string; readonly concentration: string | number }>
}

const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
  const response = await fetch(
    `${base}${path}`,
    body === undefined
      ? { method }
      : { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
  )
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
  }
  return response
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Works on one message, extending its visibility every half timeout until the work is done. */
const processMessage = async (delivery: Delivery) => {
  const keepInvisible = setInterval(() => {
    call("POST", "/queue/extend", { receipt: delivery.receipt, visibilityTimeoutMs: visibilityMs }).catch((error) =>
      console.error(`extend ${delivery.messageId}: ${error}`)
    )
  }, visibilityMs / 2)
  try {
    const formula = (await (await call("GET", `/formulas/${delivery.body.formulaId}`)).json()) as Formula
    if (delayMs > 0) await sleep(delayMs) // the slow heuristic of seed 004, on purpose
    const total = formula.materials.reduce((sum, material) => sum + millionths(material.concentration), 0n)
    return { concentrationClass: concentrationClass(total), totalConcentration: percent(total) }
  } finally {
    clearInterval(keepInvisible)
  }
}

let stopping = false
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130)
    stopping = true
    console.log("stopping after the message in hand (again to quit at once)")
  })
}

console.log(`worker polling ${base} (delay ${delayMs} ms)`)
while (!stopping) {
  let deliveries: ReadonlyArray<Delivery>
  try {
    const response = await call("POST", "/queue/receive", {
      max: 1,
      visibilityTimeoutMs: visibilityMs,
      waitMs: pollWaitMs
    })
    deliveries = ((await response.json()) as { messages: ReadonlyArray<Delivery> }).messages
  } catch (error) {
    console.error(`receive: ${error}; retrying in 2 s`)
    await sleep(2000)
    continue
  }
  if (deliveries.length === 0 && options["exit-when-idle"]) break
  for (const delivery of deliveries) {
    try {
      const result = await processMessage(delivery)
      await call("POST", "/queue/ack", { receipt: delivery.receipt, result })
      console.log(
        `${delivery.body.formulaId} ${delivery.body.name}: ${result.concentrationClass} (${result.totalConcentration} %)`
      )
    } catch (error) {
      // Back off exponentially with the attempt number: 1 s, 2 s, 4 s … at most a minute.
      const delay = Math.min(60_000, 1000 * 2 ** (delivery.attempt - 1))
      console.error(`${delivery.messageId} attempt ${delivery.attempt} failed, retry in ${delay} ms: ${error}`)
      await call("POST", "/queue/nack", {
        receipt: delivery.receipt,
        delayMs: delay,
        error: String(error).slice(0, 4096)
      }).catch((nackError) => console.error(`nack ${delivery.messageId}: ${nackError}`))
    }
  }
}
