/**
 * An in-process PostgreSQL wire-protocol bridge to an embedded PGlite.
 *
 * `@effect/sql-pg` speaks the wire protocol over any `Duplex` (its `stream`
 * option). We hand it one end of a `duplexPair()`; on the other end we cut the
 * byte stream into protocol messages and feed them, one message at a time and
 * under PGlite's exclusive lock, to `execProtocolRawStream`, writing whatever
 * the backend answers straight back. No TCP, no second process.
 *
 * PGlite is a single backend session. Every bridge connection talks to that
 * same session, so the client pool must hold exactly one connection: a second
 * connection would interleave its statements into the first one's transaction.
 */
import type { PGlite } from "@electric-sql/pglite"
import { type Duplex, duplexPair } from "node:stream"

const SSL_REQUEST_CODE = 80877103
const CANCEL_REQUEST_CODE = 80877102
const PROTOCOL_VERSION_3 = 196608
const TERMINATE = 0x58 // 'X'

// One bridge connection at a time owns the session, from its start-up until it
// was released (rolled back): a new connection must never run its statements
// inside the open transaction of one that is going away.
const sessions = new WeakMap<PGlite, Promise<void>>()
const ownSession = (db: PGlite): Promise<() => void> => {
  const previous = sessions.get(db) ?? Promise.resolve()
  let unlock!: () => void
  const next = new Promise<void>((resolve) => (unlock = resolve))
  sessions.set(
    db,
    previous.then(() => next)
  )
  return previous.then(() => unlock)
}

// A simple-protocol ROLLBACK, run under the lock we already hold (db.exec would take it again: deadlock).
const rollbackMessage = (() => {
  const text = Buffer.from("ROLLBACK\0")
  const message = Buffer.alloc(5 + text.length)
  message[0] = 0x51 // 'Q'
  message.writeInt32BE(4 + text.length, 1)
  text.copy(message, 5)
  return new Uint8Array(message)
})()

/** Returns a `stream` factory for `PgClient` that connects to `db`. */
export const makePgliteStream = (db: PGlite) => (): Duplex => {
  let unlock: (() => void) | undefined
  const [client, server] = duplexPair()
  let buffered: Buffer = Buffer.alloc(0)
  let startupDone = false
  // Messages are handled strictly in arrival order; a chain of promises is
  // the whole scheduler.
  let chain: Promise<void> = Promise.resolve()
  let closed = false

  const execute = (message: Uint8Array) =>
    db.runExclusive(() =>
      db.execProtocolRawStream(message, {
        onRawData: (data) => {
          if (!closed && data.length > 0) server.write(Buffer.from(data))
        }
      })
    )

  // Split what has arrived into complete messages. Before start-up finishes
  // messages carry no type byte: [int32 length][int32 code][...].
  const takeMessages = (): Array<Buffer> => {
    const messages: Array<Buffer> = []
    while (true) {
      if (!startupDone) {
        if (buffered.length < 8) break
        const length = buffered.readInt32BE(0)
        if (buffered.length < length) break
        const code = buffered.readInt32BE(4)
        const message = buffered.subarray(0, length)
        buffered = buffered.subarray(length)
        if (code === SSL_REQUEST_CODE) {
          // No TLS inside one process: answer "N" and let the client go on in plain text.
          server.write(Buffer.from("N"))
          continue
        }
        if (code === CANCEL_REQUEST_CODE) {
          // Nothing to cancel in a single session, and a cancel connection says nothing more.
          server.end()
          continue
        }
        if (code === PROTOCOL_VERSION_3) {
          startupDone = true
          chain = chain
            .then(() => ownSession(db))
            .then((release) => {
              unlock = release
              if (closed) release()
            })
        }
        messages.push(message)
        continue
      }
      if (buffered.length < 5) break
      const length = 1 + buffered.readInt32BE(1)
      if (buffered.length < length) break
      messages.push(buffered.subarray(0, length))
      buffered = buffered.subarray(length)
    }
    return messages
  }

  server.on("data", (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    for (const message of takeMessages()) {
      if (message[0] === TERMINATE && startupDone) {
        server.end()
        continue
      }
      // Copy: PGlite reads the bytes after we have moved on in `buffered`.
      const bytes = new Uint8Array(message)
      chain = chain
        .then(() => (closed ? undefined : execute(bytes)))
        .catch((error) => {
          server.destroy(error instanceof Error ? error : new Error(String(error)))
        })
    }
  })

  // A client that goes away mid-transaction must not leave the shared
  // session inside it: the next connection would inherit the open transaction.
  const release = () => {
    if (closed) return
    closed = true
    chain = chain
      .then(() =>
        db.runExclusive(async () => {
          // Only the connection that owns the session may end its transaction:
          // a cancel connection closing must not roll back the live one's.
          if (unlock !== undefined && db.isInTransaction()) {
            await db.execProtocolRawStream(rollbackMessage, { onRawData: () => {} })
          }
        })
      )
      .catch(() => undefined)
      .finally(() => unlock?.())
  }
  server.on("close", release)
  server.on("end", release)
  server.on("error", release)
  return client
}
