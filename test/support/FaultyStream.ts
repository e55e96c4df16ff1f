/**
 * A wire-level fault injector for database connections.
 *
 * `@effect/sql-pg` talks the PostgreSQL wire protocol over any `Duplex` (its
 * `stream` option), so a test can put a `Duplex` of its own between the client
 * and the real connection — a TCP socket to PostgreSQL, or the in-process
 * bridge to PGlite — and cut it at a chosen statement:
 *
 * - `before`: the connection dies instead of sending the statement; the server
 *   never sees it.
 * - `after`: the statement is sent, the server executes it and answers, the
 *   answer is thrown away and the connection dies: executed, answer lost.
 * - `hold`: the statement is sent and executed; the answer is kept back until
 *   the test releases it (or cuts the connection), so the test can act in the
 *   window where the server has finished and the client does not know yet.
 * - `late`: the client sees the connection die at once, but the statement
 *   still reaches the server a little later (a slow network or a stalled
 *   server): the client cannot know whether, nor when, it takes effect.
 * - `stall`: the same, but the statement reaches the server only when the
 *   test releases it, so the test decides when it takes effect.
 *
 * For `late` and `stall`, `landed` completes once the server has answered the
 * statement that arrived late: it took effect (or failed) by then. Tests wait
 * for that hand-off rather than for time to pass.
 *
 * A statement is recognised by its SQL text wherever the frontend messages
 * carry it: a simple `Query`, or a `Bind` of a statement whose `Parse` (maybe
 * much earlier, for a prepared statement) held the text. So faults fire on
 * the execution, with statement preparation on as in production.
 *
 * Every fault fires once. The injector can also take the database away
 * (`setOffline(true)`: open connections die, new ones are refused) and give it
 * back.
 */
import { PGlite } from "@electric-sql/pglite"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Duration, Effect, Layer, Redacted } from "effect"
import { createConnection } from "node:net"
import { Duplex } from "node:stream"
import * as Database from "../../src/store/Database.ts"
import { makePgliteStream } from "../../src/store/PgliteBridge.ts"
import type { DatabaseLayer } from "./Databases.ts"

export type FaultPoint = "before" | "after" | "hold" | "late" | "stall"

export interface Fault {
  readonly sql: string
  readonly point: FaultPoint
  /** Completes when the fault fired (for `after` and `hold`: once the server's answer arrived). */
  readonly fired: Effect.Effect<void>
  readonly hasFired: Effect.Effect<boolean>
  /** `late`, `stall`: completes when the server has answered the statement that arrived late. */
  readonly landed: Effect.Effect<void>
  /** `hold`: hands the held answer to the client. `stall`: sends the statement on to the server. */
  readonly release: Effect.Effect<void>
  /** `hold`: drops the held answer and kills the connection. */
  readonly cut: Effect.Effect<void>
}

interface Armed {
  readonly sql: string
  readonly point: FaultPoint
  readonly lateDelay: number
  readonly fired: Deferred.Deferred<void>
  readonly landed: Deferred.Deferred<void>
  connection: FaultyConnection | undefined
}

const SSL_REQUEST = 80877103
const CANCEL_REQUEST = 80877102
const GSS_REQUEST = 80877104

const cstring = (buffer: Buffer, offset: number): [string, number] => {
  const end = buffer.indexOf(0, offset)
  return [buffer.toString("utf8", offset, end), end + 1]
}

/**
 * One wrapped connection. Outgoing bytes are framed into protocol messages so
 * that statements can be recognised; incoming bytes are framed so that the end
 * of an answer (`ReadyForQuery`) can be found.
 */
class FaultyConnection extends Duplex {
  private readonly inner: Duplex
  private readonly injector: FaultInjector
  private outBuffer: Buffer = Buffer.alloc(0)
  private inBuffer: Buffer = Buffer.alloc(0)
  private startup = true
  private readonly statements = new Map<string, string>()
  /** A fault waiting for the server's answer on this connection. */
  private awaiting: Armed | undefined
  private held: Array<Buffer> = []
  private holding = false
  /** `late`, `stall`: the client's side is gone, the server's side lives on for a while. */
  private detached = false
  /** `late`, `stall`: the statement not yet sent on, then sent and awaiting the server's answer. */
  private stalled: { readonly chunk: Buffer; readonly armed: Armed; sent: boolean } | undefined

  constructor(inner: Duplex, injector: FaultInjector) {
    super()
    this.inner = inner
    this.injector = injector
    inner.on("data", (chunk: Buffer) => this.fromServer(chunk))
    inner.on("end", () => {
      if (!this.holding) this.push(null)
    })
    inner.on("error", (error) => this.destroy(error))
    inner.on("close", () => {
      if (!this.holding) this.destroy()
    })
  }

