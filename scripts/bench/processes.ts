/**
 * Child processes for the benchmark, and the clean-up that must run whatever
 * happens: every child, database and temporary directory is registered here
 * and released by `cleanup()` — from `finally`, and from SIGINT/SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { openSync, closeSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"

type Release = () => Promise<void> | void

const releases: Array<{ readonly name: string; readonly release: Release }> = []
const children = new Set<ChildProcess>()

/** Registers something to release at clean-up; returns a function that releases it now (once). */
export const onCleanup = (name: string, release: Release): (() => Promise<void>) => {
  const entry = { name, release }
  releases.push(entry)
  return async () => {
    const index = releases.indexOf(entry)
    if (index === -1) return
    releases.splice(index, 1)
    await release()
  }
}

let cleaning: Promise<void> | undefined

/** Stops every child still running and releases everything registered, newest first. Idempotent. */
export const cleanup = (): Promise<void> => {
  cleaning ??= (async () => {
    for (const child of children) await stopChild(child, 5_000)
    while (releases.length > 0) {
      const { name, release } = releases.pop()!
      try {
        await release()
      } catch (error) {
        console.error(`clean-up of ${name} failed:`, error)
      }
    }
  })()
  return cleaning
}

/** Runs `cleanup()` and exits on SIGINT/SIGTERM/SIGHUP, and on an error nothing caught. */
export const installSignalHandlers = () => {
  const crash = (error: unknown) => {
    console.error(error)
    void cleanup().finally(() => process.exit(1))
  }
  process.once("uncaughtException", crash)
  process.once("unhandledRejection", crash)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up…`)
      void cleanup().finally(() => process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1)))
    })
  }
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. Returns how long it took. */
export const stopChild = async (child: ChildProcess, graceMs: number): Promise<number> => {
  const start = performance.now()
  if (child.exitCode !== null || child.signalCode !== null) return 0
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
  await exited
  clearTimeout(timer)
  return performance.now() - start
}

export interface Spawned {
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
}

/** Spawns a long-running child whose stdout and stderr go to `logFile`. */
export const spawnLogged = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly logFile: string; readonly cwd?: string }
): Spawned => {
  const fd = openSync(options.logFile, "a")
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ["ignore", fd, fd]
  })
  closeSync(fd)
  children.add(child)
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      children.delete(child)
      resolve(code)
    })
  )
  child.once("error", () => children.delete(child))
  return { child, exited }
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv
  readonly input?: string
  /** Called with the child's pid once it is running. */
  readonly onSpawn?: (pid: number) => void
}

export interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to completion, capturing its output; registered so a signal stops it too. */
export const run = (command: string, args: ReadonlyArray<string>, options: RunOptions = {}): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"]
    })
    children.add(child)
    if (child.pid !== undefined) options.onSpawn?.(child.pid)
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("error", (error) => {
      children.delete(child)
      reject(error)
    })
    child.once("close", (code) => {
      children.delete(child)
      resolve({ code, stdout, stderr })
    })
    if (options.input !== undefined && child.stdin !== null) {
      child.stdin.on("error", () => undefined) // a child that exits without reading its input
      child.stdin.end(options.input)
    }
  })

/** Like `run`, but fails unless the command exits 0. */
export const runOk = async (
  command: string,
  args: ReadonlyArray<string>,
  options: RunOptions = {}
): Promise<string> => {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code}:\n${result.stderr || result.stdout}`)
  }
  return result.stdout
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The last `lines` lines of a log file (for error messages). */
export const tail = (file: string, lines = 30): string => {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log)"
  }
}

export const removeDir = (dir: string) => rmSync(dir, { recursive: true, force: true })
