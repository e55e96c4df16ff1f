/**
 * The webhook benchmark's receiver (a process of its own, so that the senders
 * measured do not share its event loop): `node webhook-receiver.ts PORT`
 * answers every POST with 204 at once and remembers when each `webhook-id`
 * arrived (wall clock, ms); `GET /arrivals` returns them as JSON and forgets them.
 */
import { createServer } from "node:http"

const port = Number(process.argv[2] ?? 0)
let arrivals: Record<string, number> = {}

const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/arrivals") {
    const body = JSON.stringify(arrivals)
    arrivals = {}
    res.writeHead(200, { "content-type": "application/json" }).end(body)
    return
  }
  const id = req.headers["webhook-id"]
  if (typeof id === "string") arrivals[id] = Date.now()
  req.resume()
  req.on("end", () => res.writeHead(204).end())
})
server.keepAliveTimeout = 60_000
server.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`))