  /** The SQL texts the messages in `chunk` execute. */
  private executed(chunk: Buffer): Array<string> {
    this.outBuffer = this.outBuffer.length === 0 ? chunk : Buffer.concat([this.outBuffer, chunk])
    const texts: Array<string> = []
    while (true) {
      if (this.startup) {
        if (this.outBuffer.length < 8) break
        const length = this.outBuffer.readInt32BE(0)
        if (this.outBuffer.length < length) break
        const code = this.outBuffer.readInt32BE(4)
        this.outBuffer = this.outBuffer.subarray(length)
        if (code !== SSL_REQUEST && code !== CANCEL_REQUEST && code !== GSS_REQUEST) this.startup = false
        continue
      }
      if (this.outBuffer.length < 5) break
      const length = 1 + this.outBuffer.readInt32BE(1)
      if (this.outBuffer.length < length) break
      const type = String.fromCharCode(this.outBuffer[0]!)
      const body = this.outBuffer.subarray(5, length)
      this.outBuffer = this.outBuffer.subarray(length)
      if (type === "Q") {
        texts.push(cstring(body, 0)[0])
      } else if (type === "P") {
        const [name, next] = cstring(body, 0)
        this.statements.set(name, cstring(body, next)[0])
      } else if (type === "B") {
        const [, next] = cstring(body, 0)
        const [statement] = cstring(body, next)
        texts.push(this.statements.get(statement) ?? "")
      } else if (type === "C" && body[0] === 0x53 /* 'S' */) {
        this.statements.delete(cstring(body, 1)[0])
      }
    }
    return texts
  }

  /** Whether `chunk` (from the server) completes an answer: it holds a `ReadyForQuery`. */
  private completesAnswer(chunk: Buffer): boolean {
    this.inBuffer = this.inBuffer.length === 0 ? chunk : Buffer.concat([this.inBuffer, chunk])
    let ready = false
    while (this.inBuffer.length >= 5) {
      const length = 1 + this.inBuffer.readInt32BE(1)
      if (this.inBuffer.length < length) break
      if (this.inBuffer[0] === 0x5a /* 'Z' */) ready = true
      this.inBuffer = this.inBuffer.subarray(length)
    }
    return ready
  }

  private fromServer(chunk: Buffer): void {
    if (this.detached) {
      // The late statement's answer: nobody reads it; it only tells that the statement landed.
      const stalled = this.stalled
      if (stalled !== undefined && stalled.sent && this.completesAnswer(chunk)) {
        this.stalled = undefined
        Deferred.doneUnsafe(stalled.armed.landed, Effect.void)
        this.inner.end()
      }
      return
    }
    if (this.destroyed) return
    const complete = this.completesAnswer(chunk)
    const armed = this.awaiting
    if (armed === undefined) {
      if (this.holding) this.held.push(chunk)
      else this.push(chunk)
      return
    }
    // The answer to the faulted statement: never reaches the client unless released.
    this.held.push(chunk)
    if (!complete) return
    this.awaiting = undefined
    if (armed.point === "after") {
      this.kill()
    } else {
      this.holding = true
    }
    Deferred.doneUnsafe(armed.fired, Effect.void)
  }

  /** Connection lost: both directions die, whatever was held is dropped. */
  kill(): void {
    this.holding = false
    this.held = []
    this.inner.destroy()
    this.destroy(new Error("connection lost (injected fault)"))
  }

  /** `stall`: sends the statement on to the server, whose answer completes `landed`. */
  sendStalled(): void {
    const stalled = this.stalled
    if (stalled === undefined || stalled.sent) return
    stalled.sent = true
    this.inBuffer = Buffer.alloc(0)
    this.inner.write(stalled.chunk)
  }

  /** Hands what was held to the client and lets the connection go on (`stall`: sends the statement on). */
  releaseHeld(): void {
    if (this.stalled !== undefined) return this.sendStalled()
    if (!this.holding) return
    this.holding = false
    const held = this.held
    this.held = []
    for (const chunk of held) this.push(chunk)
    if (this.inner.destroyed) this.destroy()
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const texts = this.executed(chunk)
    const armed = this.injector.take(texts)
    if (armed === undefined) {
      this.inner.write(chunk, callback)
      return
    }
    armed.connection = this
    switch (armed.point) {
      case "before":
        Deferred.doneUnsafe(armed.fired, Effect.void)
        this.kill()
        return callback()
      case "late":
      case "stall": {
        // The client's side dies now; the statement arrives later (after a delay, or when released),
        // then the connection closes. Detached before `fired` completes: whoever awaits it may take
        // the database offline at once, which must not kill the server's side of this connection.
        this.detached = true
        this.stalled = { chunk, armed, sent: false }
        this.destroy(new Error("connection lost (injected fault)"))
        Deferred.doneUnsafe(armed.fired, Effect.void)
        if (armed.point === "late") setTimeout(() => this.sendStalled(), armed.lateDelay)
        return callback()
      }
      case "after":
      case "hold":
        this.awaiting = armed
        this.inner.write(chunk, callback)
        return
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.inner.end(callback)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.detached) this.inner.destroy()
    this.injector.forget(this)
    callback(error)
  }
}

