/**
 * A tiny webhook receiver, to watch the loop close: it verifies each request's
 * Standard Webhooks signature with the npm `standardwebhooks` package (what a
 * client of this service would use; any Standard Webhooks library will do),
 * prints the event, and answers 204. A request whose signature does not verify
 * gets 400 and is not printed.
 *
 *   WEBHOOK_SECRET=whsec_… npx node examples/receiver.ts [--port 9000]
 *
 * The secret is the one `POST /webhooks` returned. A receiver must be
 * idempotent: `webhook-id` is the event's id, the same on every retry, so a
 * retried event is recognised and not processed twice (here: printed as a
 * repeat).
 */
import { createServer } from "node:http"
import { parseArgs } from "node:util"
import { Webhook } from "standardwebhooks"

const { values: options } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    secret: { type: "string", default: process.env["WEBHOOK_SECRET"] ?? "" }
  }
})
if (!options.secret.startsWith("whsec_")) {
  console.error("set WEBHOOK_SECRET (or --secret) to the whsec_… secret POST /webhooks returned")
  process.exit(2)
}
const verifier = new Webhook(options.secret)
const seen = new Set<string>()

const server = createServer((request, response) => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8")
    const headers = Object.fromEntries(
      ["webhook-id", "webhook-timestamp", "webhook-signature"].map((name) => [
        name,
        String(request.headers[name] ?? "")
      ])
    )
    let event: { readonly type: string; readonly data: unknown }
    try {
      event = verifier.verify(body, headers) as typeof event
    } catch (error) {
      console.error(`refused a request: ${error instanceof Error ? error.message : error}`)
      response.writeHead(400).end()
      return
    }
    const id = headers["webhook-id"]!
    const repeat = seen.has(id)
    seen.add(id)
    console.log(`${repeat ? "repeat of " : ""}${id} ${event.type} ${JSON.stringify(event.data)}`)
    response.writeHead(204).end()
  })
})
server.listen(Number(options.port), "127.0.0.1", () =>
  console.log(`receiver listening on http://127.0.0.1:${options.port}/ (signatures checked)`)
)
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => server.close(() => process.exit(0)))
