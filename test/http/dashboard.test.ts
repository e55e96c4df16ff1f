/**
 * `/dashboard` in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): after a few submissions the page renders with data, the
 * numbers it shows are the API's, a click on "Redrive all dead letters" moves
 * a dead letter back to the queue, the page logs no error, and no request it
 * makes leaves 127.0.0.1. The screenshot goes to test-artifacts/dashboard.png
 * (git-ignored; docs/dashboard.png is a copy for the README).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { type Browser, chromium } from "playwright-core"
import { testDatabases } from "../support/Databases.ts"
import { postFormula, postText, singleMaterial, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { BaseUrl, request, testServer } from "../support/TestServer.ts"

const executablePath = "/usr/bin/chromium"
const artifacts = new URL("../../test-artifacts/", import.meta.url)

const browser = Effect.acquireRelease(
  Effect.promise(() => {
    if (!existsSync(executablePath)) {
      throw new Error(`${executablePath} is missing: this test drives a real Chromium. apt-get install -y chromium`)
    }
    return chromium.launch({
      executablePath,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    })
  }),
  (browser) => Effect.promise(() => browser.close())
)

const sum = (buckets: ReadonlyArray<Record<string, number>>, kind: string) =>
  buckets.reduce((total, bucket) => total + bucket[kind]!, 0)

/** Polls (real time, bounded) until `check` holds. */
const eventually = <A, R>(get: Effect.Effect<A, never, R>, check: (value: A) => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 300; i++) {
      const value = yield* get
      if (check(value)) return value
      yield* Effect.sleep("20 millis")
    }
    return assert.fail("condition not reached in time")
  })

const drive = async (launched: Browser, base: string) => {
  const context = await launched.newContext({ viewport: { width: 1400, height: 1000 } })
  const requests: Array<string> = []
  const errors: Array<string> = []
  context.on("request", (req) => requests.push(req.url()))
  try {
    const page = await context.newPage()
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text())
    })
    page.on("pageerror", (error) => errors.push(String(error)))
    await page.goto(`${base}/dashboard`)
    await page.waitForSelector("body[data-loaded=true]")
    await page.getByRole("heading", { name: "Submissions over time" }).waitFor()
    const text = (selector: string) => page.locator(selector).innerText()
    const shown = {
      zone: await text("#zone"),
      created: Number(await text("#total-created")),
      duplicate: Number(await text("#total-duplicate")),
      invalid: Number(await text("#total-invalid")),
      bars: await page.locator("#chart rect").count(),
      deadLettered: Number(await text("#queue-deadLettered")),
      ready: Number(await text("#queue-ready")),
      formulas: await page.locator("#formulas tr").allInnerTexts(),
      deadLetters: await page.locator("#dead-letters tr").allInnerTexts()
    }
    mkdirSync(artifacts, { recursive: true })
    await page.screenshot({ path: new URL("dashboard.png", artifacts).pathname, fullPage: true })

    await page.getByRole("button", { name: "Redrive all dead letters" }).click()
    await page.locator("#redrive-result").filter({ hasText: "redriven" }).waitFor()
    const afterRedrive = {
      result: await text("#redrive-result"),
      deadLetters: await page.locator("#dead-letters tr").allInnerTexts(),
      deadLettered: Number(await text("#queue-deadLettered"))
    }
    // The page switches granularity without errors.
    await page.selectOption("#granularity", "day")
    await page.locator("#chart-description").filter({ hasText: "per day" }).waitFor({ state: "attached" })
    return { shown, afterRedrive, requests, errors }
  } finally {
    await context.close()
  }
}