export class FaultInjector {
  private armed: Armed | undefined
  private offline = false
  private readonly open = new Set<FaultyConnection>()
  /** Every SQL text executed through the injector, in order (tests look for statements that must not run). */
  readonly log: Array<string> = []
  connectionsOpened = 0

  /** Wraps a connection factory. */
  stream(open: () => Duplex): () => Duplex {
    return () => {
      this.connectionsOpened++
      if (this.offline) {
        const refused = new Duplex({
          read() {},
          write(_chunk, _encoding, callback) {
            callback()
          }
        })
        process.nextTick(() => refused.destroy(new Error("connection refused (database offline)")))
        return refused
      }
      const connection = new FaultyConnection(open(), this)
      this.open.add(connection)
      return connection
    }
  }

  /** Arms a one-shot fault at the next execution of a statement containing `sql`. */
  arm(sql: string, point: FaultPoint, options: { readonly lateDelay?: Duration.Input } = {}): Fault {
    const armed: Armed = {
      sql,
      point,
      lateDelay: Duration.toMillis(Duration.fromInputUnsafe(options.lateDelay ?? 200)),
      fired: Deferred.makeUnsafe<void>(),
      landed: Deferred.makeUnsafe<void>(),
      connection: undefined
    }
    this.armed = armed
    return {
      sql,
      point,
      fired: Deferred.await(armed.fired),
      hasFired: Deferred.isDone(armed.fired),
      landed: Deferred.await(armed.landed),
      release: Effect.sync(() => armed.connection?.releaseHeld()),
      cut: Effect.sync(() => armed.connection?.kill())
    }
  }

  disarm(): void {
    this.armed = undefined
  }

  /** Takes the database away (every open connection dies, new ones are refused) or gives it back. */
  setOffline(offline: boolean): void {
    this.offline = offline
    if (offline) for (const connection of Array.from(this.open)) connection.kill()
  }

  /** @internal */
  take(texts: ReadonlyArray<string>): Armed | undefined {
    this.log.push(...texts)
    const armed = this.armed
    if (armed === undefined || !texts.some((text) => text.includes(armed.sql))) return undefined
    this.armed = undefined
    return armed
  }

  /** @internal */
  forget(connection: FaultyConnection): void {
    this.open.delete(connection)
  }
}

// A shorter connect timeout than production: a wedged database fails a test quickly instead of slowly.
const clientOptions = { connectTimeout: Duration.seconds(2), applicationName: "formula-intake-faults" } as const

/** A fresh in-memory PGlite, reached through the bridge with the injector in between. Migrated. */
export const pgliteThrough = (injector: FaultInjector): DatabaseLayer =>
  Database.migrated(
    Layer.unwrap(
      Effect.gen(function* () {
        const db = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const db = new PGlite()
            await db.waitReady
            return db
          }),
          // Bounded: a wedged PGlite must fail the test, not hang it.
          (db) => Effect.promise(() => db.close()).pipe(Effect.timeout("3 seconds"), Effect.ignore)
        )
        return PgClient.layerFrom(
          PgClient.make({
            ...clientOptions,
            stream: injector.stream(makePgliteStream(db)),
            username: "postgres",
            database: "postgres",
            maxConnections: 1,
            minConnections: 1,
            idleTimeout: Duration.infinity
          })
        )
      })
    )
  )

let schemas = 0

/**
 * PostgreSQL at `url`, over TCP with the injector in between, in a schema of
 * its own (created first, dropped when the layer is released). Migrated.
 */
export const postgresThrough = (url: string, injector: FaultInjector): DatabaseLayer => {
  const schema = `faults_${process.pid}_${Date.now().toString(36)}_${schemas++}`
  const { hostname, port } = new URL(url)
  const host = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname
  const direct = PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })
  const schemaLifetime = Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(schema)}`
      yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
    })
  ).pipe(Layer.provide(direct))
  const client = PgClient.layer({
    ...clientOptions,
    url: Redacted.make(url),
    ssl: false,
    stream: injector.stream(() => createConnection({ host, port: Number(port || 5432), noDelay: true })),
    startupParameters: { search_path: schema },
    maxConnections: 4
  })
  return Database.migrated(client).pipe(Layer.provideMerge(schemaLifetime))
}

export interface FaultyDatabase {
  readonly name: "pglite" | "postgres"
  /** A fresh, migrated, empty database whose every connection goes through `injector`. */
  readonly layer: (injector: FaultInjector) => DatabaseLayer
}

export const faultyDatabases = (postgresUrl: string | undefined): ReadonlyArray<FaultyDatabase> => [
  { name: "pglite", layer: pgliteThrough },
  ...(postgresUrl === undefined
    ? []
    : [{ name: "postgres" as const, layer: (injector: FaultInjector) => postgresThrough(postgresUrl, injector) }])
]
