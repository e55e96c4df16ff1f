/**
 * Where the CPU went during a measurement, from /proc (Linux): the whole
 * machine, the server under test, PostgreSQL's processes working for the
 * benchmark's database, and the load generator (wrk or pgbench). Whatever is
 * left is someone else's — another program on the machine, or PostgreSQL
 * backends serving another database — and makes the figures of that run
 * suspect.
 *
 * Every figure is in cores (1.0 = one core busy for the whole interval).
 * Take the closing snapshot while the load generator still runs (a process
 * that has exited is gone from /proc, and so is its CPU time).
 */
import { readdirSync, readFileSync } from "node:fs"
import * as os from "node:os"

const available = process.platform === "linux"
let ownDatabase: string | undefined

/** PostgreSQL backends serving this database count as the benchmark's; others as someone else's. */
export const setOwnDatabase = (name: string | undefined) => {
  ownDatabase = name
}

/** Busy, interrupt and total ticks of the whole machine. */
const machineTicks = () => {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
  // Time the hypervisor gave to someone else is nobody's work here.
  const notBusy = fields[3]! + fields[4]! + fields[7]!
  return { busy: total - notBusy, interrupts: fields[5]! + fields[6]!, total }
}

/** utime+stime of a process, in ticks; undefined once it is gone. */
const processTicks = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number)
    // fields[0] is field 3 (state): utime is field 14, stime field 15
    return fields[11]! + fields[12]!
  } catch {
    return undefined
  }
}

// A backend's title: "postgres: 15/main: <user> <database> <client address> <state>"; the
// postmaster and auxiliary processes (checkpointer, walwriter, …) serve every database.
const backendTitle = /^postgres: (?:[^:]+: )?\S+ (\S+) (?:[\d.:a-f]+\(\d+\)|\[local\])/

/**
 * Per-process ticks of PostgreSQL processes working for the benchmark (the
 * shared ones and the backends of its database), and of kernel threads
 * (no command line: block-device and journal flushes, network softirq
 * threads, …).
 */
const scanProcesses = () => {
  const postgres = new Map<number, number>()
  const kernel = new Map<number, number>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    let into: Map<number, number>
    try {
      const title = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ").trim()
      if (title === "") {
        into = kernel
      } else {
        if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "postgres") continue
        const backend = backendTitle.exec(title)
        if (backend !== null && backend[1] !== ownDatabase) continue
        into = postgres
      }
    } catch {
      continue
    }
    const t = processTicks(Number(entry))
    if (t !== undefined) into.set(Number(entry), t)
  }
  return { postgres, kernel }
}

export interface CpuSnapshot {
  readonly machine: { readonly busy: number; readonly interrupts: number; readonly total: number }
  readonly server: number
  readonly loadGenerator: number
  readonly postgres: Map<number, number>
  readonly kernel: Map<number, number>
}

export interface CpuUse {
  /** All cores' busy time. */
  readonly busy: number
  /** The server under test (the service, or the bare node:http server). */
  readonly server: number
  /** PostgreSQL's shared processes and the backends of the benchmark's database. */
  readonly postgres: number
  /** wrk or pgbench. */
  readonly loadGenerator: number
  /** Interrupt and softirq time (loopback networking) and kernel threads (disk flushes). */
  readonly kernel: number
  /** The rest: other programs on the machine, PostgreSQL backends of other databases. */
  readonly other: number
}

/** `server` may be several processes (instances of the service): their CPU is summed. */
export const snapshot = (pids: {
  readonly server?: number | ReadonlyArray<number> | undefined
  readonly loadGenerator?: number | undefined
}): CpuSnapshot | undefined => {
  if (!available) return undefined
  const servers = pids.server === undefined ? [] : typeof pids.server === "number" ? [pids.server] : pids.server
  return {
    machine: machineTicks(),
    server: servers.reduce((sum, pid) => sum + (processTicks(pid) ?? 0), 0),
    loadGenerator: pids.loadGenerator === undefined ? 0 : (processTicks(pids.loadGenerator) ?? 0),
    ...scanProcesses()
  }
}

export const cpuUse = (before: CpuSnapshot | undefined, after: CpuSnapshot | undefined): CpuUse | undefined => {
  if (before === undefined || after === undefined) return undefined
  const cores = os.cpus().length
  const elapsed = (after.machine.total - before.machine.total) / cores
  if (elapsed <= 0) return undefined
  const inCores = (ticks: number) => ticks / elapsed
  // A process born inside the interval (pgbench's backends) counts from zero.
  const grown = (a: Map<number, number>, b: Map<number, number>) => {
    let sum = 0
    for (const [pid, ticks] of b) sum += ticks - (a.get(pid) ?? 0)
    return sum
  }
  const postgres = grown(before.postgres, after.postgres)
  const kernel = grown(before.kernel, after.kernel) + after.machine.interrupts - before.machine.interrupts
  const busy = after.machine.busy - before.machine.busy
  const server = after.server - before.server
  const loadGenerator = after.loadGenerator - before.loadGenerator
  return {
    busy: inCores(busy),
    server: inCores(server),
    postgres: inCores(postgres),
    loadGenerator: inCores(loadGenerator),
    kernel: inCores(kernel),
    other: Math.max(0, inCores(busy - server - postgres - loadGenerator - kernel))
  }
}

/**
 * Measures a load generator run: a snapshot as it starts and another
 * `closeAfterMs` later, while it still runs.
 */
export const measureCpu = async <A>(
  serverPid: number | ReadonlyArray<number> | undefined,
  closeAfterMs: number,
  run: (onSpawn: (pid: number) => void) => Promise<A>
): Promise<{ readonly result: A; readonly cpu: CpuUse | undefined }> => {
  let before: CpuSnapshot | undefined
  let after: CpuSnapshot | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  const onSpawn = (pid: number) => {
    before = snapshot({ server: serverPid, loadGenerator: pid })
    timer = setTimeout(() => {
      after = snapshot({ server: serverPid, loadGenerator: pid })
    }, closeAfterMs)
  }
  try {
    const result = await run(onSpawn)
    return { result, cpu: cpuUse(before, after) }
  } finally {
    clearTimeout(timer)
  }
}

/** How busy the machine is over `ms` while this benchmark drives nothing: someone else's load, in cores. */
export const backgroundLoad = async (ms: number): Promise<number | undefined> => {
  const before = snapshot({})
  await new Promise((resolve) => setTimeout(resolve, ms))
  const after = snapshot({})
  return cpuUse(before, after)?.busy
}
