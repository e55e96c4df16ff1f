/**
 * `/docs` in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): the page renders, lists every operation of the OpenAPI
 * document, shows the documented examples, and no request it makes leaves
 * the host (DESIGN.md "HTTP contract": a docs page that loads nothing from
 * another host). Screenshots are kept in `artifacts/` (git-ignored).
 *
 * Chromium is not optional here: without it the test fails, naming the
 * package to install (.ci/run installs it).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { OpenApi } from "effect/http-api"
import { existsSync, mkdirSync } from "node:fs"
import { type Browser, chromium } from "playwright-core"
import { Api } from "../../src/http/Api.ts"
import { testDatabases } from "../support/Databases.ts"
import { BaseUrl, testServer } from "../support/TestServer.ts"

const executablePath = "/usr/bin/chromium"
const artifacts = new URL("../../artifacts/", import.meta.url)

const browser = Effect.acquireRelease(
  Effect.promise(() => {
    if (!existsSync(executablePath)) {
      throw new Error(
        `${executablePath} is missing: this test drives a real Chromium. Install it with: apt-get install -y chromium`
      )
    }
    return chromium.launch({
      executablePath,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    })
  }),
  (browser) => Effect.promise(() => browser.close())
)

const spec = OpenApi.fromApi(Api)

const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
  Object.entries(item).map(([method, operation]) => ({
    method: method.toUpperCase(),
    path,
    summary: (operation as OpenApi.OpenAPISpecOperation).summary ?? `${method.toUpperCase()} ${path}`
  }))
)

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")

/** What the page shows and asks for; a screenshot of it in `artifacts/`. */
const visit = async (browser: Browser, url: string) => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } })
  const requests: Array<string> = []
  context.on("request", (request) => requests.push(request.url()))
  try {
    const page = await context.newPage()
    await page.goto(url, { waitUntil: "networkidle" })
    await page.getByRole("heading", { name: spec.info.title }).first().waitFor()
    mkdirSync(artifacts, { recursive: true })
    await page.screenshot({ path: new URL("docs.png", artifacts).pathname })

    // Rendered means listed by summary (the sidebar, every tag open) and by method and path (each tag's list).
    const text = await page.locator("body").innerText()
    const missing = operations
      .filter(({ method, path, summary }) => {
        const methodAndPath = new RegExp(`${method === "DELETE" ? "DEL(ETE)?" : method}\\s+${escape(path)}(\\s|$)`)
        return !text.includes(summary) || !methodAndPath.test(text)
      })
      .map(({ method, path }) => `${method} ${path}`)

    if (missing.length > 0) return { requests, missing, submit: "", receive: "" }

    // The examples reach the page: the submission's body and the receive's.
    const shown = async (summary: string) => {
      await page.getByText(summary, { exact: true }).first().click()
      await page.waitForTimeout(500)
      return page.locator("body").innerText()
    }
    const submit = await shown("Submit a formula")
    await page.screenshot({ path: new URL("docs-submit.png", artifacts).pathname })
    const receive = await shown("Receive messages")
    await page.screenshot({ path: new URL("docs-receive.png", artifacts).pathname })
    return { requests, missing, submit, receive }
  } finally {
    await context.close()
  }
}

// The page does not depend on the database: one is enough.
describe("the docs page in Chromium", () => {
  layer(testServer(testDatabases[0]!.layer()), { excludeTestServices: true })((it) => {
    it.effect(
      "renders every operation with its examples, loading nothing from another host",
      () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          const launched = yield* browser
          const seen = yield* Effect.promise(() => visit(launched, `${base}/docs`))

          assert.include(seen.requests, `${base}/docs`, "the page's requests are recorded")
          const elsewhere = seen.requests.filter((url) => {
            const { protocol, hostname } = new URL(url)
            // data: and blob: URLs are made in the page; they fetch nothing.
            return protocol !== "data:" && protocol !== "blob:" && hostname !== "127.0.0.1"
          })
          assert.deepStrictEqual(elsewhere, [], `requests that left the host: ${elsewhere.join(" ")}`)

          assert.deepStrictEqual(
            seen.missing,
            [],
            `operations of the OpenAPI document the page does not list: ${seen.missing.join(", ")}`
          )
          assert.include(seen.submit, '"name": "Summer Breeze"', "the documented submission is shown")
          assert.include(seen.submit, '"concentration": 15.5')
          assert.include(
            seen.submit,
            "idempotency-key: summer-breeze",
            "the request snippet sends the documented header"
          )
          assert.include(seen.receive, '"visibilityTimeoutMs": 30000', "the documented receive is shown")
        }),
      // A browser start and a page that parses the whole document: slow on a busy machine.
      { timeout: 120_000 }
    )
  })
})
