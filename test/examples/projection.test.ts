/**
 * examples/projection.ts run as its header says (`npx node examples/projection.ts --submit N`, the embedded
 * database in memory): it projects every formula it submitted, once each, and stops on SIGTERM.
 * test/process/transactionalCrash.test.ts kills it mid-commit on PostgreSQL.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

describe("examples/projection.ts", () => {
  it("projects each submitted formula once, with its class, and stops on SIGTERM", { timeout: 60_000 }, async () => {
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env["DATABASE_URL"]
    const child = spawn(process.execPath, ["examples/projection.ts", "--submit", "6"], {
      cwd: projectRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    const projected = () => [...output.matchAll(/projected ([0-9a-f-]{36}): (Parfum|Eau de [A-Za-z]+|Eau Fraîche) \(/g)]
    try {
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          output += chunk
          if (projected().length >= 6) resolve()
        }
        child.stdout!.on("data", onData)
        child.stderr!.on("data", onData)
        child.once("exit", () => reject(new Error(`exited early: ${output}`)))
      })
      const ids = projected().map((match) => match[1])
      assert.strictEqual(new Set(ids).size, 6, output)
      child.kill("SIGTERM")
      const exit = await exited
      // NodeRuntime.runMain: the program interrupted (its scope closed, the consumer stopped), exit 130.
      assert.deepStrictEqual(exit, { code: 130, signal: null }, output)
      assert.strictEqual(projected().length, 6, `nothing projected twice: ${output}`)
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    }
  })
})
