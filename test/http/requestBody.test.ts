/**
 * How POST /formulas reads request bodies, on raw sockets (fetch cannot send
 * these): SubmitRoute reads a body of declared length straight from Node's
 * message and leaves `Expect: 100-continue` and chunked bodies to the
 * platform's reader (src/http/JsonBody.ts). Each test names what it protects.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { connect, type Socket } from "node:net"
import { testDatabases } from "../support/Databases.ts"
import { jsonText, summerBreeze, uniqueTag } from "../support/Formulas.ts"
import { BaseUrl, request, testServer } from "../support/TestServer.ts"

/** A raw connection to the test server, with everything it has received so far. */
const open = Effect.gen(function* () {
  const url = new URL(yield* BaseUrl)
  return yield* Effect.acquireRelease(
    Effect.callback<{ readonly socket: Socket; readonly received: () => string }>((resume) => {
      const socket = connect(Number(url.port), url.hostname)
      let received = ""
      socket.on("data", (chunk) => (received += chunk.toString("latin1")))
      socket.on("error", () => {})
      socket.once("connect", () => resume(Effect.succeed({ socket, received: () => received })))
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )
})

/**
 * Completes when what the connection received matches `pattern`: checked now and on each chunk that
 * arrives (this listener runs after `open`'s, which has added the chunk). At most 5 s.
 */
const awaitReceived = (connection: { readonly socket: Socket; readonly received: () => string }, pattern: RegExp) =>
  Effect.callback<string>((resume) => {
    const check = () => {
      if (!pattern.test(connection.received())) return
      connection.socket.off("data", check)
      resume(Effect.succeed(connection.received()))
    }
    connection.socket.on("data", check)
    check()
    return Effect.sync(() => connection.socket.off("data", check))
  }).pipe(
    Effect.timeoutOrElse({
      duration: "5 seconds",
      orElse: () =>
        Effect.sync(() => assert.fail(`never received ${pattern}; got ${JSON.stringify(connection.received())}`))
    })
  )

const head = (body: Buffer, extra: string) =>
  `POST /formulas HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${extra}\r\n`

for (const database of testDatabases) {
  describe(`request bodies on ${database.name}`, () => {
    layer(testServer(database.layer()), { excludeTestServices: true })((it) => {
      it.effect(
        "Expect: 100-continue gets 100 Continue before the body is sent, then 201 — protects leaving such requests to the platform's reader",
        () =>
          Effect.gen(function* () {
            const body = Buffer.from(jsonText(summerBreeze(uniqueTag())))
            const connection = yield* open
            const { socket } = connection
            socket.write(head(body, "Expect: 100-continue\r\n"))
            yield* awaitReceived(connection, /^HTTP\/1\.1 100 Continue\r\n\r\n/)
            socket.write(body)
            const answer = yield* awaitReceived(connection, /HTTP\/1\.1 201 Created[\s\S]*\r\n\r\n[\s\S]*\}$/)
            assert.include(answer, `"name":"Summer Breeze`)
          }).pipe(Effect.scoped)
      )

      it.effect(
        "a body of declared length arriving in pieces is read whole — protects the direct reader's joining of chunks",
        () =>
          Effect.gen(function* () {
            const body = Buffer.from(jsonText(summerBreeze(uniqueTag())))
            const connection = yield* open
            const { socket } = connection
            socket.write(head(body, ""))
            for (let at = 0; at < body.length; at += 40) {
              socket.write(body.subarray(at, at + 40))
              // Pacing, not ordering: spaced writes reach the server as separate reads.
              yield* Effect.sleep("5 millis")
            }
            yield* awaitReceived(connection, /^HTTP\/1\.1 201 Created/)
          }).pipe(Effect.scoped)
      )

      it.effect(
        "a client that disconnects before its declared length arrived stores nothing, even when what it sent is valid JSON, and the server goes on answering — protects against storing a cut request (the platform interrupts its fiber, and the direct reader fails rather than parse what it has)",
        () =>
          Effect.gen(function* () {
            const tag = uniqueTag()
            const body = Buffer.from(jsonText(summerBreeze(tag)))
            const { socket } = yield* open
            // The whole body, valid on its own, but 10 bytes short of the declared length.
            socket.write(head(Buffer.alloc(body.length + 10), ""))
            socket.write(body)
            // Real waits, kept: nothing the server does is observable from here until it answers, and a
            // cut request is never answered (the first lets the bytes arrive before the cut, the second
            // lets the server see the cut before the same make-up is sent again).
            yield* Effect.sleep("50 millis")
            socket.destroy()
            yield* Effect.sleep("50 millis")
            // The same make-up, sent properly, is new: the cut request stored nothing.
            const again = yield* request("POST", "/formulas", { body: summerBreeze(tag) })
            assert.strictEqual(again.status, 201)
          }).pipe(Effect.scoped)
      )
    })
  })
}
