/**
 * One request must not stall the service (issue 9): whatever a body within
 * the 1 MiB limit holds, judging it is bounded work (an over-long materials
 * array is one problem, a 400 lists at most 100 problems and counts the
 * rest), and the event loop every other request shares never waits on it
 * (large bodies are judged on a worker thread: src/http/SubmissionJudge.ts).
 * On every test database.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Worker } from "node:worker_threads"
import { MAX_LISTED_ERRORS } from "../../src/domain/Formula.ts"
import { inlineMaxBytes, judgeInline } from "../../src/http/SubmissionBody.ts"
import { testDatabases } from "../support/Databases.ts"
import { assertInvalid, postText, uniqueTag } from "../support/Formulas.ts"
import { BaseUrl, request, testServer } from "../support/TestServer.ts"

const MiB = 1024 * 1024

/**
 * Watches the event loop with a 1 ms timer; `stop` returns the most CPU time
 * this thread spent between two ticks, in ms: its longest stall. CPU time
 * rather than wall time, so that the other processes of a busy machine (which
 * may keep this thread off a core for longer) do not count.
 */
const watchStalls = () => {
  let last = process.threadCpuUsage()
  let longest = 0
  const timer = setInterval(() => {
    const now = process.threadCpuUsage(last)
    longest = Math.max(longest, (now.user + now.system) / 1000)
    last = process.threadCpuUsage()
  }, 1)
  return {
    stop: () => {
      clearInterval(timer)
      return longest
    }
  }
}

/**
 * POSTs each body to `url` from a thread of its own, all at once, so that the
 * client's work (a megabyte to copy and write per body) is not done on the
 * event loop under watch.
 */
