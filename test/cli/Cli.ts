/**
 * `formulas` as a person runs it: a real process (bin/formulas.js on the
 * pinned Node), or inside a tmux pane, a real pseudo-terminal whose screen a
 * test reads back (capture-pane) and types into (send-keys).
 */
import { Effect } from "effect"
import { execFile, execFileSync, spawn } from "node:child_process"
import { promisify } from "node:util"
import { fileURLToPath } from "node:url"

export const projectRoot = fileURLToPath(new URL("../..", import.meta.url))
export const bin = fileURLToPath(new URL("../../bin/formulas.js", import.meta.url))

export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `formulas …args` to its end; `input` is piped to stdin (else stdin is empty, not a terminal). */
export const formulas = (args: ReadonlyArray<string>, options: { readonly input?: string } = {}) =>
  Effect.callback<Ran>((resume) => {
    const env = { ...process.env }
    delete env["FORMULAS_URL"]
    const child = spawn(process.execPath, [bin, ...args], { cwd: projectRoot, env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.once("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    child.stdin.end(options.input ?? "")
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

const tmux = (...args: Array<string>) => execFileSync("tmux", args, { encoding: "utf8" })
// Reading the screen must not block: the server under test runs in this process's event loop.
const tmuxAsync = promisify(execFile)

let sessions = 0

/** A tmux session 120×30 running `formulas …args` (then a shell-free wait so the last screen stays readable). */
export const terminal = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const name = `formulas-test-${process.pid}-${sessions++}`
      const quoted = [process.execPath, bin, ...args].map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ")
      tmux(
        "new-session",
        "-d",
        "-s",
        name,
        "-x",
        "120",
        "-y",
        "30",
        "-c",
        projectRoot,
        `${quoted}; echo "EXIT=$?"; sleep 600`
      )
      return {
        name,
        screen: () =>
          Effect.promise(() => tmuxAsync("tmux", ["capture-pane", "-t", name, "-p"])).pipe(
            Effect.map((out) => out.stdout)
          ),
        keys: (...keys: Array<string>) => void tmux("send-keys", "-t", name, ...keys)
      }
    }),
    (session) => Effect.sync(() => void tmux("kill-session", "-t", session.name))
  )

/** Waits (polling the screen, up to `timeoutMs`) until `predicate` holds for the pane's text; fails with the screen. */
export const waitForScreen = (
  session: { readonly screen: () => Effect.Effect<string> },
  predicate: (screen: string) => boolean,
  timeoutMs = 30_000
) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const screen = yield* session.screen()
      if (predicate(screen)) return screen
      if (Date.now() > deadline) return yield* Effect.die(new Error(`screen never matched:\n${screen}`))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
    }
  })
