/**
 * `/dashboard` in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): after a few submissions the page renders with data, the
 * numbers it shows are the API's, a click on "Redrive all dead letters" moves
 * a dead letter back to the queue, the webhook endpoints panel shows a
 * client's endpoints with the health their deliveries report (as the API
 * does) and retries a failed one, the page logs no error, and no request it
 * makes leaves 127.0.0.1. The screenshot goes to test-artifacts/dashboard.png
 * (git-ignored; docs/dashboard.png is a copy for the README).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { type Browser, chromium, type Page } from "playwright-core"
import { testDatabases } from "../support/Databases.ts"
import { jsonText, postFormula, postText, singleMaterial, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { BaseUrl, request, send, testServer } from "../support/TestServer.ts"

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

/** A webhook receiver on 127.0.0.1 that refuses everything: 410 on /gone (the endpoint is disabled), else 500. */
const receiver = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ readonly url: string; readonly close: () => Promise<void> }>((resolve) => {
        const server = createServer((req, res) => {
          req.resume()
          req.on("end", () => {
            res.statusCode = req.url === "/gone" ? 410 : 500
            res.end()
          })
        })
        server.listen(0, "127.0.0.1", () =>
          resolve({
            url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
            close: () => new Promise<void>((done) => server.close(() => done()))
          })
        )
      })
  ),
  (server) => Effect.promise(() => server.close())
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

/** What the webhook panel shows of one endpoint (its row, by endpoint id). */
const endpointShown = async (page: Page, id: string) => {
  const tr = page.locator(`#endpoints tr[data-endpoint-id="${id}"]`)
  const cells = await tr.locator("td").allInnerTexts()
  const failing = tr.locator(".failing time")
  return {
    endpoint: cells[0]!,
    events: cells[1]!,
    state: cells[2]!,
    health: cells[3]!,
    next:
      (await tr.locator("td.next time").count()) > 0 ? await tr.locator("td.next time").getAttribute("datetime") : null,
    last: cells[5]!,
    retries: await tr.locator("button").count(),
    failingSince: (await failing.count()) > 0 ? await failing.getAttribute("datetime") : null
  }
}

const drive = async (launched: Browser, base: string, hooks: { client: string; failing: string; gone: string }) => {
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
    const note = await text("#webhooks-note")
    // The client's webhook endpoints, once its id is typed in.
    await page.getByLabel("Client id (X-Client-Id)").fill(hooks.client)
    await page.getByRole("button", { name: "Show", exact: true }).click()
    await page.locator("#endpoints tr").nth(1).waitFor()
    const webhooks = {
      note,
      noteShown: await text("#webhooks-note"),
      failing: await endpointShown(page, hooks.failing),
      gone: await endpointShown(page, hooks.gone),
      images: await page.locator("#webhooks img").count()
    }
    mkdirSync(artifacts, { recursive: true })
    await page.screenshot({ path: new URL("dashboard.png", artifacts).pathname, fullPage: true })

    await page.getByRole("button", { name: /^Retry the formula.created delivery of / }).click()
    await page.locator("#retry-result").filter({ hasText: "attempted again" }).waitFor()
    await page
      .locator(`#endpoints tr[data-endpoint-id="${hooks.gone}"] td.health`)
      .filter({ hasText: "1 pending" })
      .waitFor()
    const afterRetry = await endpointShown(page, hooks.gone)
    // The client id is remembered (localStorage) across a reload.
    await page.reload()
    // The first refresh, webhooks included, ends before data-loaded is set.
    await page.waitForSelector("body[data-loaded=true]")
    const remembered = {
      client: await page.getByLabel("Client id (X-Client-Id)").inputValue(),
      rows: await page.locator("#endpoints tr").count()
    }

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
    return { shown, afterRedrive, webhooks, afterRetry, remembered, requests, errors }
  } finally {
    await context.close()
  }
}