const postFromAnotherThread = (url: string, bodies: ReadonlyArray<{ readonly bytes: Uint8Array }>) =>
  Effect.callback<ReadonlyArray<{ readonly status: number; readonly text: string }>>((resume) => {
    const client = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads")
      Promise.all(workerData.bodies.map(async (body) => {
        const response = await fetch(workerData.url, { method: "POST", headers: { "content-type": "application/json" }, body })
        return { status: response.status, text: await response.text() }
      })).then((answers) => parentPort.postMessage(answers), (error) => parentPort.postMessage(String(error)))`,
      { eval: true, workerData: { url, bodies: bodies.map(({ bytes }) => bytes) } }
    )
    client.once("message", (answers) =>
      resume(typeof answers === "string" ? Effect.die(new Error(answers)) : Effect.succeed(answers))
    )
    client.once("error", (error) => resume(Effect.die(error)))
    return Effect.promise(() => client.terminate())
  })

/** `{"name":…,"materials":[item,item,…]}` with `count` items. */
const materialsOf = (item: string, count: number, name = "Hostile") =>
  `{"name":${JSON.stringify(name)},"materials":[${Array(count).fill(item).join(",")}]}`

/** As many `item`s as fit in `size` bytes. */
const filled = (item: string, size: number) => {
  const overhead = materialsOf(item, 0).length
  return materialsOf(item, Math.floor((size - overhead + 1) / (item.length + 1)))
}

/** Bodies of at most `size` bytes, each the worst case of one kind of work a parser or validator does. */
const hostileBodies = (size: number): Record<string, string> => ({
  "zeros in materials": filled("0", size),
  "empty objects in materials": filled("{}", size),
  "numbers whose source text must be kept": filled("1e1", size),
  "numbers of 17 digits": filled("1.0000000000000001", size),
  "nested arrays": "[".repeat(size / 2) + "]".repeat(size / 2),
  "nested objects": '{"a":'.repeat((size - 1) / 6) + "1" + "}".repeat((size - 1) / 6),
  "many keys": `{${Array.from({ length: Math.floor(size / 12) }, (_, i) => `"k${i.toString(36)}":0`).join(",")}}`,
  "a huge name": JSON.stringify({ name: "x".repeat(size - 40), materials: [] }),
  "a huge string of escapes": JSON.stringify({ name: "x", note: '\\"'.repeat(size / 6) }),
  "a huge concentration": `{"name":"x","materials":[{"name":"m","concentration":"${"9".repeat(size - 60)}"}]}`,
  "not JSON at the very end": filled("0", size).slice(0, -1)
})

for (const database of testDatabases) {
  describe(`hostile bodies on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect(
        "a materials array of 524,256 zeros or 349,504 empty objects is one problem in a small 400 — protects against judging every element",
        () =>
          Effect.gen(function* () {
            for (const body of [materialsOf("0", 524_256), materialsOf("{}", 349_504)]) {
              assert.isAtMost(body.length, MiB)
              const response = yield* postText(body)
              const errors = assertInvalid(response)
              assert.deepStrictEqual(errors, [{ path: "/materials", message: "must contain at most 500 materials" }])
              assert.isUndefined(response.json.moreErrors)
              assert.isBelow(response.text.length, 1_000)
            }
          })
      )

      it.effect(
        "a 400 lists the first 100 problems and says how many more there were — protects the size of a 400",
        () =>
          Effect.gen(function* () {
            // 500 empty materials, each missing its name and its concentration: 1,000 problems, and an empty name.
            const response = yield* postText(materialsOf("{}", 500, ""))
            const errors = assertInvalid(response)
            assert.strictEqual(errors.length, MAX_LISTED_ERRORS)
            assert.deepStrictEqual(errors.slice(0, 3), [
              { path: "/name", message: "must not be empty" },
              { path: "/materials/0/name", message: "is required" },
              { path: "/materials/0/concentration", message: "is required" }
            ])
            assert.strictEqual(response.json.moreErrors, 901)
            assert.strictEqual(response.json.detail, "100 problems listed, and 901 more")
            assert.isBelow(response.text.length, 10_000)
            // Fewer than the cap: all listed, no count.
            const few = yield* postText(materialsOf("{}", 2, ""))
            assert.strictEqual(assertInvalid(few).length, 5)
            assert.isUndefined(few.json.moreErrors)
          })
      )

      it.effect(
        "while hostile 1 MiB bodies are judged, the event loop never spends 50 ms of CPU without a break, and /health and a valid submission are answered — protects the other requests from one body",
        () =>
          Effect.gen(function* () {
            const base = yield* BaseUrl
            const bodies = Object.entries(hostileBodies(MiB)).map(([kind, text]) => ({
              kind,
              bytes: new TextEncoder().encode(text)
            }))
            // A valid body too large to be judged on the event loop.
            const tag = uniqueTag()
            const large = `{"name":"Large ${tag}","note":"${"n".repeat(64 * 1024)}","materials":[{"name":"m ${tag}","concentration":1}]}`
            const stalls = watchStalls()
            const [answers, , created] = yield* Effect.all(
              [
                postFromAnotherThread(`${base}/formulas`, bodies),
                Effect.forEach(
                  Array.from({ length: 20 }),
                  () => Effect.map(request("GET", "/health"), (response) => assert.strictEqual(response.status, 200)),
                  { discard: true }
                ),
                postText(large)
              ],
              { concurrency: "unbounded" }
            )
            const longest = stalls.stop()
            assert.strictEqual(created.status, 201, created.text.slice(0, 200))
            answers.forEach((answer, index) => {
              const kind = bodies[index]!.kind
              assert.strictEqual(answer.status, 400, `${kind}: ${answer.text.slice(0, 200)}`)
              assert.isBelow(answer.text.length, 1_000, kind)
            })
            assert.isBelow(longest, 50, `the event loop ran ${longest.toFixed(1)} ms of CPU without a break`)
          }),
        { timeout: 120_000 }
      )
    })
  })
}

describe("judging on the event loop", () => {
  it("declines every body over the inline limit without reading it, and judges worst cases under it in far less than 50 ms — protects the event loop's share", () => {
    const big = new TextEncoder().encode(filled("0", MiB))
    const started = performance.now()
    assert.isUndefined(judgeInline(big, true))
    assert.isBelow(performance.now() - started, 5)
    for (const [kind, text] of Object.entries(hostileBodies(inlineMaxBytes))) {
      const bytes = new TextEncoder().encode(text)
      assert.isAtMost(bytes.length, inlineMaxBytes, kind)
      const start = performance.now()
      judgeInline(bytes, true)
      const took = performance.now() - start
      assert.isBelow(took, 50, `${kind}: ${took.toFixed(1)} ms`)
    }
  })
})
