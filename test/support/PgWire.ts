/**
 * Just enough of the PostgreSQL wire protocol to follow one connection from
 * a proxy (TcpProxy's Interceptor): which SQL the client runs, and when the
 * server answers a COMMIT.
 *
 * The client's statements: a simple Query carries its text; the extended
 * protocol's Parse names a statement and carries its text once, and later
 * Binds only name it (the client caches prepared statements), so the names
 * are remembered per connection. Messages before start-up finished (an
 * SSLRequest, the StartupMessage) have no type byte.
 *
 * The server's answers are searched, not parsed (its first byte may be the
 * unframed answer to an SSLRequest): CommandComplete "COMMIT" is the 12 bytes
 * `C`, int32 11, `COMMIT\0`, found across chunk boundaries.
 */

const PROTOCOL_VERSION_3 = 196608

/** Follows what one client connection sends; calls `onStatement` with the SQL of each Query and Bind. */
export class ClientStatements {
  private buffered: Buffer = Buffer.alloc(0)
  private started = false
  private readonly prepared = new Map<string, string>()

  private readonly onStatement: (sql: string) => void

  constructor(onStatement: (sql: string) => void) {
    this.onStatement = onStatement
  }

  push(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk])
    while (true) {
      if (!this.started) {
        if (this.buffered.length < 8) return
        const length = this.buffered.readInt32BE(0)
        if (this.buffered.length < length) return
        if (this.buffered.readInt32BE(4) === PROTOCOL_VERSION_3) this.started = true
        this.buffered = this.buffered.subarray(length)
        continue
      }
      if (this.buffered.length < 5) return
      const length = this.buffered.readInt32BE(1)
      if (this.buffered.length < 1 + length) return
      const type = String.fromCharCode(this.buffered[0]!)
      const body = this.buffered.subarray(5, 1 + length)
      this.buffered = this.buffered.subarray(1 + length)
      this.message(type, body)
    }
  }

  private message(type: string, body: Buffer): void {
    const strings = (count: number) => {
      const found: Array<string> = []
      let at = 0
      for (let i = 0; i < count; i++) {
        const end = body.indexOf(0, at)
        found.push(body.toString("utf8", at, end))
        at = end + 1
      }
      return found
    }
    if (type === "Q") this.onStatement(strings(1)[0]!)
    else if (type === "P") {
      const [name, sql] = strings(2)
      this.prepared.set(name!, sql!)
    } else if (type === "B") {
      const [, statement] = strings(2)
      const sql = this.prepared.get(statement!)
      if (sql !== undefined) this.onStatement(sql)
    }
  }
}

const commitComplete = Buffer.concat([Buffer.from("C"), Buffer.from([0, 0, 0, 11]), Buffer.from("COMMIT\0")])

/** Finds the server's CommandComplete for COMMIT in what one connection receives. */
export class CommitAnswers {
  private tail: Buffer = Buffer.alloc(0)

  /** How many COMMIT answers end in this chunk. */
  count(chunk: Buffer): number {
    const data = Buffer.concat([this.tail, chunk])
    let found = 0
    for (let at = data.indexOf(commitComplete); at !== -1; at = data.indexOf(commitComplete, at + 1)) found++
    this.tail = data.subarray(Math.max(0, data.length - (commitComplete.length - 1)))
    return found
  }
}