// The page does not depend on the database: one is enough.
describe("the dashboard in Chromium", () => {
  layer(
    testServer(testDatabases[0]!.layer(), {
      runtime: {
        queue: { maxDeliveries: 1 },
        statsFlushInterval: "20 millis",
        // The receiver is on 127.0.0.1; a failed first attempt waits an hour (±20 %) for the second.
        webhookAllowPrivateNetworks: true,
        webhooks: { schedule: [0, 3_600_000], concurrency: 4, disableAfter: "24 hours", allowPrivateNetworks: true }
      }
    }),
    { excludeTestServices: true }
  )((it) => {
    it.effect(
      "renders the API's numbers after a few submissions, redrives a dead letter, loads nothing from elsewhere",
      () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const tag = uniqueTag()
          const client = `atelier-${tag}`
          const asClient = { "x-client-id": client }
          const hooks = yield* receiver
          const hostile = "<img src=x onerror=alert(2)> classification results"
          const failing = yield* request("POST", "/webhooks", {
            headers: asClient,
            body: { url: `${hooks.url}/hooks`, events: ["formula.created"], description: hostile }
          })
          const gone = yield* request("POST", "/webhooks", {
            headers: asClient,
            body: { url: `${hooks.url}/gone`, events: ["formula.created"], description: "Retired receiver" }
          })
          assert.strictEqual(failing.status, 201)
          assert.strictEqual(gone.status, 201)
          const submitted = yield* send("/formulas", {
            method: "POST",
            headers: { "content-type": "application/json", ...asClient },
            body: jsonText(summerBreeze(tag))
          })
          assert.strictEqual(submitted.status, 201)
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

          // Each endpoint's formula.created delivery attempted once: pending after a 500, failed after a 410.
          const deliveriesOf = (id: string) =>
            Effect.map(
              request("GET", `/webhooks/${id}/deliveries?limit=20`, { headers: asClient }),
              (r) => r.json.items as Array<any>
            )
          yield* eventually(
            deliveriesOf(failing.json.id),
            (items) => items.length === 1 && items[0].attempts.length === 1
          )
          yield* eventually(deliveriesOf(gone.json.id), (items) => items.length === 1 && items[0].status === "failed")

          const launched = yield* browser
          const seen = yield* Effect.promise(() =>
            drive(launched, base, { client, failing: failing.json.id, gone: gone.json.id })
          )

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

          // The webhook panel shows what the API says.
          assert.strictEqual(seen.webhooks.note, "Enter a client id to see its webhook endpoints.")
          assert.include(seen.webhooks.noteShown, `2 endpoints of client ${client}`)
          const endpoints = (yield* request("GET", "/webhooks", { headers: asClient })).json.items as Array<any>
          const failingNow = endpoints.find((e) => e.id === failing.json.id)
          const goneNow = endpoints.find((e) => e.id === gone.json.id)
          const [pendingDelivery] = yield* deliveriesOf(failing.json.id)
          assert.strictEqual(pendingDelivery.status, "pending")
          assert.strictEqual(pendingDelivery.attempts[0].status, 500)
          assert.isString(pendingDelivery.nextAttemptAt)
          assert.deepStrictEqual(
            {
              endpoint: seen.webhooks.failing.endpoint,
              events: seen.webhooks.failing.events,
              health: seen.webhooks.failing.health,
              next: seen.webhooks.failing.next,
              failingSince: seen.webhooks.failing.failingSince,
              retries: seen.webhooks.failing.retries
            },
            {
              endpoint: `${failingNow.url}\n${hostile}`,
              events: "formula.created",
              health: "1 pending · 0 succeeded · 0 failed (all 1)",
              next: pendingDelivery.nextAttemptAt,
              failingSince: failingNow.failingSince,
              retries: 0
            },
            "the failing endpoint: its URL, the description as text, the pending delivery's next attempt"
          )
          assert.isString(failingNow.failingSince)
          assert.match(seen.webhooks.failing.state, /^enabled/)
          assert.match(seen.webhooks.failing.last, /^HTTP 500 at /)
          assert.strictEqual(seen.webhooks.images, 0, "no element made of an endpoint's description")

          assert.isFalse(goneNow.enabled)
          assert.isString(goneNow.disabledReason)
          assert.include(seen.webhooks.gone.state, "disabled")
          assert.include(seen.webhooks.gone.state, goneNow.disabledReason)
          assert.strictEqual(seen.webhooks.gone.health, "0 pending · 0 succeeded · 1 failed (all 1)")
          assert.isNull(seen.webhooks.gone.next)
          assert.match(seen.webhooks.gone.last, /^HTTP 410 at /)
          assert.strictEqual(seen.webhooks.gone.retries, 1, "a Retry button for the failed delivery")
          // Retried: pending again (its endpoint is disabled, so nothing sends it until it is re-enabled).
          const [retried] = yield* deliveriesOf(gone.json.id)
          assert.strictEqual(retried.status, "pending")
          assert.strictEqual(seen.afterRetry.health, "1 pending · 0 succeeded · 0 failed (all 1)")
          assert.strictEqual(seen.afterRetry.next, retried.nextAttemptAt)
          assert.strictEqual(seen.afterRetry.retries, 0)
          assert.deepStrictEqual(seen.remembered, { client, rows: 2 }, "the client id is remembered across a reload")

          assert.deepStrictEqual(seen.errors, [], "no errors in the page's console")
          const elsewhere = seen.requests.filter((url) => {
            // Only the service itself: not even the receiver, which is on 127.0.0.1 too.
            const { protocol, origin } = new URL(url)
            return protocol !== "data:" && protocol !== "blob:" && origin !== new URL(base).origin
          })
          assert.deepStrictEqual(elsewhere, [], `requests that left the host: ${elsewhere.join(" ")}`)
          assert.include(seen.requests, `${base}/queue/stats`)
          // No hammering: one deliveries page per endpoint per load of the list (one more list may be in flight).
          const lists = seen.requests.filter((url) => url === `${base}/webhooks`).length
          for (const id of [failing.json.id, gone.json.id]) {
            const pages = seen.requests.filter((url) => url === `${base}/webhooks/${id}/deliveries?limit=20`).length
            assert.isAtLeast(pages, 1)
            assert.include([lists, lists - 1], pages, `${pages} deliveries pages of ${id} for ${lists} lists`)
          }
        }),
      { timeout: 120_000 }
    )
  })
})
