/**
 * `formulas import` benchmark (`npm run bench:import`).
 *
 *   node scripts/bench-import.ts [--lines=100000] [--concurrency=8] [--wrk-seconds=30] [--memory-seconds=60]
 *                                [--skip-memory]
 *
 * Starts the service (`node src/main.ts`) on a fresh PostgreSQL database
 * (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres;
 * the database `bench_import_<pid>` is created and dropped here), then in
 * the same run:
 *   0. a 5 s wrk warm-up with other make-ups (JIT, pools), not counted;
 *   1. wrk posts distinct make-ups, each with the Idempotency-Key the import
 *      would give it (SHA-256 of the line), `--concurrency` connections, for
 *      `--wrk-seconds` (the reference: the service's own limit for this load);
 *   2. `formulas import` sends `--lines` other distinct make-ups of the same
 *      shape at the same concurrency, timed from spawn to exit (start-up, the
 *      line count and the report file included).
 * The ratio import ÷ wrk (lines/s ÷ requests/s) is the client's overhead on a
 * machine the client, wrk and the service share.
 *
 * Then the peak memory: a 1 GB JSONL file in a temporary directory (deleted
 * afterwards) is imported for `--memory-seconds` and stopped with SIGINT (the
 * whole file is read by the line count meanwhile); the import's peak RSS
 * (VmHWM, via /usr/bin/time) shows whether anything grows with the file.
 *
 * Prints a Markdown section for BENCHMARKS.md.
 */
