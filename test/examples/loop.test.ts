/**
 * The README's loop, end to end, as a user runs it: the service, the example
 * receiver (examples/receiver.ts, a real process verifying signatures with the
 * npm `standardwebhooks` package) and the example worker (examples/worker.ts,
 * a real process using nothing but HTTP). A client registers an endpoint,
 * submits a formula, the worker acks it with its concentration class, and the
 * receiver prints the signed `formula.created` and `formula.processed` events;
 * the formula shows the result. On both databases.
 *
 * Protects the loop as a whole: the client on the formula, events written with
 * the insert and the ack, the dispatcher sending them signed to the checked
 * address, and the worker's ack with a result being durable and shown.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { concentrationClass, millionths } from "../../examples/concentration.ts"
import { testDatabases } from "../support/Databases.ts"
import { summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { BaseUrl, request, testServer } from "../support/TestServer.ts"
import { freePort } from "../process/ServerProcess.ts"

const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

interface Child {
  readonly process: ChildProcess
  readonly output: () => string
  /** Resolves when the output (stdout and stderr) matches; the test's timeout bounds the wait. */
  readonly waitFor: (pattern: RegExp) => Effect.Effect<string>
  readonly exited: Promise<number | null>
}

/** `node <script> …args` from the project root, killed with the scope. */
const spawnScript = (script: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync((): Child => {
      const child = spawn(process.execPath, [script, ...args], {
        cwd: projectRoot,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const listeners = new Set<() => void>()
      const append = (chunk: Buffer) => {
        output += chunk
        for (const listener of listeners) listener()
      }
      child.stdout!.on("data", append)
      child.stderr!.on("data", append)
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      const waitFor = (pattern: RegExp) =>
        Effect.callback<string>((resume) => {
          const check = () => {
            const match = pattern.exec(output)
            if (match === null) return
            listeners.delete(check)
            resume(Effect.succeed(match[0]))
          }
          listeners.add(check)
          check()
          return Effect.sync(() => listeners.delete(check))
        })
      return { process: child, output: () => output, waitFor, exited }
    }),
    (child) =>
      child.process.exitCode !== null || child.process.signalCode !== null
        ? Effect.void
        : Effect.promise(() => {
            child.process.kill("SIGKILL")
            return child.exited
          })
  )

const clientId = "atelier-grasse"

describe("examples/concentration.ts: the worker's concentration classes", () => {
  it("by total concentration; a boundary belongs to the stronger class", () => {
    const at = (percent: number) => concentrationClass(millionths(String(percent)))
    assert.deepStrictEqual([35, 30, 20, 19.999999, 15, 14.999999, 5, 4.5, 2, 1.999999, 0.5].map(at), [
      "Parfum",
      "Parfum",
      "Parfum",
      "Eau de Parfum",
      "Eau de Parfum",
      "Eau de Toilette",
      "Eau de Toilette",
      "Eau de Cologne",
      "Eau de Cologne",
      "Eau Fraîche",
      "Eau Fraîche"
    ])
  })
})

for (const database of testDatabases) {
  describe(`the README's loop on ${database.name}`, () => {
    const server = testServer(database.layer(), {
      runtime: {
        cacheCapacity: 100,
        webhooks: {
          schedule: [0, 200, 1000],
          concurrency: 4,
          disableAfter: Duration.hours(1),
          allowPrivateNetworks: true
        }
      }
    })
    layer(server, { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
      it.effect(
        "register an endpoint, submit, run the worker: the receiver verifies formula.created and formula.processed, and the formula shows the result",
        () =>
          Effect.gen(function* () {
            const base = yield* BaseUrl
            const port = yield* freePort
            const registered = yield* request("POST", "/webhooks", {
              headers: { "x-client-id": clientId },
              body: { url: `http://127.0.0.1:${port}/hooks`, description: "the README's receiver" }
            })
            assert.strictEqual(registered.status, 201, registered.text)
            const secret = registered.json.secret as string
            assert.match(secret, /^whsec_/)

            const receiver = yield* spawnScript("examples/receiver.ts", ["--port", String(port)], {
              WEBHOOK_SECRET: secret
            })
            yield* receiver.waitFor(/receiver listening/)

            const submitted = yield* request("POST", "/formulas", {
              headers: { "x-client-id": clientId },
              body: summerBreeze(uniqueTag())
            })
            assert.strictEqual(submitted.status, 201, submitted.text)
            const formulaId = submitted.json.id as string

            const worker = yield* spawnScript("examples/worker.ts", [
              "--url",
              base,
              "--poll-wait-ms",
              "200",
              "--exit-when-idle"
            ])
            const workerExit = yield* Effect.promise(() => worker.exited)
            assert.strictEqual(workerExit, 0, worker.output())
            assert.include(worker.output(), `${formulaId} `)

            // Bergamot 15.5 + Lavender 10 + Sandalwood 5.2 = 30.7 %: a Parfum.
            yield* receiver.waitFor(new RegExp(`formula\\.created \\{[^\\n]*"id":"${formulaId}"`))
            const processed = yield* receiver.waitFor(new RegExp(`formula\\.processed \\{[^\\n]*"${formulaId}"[^\\n]*`))
            assert.include(processed, `"concentrationClass":"Parfum"`)
            assert.notInclude(receiver.output(), "refused")

            const formula = yield* request("GET", `/formulas/${formulaId}`)
            const message = formula.json.message as Record<string, unknown>
            assert.strictEqual(message.status, "processed", formula.text)
            assert.strictEqual((message.result as Record<string, unknown>).concentrationClass, "Parfum")

            // The deliveries show as succeeded to the client that owns the endpoint.
            const deliveries = yield* request("GET", `/webhooks/${registered.json.id}/deliveries`, {
              headers: { "x-client-id": clientId }
            })
            const statuses = (deliveries.json.items as Array<{ type: string; status: string }>).map(
              (item) => `${item.type}:${item.status}`
            )
            assert.sameMembers(statuses, ["formula.created:succeeded", "formula.processed:succeeded"])
          }).pipe(Effect.scoped),
        120_000
      )
    })
  })
}
