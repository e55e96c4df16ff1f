/**
 * The HTTP reference: a bare `node:http` server that reads each request body
 * to the end and answers every request with the same canned 409 problem+json,
 * the shape of the service's duplicate answer. Nothing is parsed or checked:
 * this is what Node's HTTP stack costs on its own.
 *
 *   PORT=8081 node scripts/bench/bare-server.ts
 *
 * Prints `listening <port>` once the socket is open.
 */
import { createServer } from "node:http"

const body = Buffer.from(
  JSON.stringify({
    type: "https://formula-intake.example/problems/duplicate-formula",
    title: "Duplicate formula",
    status: 409,
    detail: "formula 0193a5c4-5b1e-7cc0-9a4e-3f1d2b6c8e90 has the same material make-up",
    existingId: "0193a5c4-5b1e-7cc0-9a4e-3f1d2b6c8e90",
    existingUrl: "/formulas/0193a5c4-5b1e-7cc0-9a4e-3f1d2b6c8e90"
  })
)

const server = createServer((request, response) => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    response.writeHead(409, { "content-type": "application/problem+json", "content-length": body.length })
    response.end(body)
  })
})
server.keepAliveTimeout = 60_000

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const address = server.address()
  console.log(`listening ${typeof address === "object" && address !== null ? address.port : address}`)
})

const close = () => server.close(() => process.exit(0))
process.on("SIGTERM", close)
process.on("SIGINT", close)