import { spawn } from "node:child_process"
import { createWriteStream, mkdtempSync, statSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { idempotencyKeyOf } from "../src/cli/ImportCommand.ts"
import { formulaBody } from "./bench/bodies.ts"
import { createDatabase, redact } from "./bench/postgres.ts"
import { cleanup, installSignalHandlers, onCleanup, removeDir } from "./bench/processes.ts"
import { startService } from "./bench/servers.ts"
import { runWrk, writeFixedRequests } from "./bench/wrk.ts"

const option = (name: string, fallback: number) => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`))
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3))
}
const lines = option("lines", 100_000)
const concurrency = option("concurrency", 8)
const wrkSeconds = option("wrk-seconds", 30)
const memorySeconds = option("memory-seconds", 60)
const skipMemory = process.argv.includes("--skip-memory")
const bin = fileURLToPath(new URL("../bin/formulas.js", import.meta.url))
const adminUrl = process.env["BENCH_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

/** Runs `formulas …args` under /usr/bin/time; resolves with wall time, peak RSS and output. */
const timedImport = (args: ReadonlyArray<string>, options: { readonly stopAfterMs?: number } = {}) =>
  new Promise<{ seconds: number; peakRssMb: number; code: number | null; stdout: string; stderr: string }>(
    (resolve) => {
      const began = performance.now()
      const child = spawn("/usr/bin/time", ["-f", "PEAK_RSS_KB %M", process.execPath, bin, ...args], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk) => (stdout += chunk))
      child.stderr.on("data", (chunk) => (stderr += chunk))
      // SIGINT to the import itself (time's child), as Ctrl-C would send it.
      const timer =
        options.stopAfterMs === undefined
          ? undefined
          : setTimeout(() => spawn("pkill", ["-INT", "-P", String(child.pid)]), options.stopAfterMs)
      child.once("close", (code) => {
        if (timer) clearTimeout(timer)
        const kb = Number(/PEAK_RSS_KB (\d+)/.exec(stderr)?.[1])
        resolve({ seconds: (performance.now() - began) / 1000, peakRssMb: kb / 1024, code, stdout, stderr })
      })
    }
  )

const main = async () => {
  installSignalHandlers()
  const dir = mkdtempSync(join(os.tmpdir(), "bench-import-"))
  onCleanup("temporary directory", () => removeDir(dir))
  const database = await createDatabase(adminUrl, `bench_import_${process.pid}`)
  const server = await startService({
    database: { url: database },
    logFile: join(dir, "server.log"),
    env: { LOG_LEVEL: "warn" }
  })
  console.error(`service at ${server.baseUrl} (started in ${Math.round(server.startMs)} ms)`)

  const body = (label: string, i: number) => formulaBody(`Import ${label} ${i}`, `Oil ${label}-${i}`)
  const wrkFile = join(dir, "wrk.txt")
  writeFixedRequests(
    wrkFile,
    Array.from({ length: lines }, (_, i) => {
      const text = body("w", i)
      return { key: idempotencyKeyOf(text), body: text }
    })
  )
  const importFile = join(dir, "import.jsonl")
  writeFileSync(importFile, Array.from({ length: lines }, (_, i) => body("i", i)).join("\n") + "\n")

  // Warm-up (JIT, connection pools, caches) with other make-ups, so the reference does not pay for it.
  await runWrk({
    baseUrl: server.baseUrl,
    connections: concurrency,
    durationS: 5,
    load: { mode: "unique", tag: "warm" }
  })
  console.error(`wrk: ${wrkSeconds} s at ${concurrency} connections…`)
  const wrk = await runWrk({
    baseUrl: server.baseUrl,
    connections: concurrency,
    durationS: wrkSeconds,
    load: { mode: "fixed", file: wrkFile, replay: false }
  })
  if (wrk.requests >= lines) console.error("warning: wrk went round the file (repeats are replays, faster)")
  console.error(`import: ${lines} lines at --concurrency ${concurrency}…`)
  const imported = await timedImport([
    "import",
    importFile,
    "--url",
    server.baseUrl,
    "--concurrency",
    String(concurrency),
    "--json"
  ])
  const summary = JSON.parse(imported.stdout)
  const importRate = lines / imported.seconds

  let memory: string | undefined
  if (!skipMemory) {
    const bigFile = join(dir, "big.jsonl")
    console.error("writing a 1 GB file…")
    await new Promise<void>((resolve) => {
      const out = createWriteStream(bigFile)
      let i = 0
      let written = 0
      const write = () => {
        while (written < 1 << 30) {
          const line = body("m", i++) + "\n"
          written += line.length
          if (!out.write(line)) return void out.once("drain", write)
        }
        out.end(resolve)
      }
      write()
    })
    const size = statSync(bigFile).size
    console.error(`import of the 1 GB file for ${memorySeconds} s, then SIGINT…`)
    const big = await timedImport(
      ["import", bigFile, "--url", server.baseUrl, "--concurrency", String(concurrency), "--json"],
      {
        stopAfterMs: memorySeconds * 1000
      }
    )
    const done = JSON.parse(big.stdout)
    const small = imported.peakRssMb
    memory =
      `| import | file | lines imported | peak RSS |\n| --- | --- | ---: | ---: |\n` +
      `| the ${lines.toLocaleString("en-US")}-line file, to the end | ${(statSync(importFile).size / 1e6).toFixed(1)} MB | ${lines.toLocaleString("en-US")} | ${small.toFixed(0)} MB |\n` +
      `| a 1 GB file (${(size / 2 ** 30).toFixed(2)} GiB, ${i_lines(size).toLocaleString("en-US")} lines, all counted for the bar), SIGINT after ${memorySeconds} s (exit ${big.code}) | 1 GB | ${(done.created + done.duplicate + done.invalid + done.failed).toLocaleString("en-US")} | ${big.peakRssMb.toFixed(0)} MB |`
  }

  await server.stop()
  const ratio = importRate / wrk.rate
  console.log(`## Command-line import (\`formulas import\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"} (${Math.round(os.totalmem() / 2 ** 30)} GiB), Node ${process.versions.node}, the service on PostgreSQL (${redact(adminUrl)}), shared by the service, PostgreSQL and the load generator (and, on this machine, other work: ratios are from the same run).
Command: \`npm run bench:import -- --lines=${lines} --concurrency=${concurrency} --wrk-seconds=${wrkSeconds}${skipMemory ? " --skip-memory" : ` --memory-seconds=${memorySeconds}`}\`

| load (distinct make-ups, each with its content's Idempotency-Key, ${concurrency} in flight) | rate | ratio |
| --- | ---: | ---: |
| wrk, ${wrkSeconds} s (reference) | ${wrk.rate.toFixed(0)} requests/s (${wrk.requests.toLocaleString("en-US")} answered, statuses ${JSON.stringify(wrk.statuses)}) | 1.00 |
| \`formulas import\` of ${lines.toLocaleString("en-US")} lines, spawn to exit: ${imported.seconds.toFixed(1)} s | ${importRate.toFixed(0)} lines/s (created ${summary.created}, failed ${summary.failed}) | **${ratio.toFixed(2)}** |
${memory === undefined ? "" : `\nPeak memory of the import process (VmHWM):\n\n${memory}\n`}`)
}

/** Lines in the 1 GB file: every line has the same shape, so size ÷ average line length. */
const i_lines = (size: number) => Math.round(size / (formulaBody("Import m 5000000", "Oil m-5000000").length + 1))

main()
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => cleanup())
