/**
 * Drives `POST /formulas` with wrk (one thread, `connections` keep-alive
 * connections, closed loop) through `formulas.lua`, and parses its summary.
 * With `spreadPorts` (several instances of the service), wrk runs one thread
 * per port, each thread's connections to its own instance (`formulas.lua`
 * reads the ports from BENCH_SPREAD_PORTS); latency percentiles cover all.
 */
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { runOk } from "./processes.ts"

export const luaScript = fileURLToPath(new URL("./formulas.lua", import.meta.url))

export type WrkLoad =
  | {
      readonly mode: "unique"
      readonly tag: string
      /** Sent as `X-Client-Id` on every request (the client's webhook events are written). */
      readonly client?: string
    }
  | { readonly mode: "fixed"; readonly file: string; readonly replay: boolean }

export interface WrkResult {
  /** Completed responses. */
  readonly requests: number
  readonly durationS: number
  /** Completed responses per second. */
  readonly rate: number
  /** Requests the script generated (includes the one wrk builds to verify the script, and those in flight at the end). */
  readonly generated: number
  /** Responses with `Idempotent-Replayed: true` (replay loads only). */
  readonly replayed: number
  readonly statuses: Readonly<Record<string, number>>
  /** connect + read + write errors and timeouts. */
  readonly socketErrors: number
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number }
  readonly command: string
}

interface WrkJson {
  requests: number
  durationUs: number
  generated: number
  replayed: number
  errors: { connect: number; read: number; write: number; timeout: number }
  statuses: Record<string, number>
  latencyUs: { p50: number; p90: number; p99: number; max: number; mean: number }
}

/** Writes the request lines `formulas.lua` reads in fixed mode: `KEY<TAB>BODY`. */
export const writeFixedRequests = (
  file: string,
  requests: ReadonlyArray<{ readonly key?: string; readonly body: string }>
) => writeFileSync(file, requests.map((r) => `${r.key ?? ""}\t${r.body}`).join("\n") + "\n")

export const wrkArgs = (options: {
  readonly baseUrl: string
  readonly connections: number
  readonly durationS: number
  readonly load: WrkLoad
  readonly spreadPorts?: ReadonlyArray<number> | undefined
}): Array<string> => [
  `-t${options.spreadPorts?.length ?? 1}`,
  `-c${options.connections}`,
  `-d${options.durationS}s`,
  "--timeout",
  "30s",
  "-s",
  luaScript,
  options.baseUrl,
  "--",
  ...(options.load.mode === "unique"
    ? ["unique", options.load.tag, ...(options.load.client === undefined ? [] : [options.load.client])]
    : ["fixed", options.load.file, ...(options.load.replay ? ["replay"] : [])])
]

export const runWrk = async (options: {
  readonly baseUrl: string
  readonly connections: number
  readonly durationS: number
  readonly load: WrkLoad
  readonly onSpawn?: (pid: number) => void
  readonly spreadPorts?: ReadonlyArray<number> | undefined
}): Promise<WrkResult> => {
  const args = wrkArgs(options)
  const spread = options.spreadPorts === undefined ? "" : options.spreadPorts.join(",")
  const stdout = await runOk("wrk", args, {
    ...(options.onSpawn === undefined ? {} : { onSpawn: options.onSpawn }),
    ...(spread === "" ? {} : { env: { ...process.env, BENCH_SPREAD_PORTS: spread } })
  })
  const line = stdout.split("\n").find((l) => l.startsWith("BENCH_JSON "))
  if (line === undefined) throw new Error(`wrk printed no BENCH_JSON line:\n${stdout}`)
  const json = JSON.parse(line.slice("BENCH_JSON ".length)) as WrkJson
  const durationS = json.durationUs / 1e6
  const ms = (us: number) => us / 1000
  return {
    requests: json.requests,
    durationS,
    rate: json.requests / durationS,
    generated: json.generated,
    replayed: json.replayed,
    statuses: json.statuses,
    socketErrors: json.errors.connect + json.errors.read + json.errors.write + json.errors.timeout,
    latencyMs: {
      p50: ms(json.latencyUs.p50),
      p90: ms(json.latencyUs.p90),
      p99: ms(json.latencyUs.p99),
      max: ms(json.latencyUs.max)
    },
    command: `${spread === "" ? "" : `BENCH_SPREAD_PORTS=${spread} `}wrk ${args.join(" ")}`
  }
}