// The page does not depend on the database: one is enough.
describe("the dashboard in Chromium", () => {
  layer(
    testServer(testDatabases[0]!.layer(), {
      runtime: { queue: { maxDeliveries: 1 }, statsFlushInterval: "20 millis" }
    }),
    { excludeTestServices: true }
  )((it) => {
    it.effect(
      "renders the API's numbers after a few submissions, redrives a dead letter, loads nothing from elsewhere",
      () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const tag = uniqueTag()
          assert.strictEqual((yield* postFormula(summerBreeze(tag))).status, 201)
          assert.strictEqual((yield* postFormula(singleMaterial(tag))).status, 201)
          assert.strictEqual(
            (yield* postFormula({
              name: "<img src=x onerror=alert(1)>",
              materials: [{ name: "Rose", concentration: 2 }]
            })).status,
            201
          )
          assert.strictEqual((yield* postFormula(singleMaterial(tag))).status, 409)
          assert.strictEqual((yield* postText("{")).status, 400)
          // A dead letter: delivered once (maxDeliveries 1) and given back.
          const received = yield* request("POST", "/queue/receive", { body: { max: 1 } })
          const receipt = received.json.messages[0].receipt
          const deadId = received.json.messages[0].messageId
          assert.strictEqual(
            (yield* request("POST", "/queue/nack", { body: { receipt, error: "classifier down" } })).status,
            204
          )
          yield* eventually(
            Effect.map(request("GET", "/stats/submissions?granularity=hour"), (r) => r.json.buckets),
            (buckets) => sum(buckets, "duplicate") === 1 && sum(buckets, "invalid") === 1
          )

          const launched = yield* browser
          const seen = yield* Effect.promise(() => drive(launched, base))

          const api = (yield* request(
            "GET",
            `/stats/submissions?granularity=hour&timeZone=${encodeURIComponent(seen.shown.zone)}`
          )).json
          assert.deepStrictEqual(
            { created: seen.shown.created, duplicate: seen.shown.duplicate, invalid: seen.shown.invalid },
            { created: sum(api.buckets, "created"), duplicate: 1, invalid: 1 },
            "the totals shown are the API's"
          )
          assert.strictEqual(sum(api.buckets, "created"), 3)
          assert.isAtLeast(seen.shown.bars, 1, "the chart has bars")
          assert.strictEqual(seen.shown.deadLettered, 1, "the queue panel shows the dead letter")
          assert.lengthOf(seen.shown.formulas, 3, "the recent formulas")
          assert.isTrue(
            seen.shown.formulas.some((row) => row.includes("<img src=x onerror=alert(1)>")),
            "names are shown as text"
          )
          assert.strictEqual(
            seen.shown.formulas.filter((row) => row.includes("dead-lettered")).length,
            1,
            "the dead letter's formula shows it"
          )
          assert.strictEqual(seen.shown.formulas.filter((row) => row.includes("pending")).length, 2)
          assert.lengthOf(seen.shown.deadLetters, 1)
          assert.include(seen.shown.deadLetters[0]!, deadId)
          assert.include(seen.shown.deadLetters[0]!, "classifier down")

          assert.strictEqual(seen.afterRedrive.result, "1 redriven")
          assert.deepStrictEqual((yield* request("GET", "/queue/dead-letters")).json.messages, [])
          const queue = (yield* request("GET", "/queue/stats")).json
          assert.strictEqual(queue.deadLettered, 0)
          assert.strictEqual(queue.ready, 3, "the dead letter is ready again, with the two never received")
          assert.deepStrictEqual(seen.afterRedrive.deadLetters, ["none"])
          assert.strictEqual(seen.afterRedrive.deadLettered, 0)

          assert.deepStrictEqual(seen.errors, [], "no errors in the page's console")
          const elsewhere = seen.requests.filter((url) => {
            const { protocol, hostname } = new URL(url)
            return protocol !== "data:" && protocol !== "blob:" && hostname !== "127.0.0.1"
          })
          assert.deepStrictEqual(elsewhere, [], `requests that left the host: ${elsewhere.join(" ")}`)
          assert.include(seen.requests, `${base}/queue/stats`)
        }),
      { timeout: 120_000 }
    )
  })
})
