/**
 * Idempotency keys (`Idempotency-Key`, scoped by `X-Client-Id`): a request repeated with the same key
 * gets the first response again; the key lives in the database, so this holds across processes.
 *
 * Key states (one `idempotency_keys` row; see `src/store/IdempotencySql.ts`):
 *
 *            claim (INSERT … ON CONFLICT DO NOTHING)         execute succeeds: complete
 *   absent ──────────────────────────────────────► in flight ────────────────────────────► finished
 *     ▲ ▲                                           │    ▲                                     │
 *     │ └── execute fails, dies or is interrupted: ─┘    │ lease over (*): take over           │
 *     │     release                                      │ (same request hash only)            │
 *     │                                                  └─────────┘                           │
 *     └──────────────────────── purge: claimed more than the TTL ago ─────────────────────────┘
 *
 *   (*) A claim outlives its lease only if its process died, or if storing the response failed
 *       (database error) after execute succeeded: that caller still got its response, and a retry after
 *       the lease takes the claim over and executes again (for a formula: the duplicate-formula 409).
 *
 * Interruption: the claim statement and the start of `execute` form one uninterruptible step, and a claim
 * statement that failed or was interrupted (it may have landed all the same) is released in the background,
 * so a client that disconnects and retries does not find its own abandoned claim in flight.
 *
 * A call on a present key: another request hash → `KeyReusedWithDifferentBody` (in flight, finished or
 * stale alike: a key is bound to its first body until purged); finished → the stored response,
 * `replayed: true`; in flight within its lease → `KeyInFlight`; in flight past its lease (its process
 * died) → taken over atomically by exactly one caller, which executes.
 *
 * Time: every timestamp (claim, completion, lease cut-off, purge cut-off) comes from Effect's `Clock`
 * and is bound as a parameter, never the database's `now()`, so TestClock drives lease and TTL alike.
 * Processes sharing a database should keep their clocks within a small fraction of the lease (NTP).
 */
import { createHash } from "node:crypto"
import { PgClient } from "@effect/sql-pg"
import { Cause, Clock, Config, Context, Duration, Effect, Exit, Layer, Option, Schema } from "effect"
import { SecureRandom } from "effect/crypto"
import type { SqlError } from "effect/sql/SqlError"
import { JsonNumberText } from "../domain/JsonExact.ts"
import { IdempotencyKeyTtlHours } from "../Settings.ts"
import { DatabaseUnavailable, unavailableOnFailure } from "../store/DatabaseUnavailable.ts"
import { type Claim, type KeyRow, makeIdempotencySql } from "../store/IdempotencySql.ts"

export { DatabaseUnavailable }

/** A finished response worth replaying (201, or the duplicate-formula 409). `body` is the JSON sent on the wire. */
export interface StoredResponse {
  readonly status: number
  readonly body: unknown
  readonly headers: Readonly<Record<string, string>>
}

export interface IdempotentRequest {
  /** `X-Client-Id`, or "" when absent. Any string: it is stored as its SHA-256. */
  readonly scope: string
  /** `Idempotency-Key`: at most `maxKeyLength` characters, no NUL (the HTTP layer answers 400 otherwise). */
  readonly key: string
  /** `requestHash(body)`. */
  readonly requestHash: string
}

export interface IdempotentResult {
  readonly response: StoredResponse
  /** True when `response` is the stored first response (the HTTP layer adds `Idempotent-Replayed: true`). */
  readonly replayed: boolean
}

/** The key was first used with another request body. HTTP 422. */
export class KeyReusedWithDifferentBody extends Schema.TaggedError<KeyReusedWithDifferentBody>()(
  "KeyReusedWithDifferentBody",
  { key: Schema.String },
  { httpApiStatus: 422 }
) {}

/** The first request with this key has not finished yet; retry later. HTTP 409 (not the duplicate-formula 409). */
export class KeyInFlight extends Schema.TaggedError<KeyInFlight>()(
  "KeyInFlight",
  { key: Schema.String },
  { httpApiStatus: 409 }
) {}

/** Longest accepted `Idempotency-Key`, in UTF-16 code units (what `string.length` counts). */
export const maxKeyLength = 255

export interface IdempotencyKeysOptions {
  /** How long a key is kept after it was claimed. Default 24 hours. */
  readonly ttl?: Duration.Input | undefined
  /** How long a claim may stay in flight before another caller may take it over. Default 60 seconds. */
  readonly lease?: Duration.Input | undefined
  /** How often the purge fiber runs. Default 1 hour (a key therefore lives between `ttl` and `ttl + purgeInterval`). */
  readonly purgeInterval?: Duration.Input | undefined
  /** Rows deleted per purge statement. Default 1000. */
  readonly purgeBatchSize?: number | undefined
}

/** `IDEMPOTENCY_KEY_TTL_HOURS`: whole hours, 1–8760 (a year), default 24. A bad value names the variable. */
export const IdempotencyKeysConfig = IdempotencyKeyTtlHours.config.pipe(
  Config.map((hours) => ({ ttl: Duration.hours(hours) }))
)

export class IdempotencyKeys extends Context.Service<
  IdempotencyKeys,
  {
    /**
     * Runs `execute` at most once per (scope, key) among concurrent and repeated calls.
     * `execute` succeeds with a finished response to store (201 or duplicate 409) or fails with `E`
     * (not stored: the claim is released, so a retry with the key executes again).
     */
    run<E, R>(
      request: IdempotentRequest,
      execute: Effect.Effect<StoredResponse, E, R>
    ): Effect.Effect<IdempotentResult, E | KeyReusedWithDifferentBody | KeyInFlight | DatabaseUnavailable, R>
  }
>()("formula-intake/intake/IdempotencyKeys") {
  /** TTL from `IDEMPOTENCY_KEY_TTL_HOURS`; the other settings at their defaults. Needs the SQL client. */
  static readonly layerNoDeps: Layer.Layer<IdempotencyKeys, Config.ConfigError, PgClient.PgClient> = Layer.effect(
    IdempotencyKeys,
    Effect.flatMap(IdempotencyKeysConfig, (settings) => make(settings))
  )

  /** Explicit settings, for tests and embedding. Invalid settings are a defect. */
  static readonly layerWith = (
    options: IdempotencyKeysOptions = {}
  ): Layer.Layer<IdempotencyKeys, never, PgClient.PgClient> => Layer.effect(IdempotencyKeys, make(options))
}

/** Claim attempts in one call before giving up with `KeyInFlight` (only a key claimed and released in a tight loop gets there). */
const maxClaimAttempts = 3

const positiveMillis = (name: string, input: Duration.Input): number => {
  const millis = Duration.toMillis(Duration.fromInputUnsafe(input))
  if (!(millis > 0) || !Number.isFinite(millis)) {
    throw new RangeError(`IdempotencyKeys: ${name} must be a positive finite duration, got ${String(input)}`)
  }
  return millis
}

/** Builds the service in the current scope; the purge fiber lives as long as the scope. */
const make = Effect.fnUntraced(function* (options: IdempotencyKeysOptions) {
  const settings = yield* Effect.try({
    try: () => {
      const ttlMillis = positiveMillis("ttl", options.ttl ?? Duration.hours(24))
      const leaseMillis = positiveMillis("lease", options.lease ?? Duration.seconds(60))
      const purgeIntervalMillis = positiveMillis("purgeInterval", options.purgeInterval ?? Duration.hours(1))
      const purgeBatchSize = options.purgeBatchSize ?? 1000
      if (leaseMillis >= ttlMillis) throw new RangeError("IdempotencyKeys: lease must be shorter than ttl")
      if (!Number.isInteger(purgeBatchSize) || purgeBatchSize < 1) {
        throw new RangeError(`IdempotencyKeys: purgeBatchSize must be a positive integer, got ${purgeBatchSize}`)
      }
      return { ttlMillis, leaseMillis, purgeIntervalMillis, purgeBatchSize }
    },
    catch: (error) => error
  }).pipe(Effect.orDie)
  const q = makeIdempotencySql(yield* PgClient.PgClient)
  const layerScope = yield* Effect.scope

  // Completion and release run in an uninterruptible finalizer and may fail (database away); the
  // claim then runs out its lease, so a failure here is logged, never raised.
  const settle = (what: string, effect: Effect.Effect<boolean, DatabaseUnavailable>) =>
    effect.pipe(
      Effect.tap((owned) => (owned ? Effect.void : Effect.logWarning(`idempotency key ${what}: claim no longer ours`))),
      Effect.catchCause((cause) => Effect.logWarning(`idempotency key ${what} failed`, cause)),
      Effect.asVoid
    )

  const complete = (claim: Claim, response: StoredResponse) =>
    settle(
      "completion",
      Effect.gen(function* () {
        const completedAt = new Date(yield* Clock.currentTimeMillis)
        const responseJson = JSON.stringify({ headers: response.headers, body: response.body })
        return yield* q
          .complete({ claim, status: response.status, responseJson, completedAt })
          .pipe(unavailableOnFailure)
      })
    )

  const release = (claim: Claim) => settle("release", q.release(claim).pipe(unavailableOnFailure))

  // Cleanup for a claim statement that failed or was interrupted: it may have landed all the same. Runs in
  // the layer's scope so the caller's 503 (or interruption) is not held up by a database that is away.
  const releaseInBackground = (claim: Claim) => Effect.asVoid(Effect.forkIn(release(claim), layerScope))

  /**
   * Runs `acquire` (claim or take-over) and, when it won, `execute` under that claim. Uninterruptible
   * between the two, so an interruption either finds the claim not yet taken (it is released in the
   * background, in case it landed) or finds `execute` running (its onExit completes or releases).
   */
  const executeUnder = <E, R>(
    claim: Claim,
    acquire: Effect.Effect<boolean, SqlError>,
    execute: Effect.Effect<StoredResponse, E, R>
  ) =>
    Effect.uninterruptibleMask((restore) =>
      restore(unavailableOnFailure(acquire)).pipe(
        Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : releaseInBackground(claim))),
        Effect.flatMap((won) =>
          won
            ? restore(execute).pipe(
                Effect.onExit((exit) => (Exit.isSuccess(exit) ? complete(claim, exit.value) : release(claim))),
                Effect.map((response): Option.Option<IdempotentResult> => Option.some({ response, replayed: false }))
              )
            : Effect.succeedNone
        )
      )
    )

  const run = Effect.fn("IdempotencyKeys.run")(function* <E, R>(
    request: IdempotentRequest,
    execute: Effect.Effect<StoredResponse, E, R>
  ): Effect.fn.Return<IdempotentResult, E | KeyReusedWithDifferentBody | KeyInFlight | DatabaseUnavailable, R> {
    if (request.key.length > maxKeyLength || request.key.includes("\u0000")) {
      return yield* Effect.die(
        new RangeError(`IdempotencyKeys.run: key must be at most ${maxKeyLength} characters without NUL`)
      )
    }
    for (let attempt = 1; ; attempt++) {
      const now = yield* Clock.currentTimeMillis
      const claim: Claim = {
        scope: request.scope,
        key: request.key,
        requestHash: request.requestHash,
        claimToken: SecureRandom.uuidV4Unsafe(),
        claimedAt: new Date(now)
      }
      const fresh = yield* executeUnder(claim, q.claim(claim), execute)
      if (Option.isSome(fresh)) return fresh.value

      const row = yield* q.read(claim).pipe(unavailableOnFailure)
      if (row !== undefined) {
        if (row.requestHash !== request.requestHash) return yield* new KeyReusedWithDifferentBody({ key: request.key })
        if (row.status !== null) return { response: storedResponse(row, row.status), replayed: true }
        const staleBefore = new Date(now - settings.leaseMillis)
        if (row.claimedAt.getTime() > staleBefore.getTime()) return yield* new KeyInFlight({ key: request.key })
        const takeOver = q
          .takeOverStale({ claim, staleBefore })
          .pipe(
            Effect.tap((won) =>
              won ? Effect.logWarning("idempotency key: took over a claim whose lease ran out") : Effect.void
            )
          )
        const takenOver = yield* executeUnder(claim, takeOver, execute)
        if (Option.isSome(takenOver)) return takenOver.value
      }
      // Released, purged or taken over by someone else between our statements: look again.
      if (attempt >= maxClaimAttempts) return yield* new KeyInFlight({ key: request.key })
    }
  })

  const purgeExpired = Effect.gen(function* () {
    const claimedBefore = new Date((yield* Clock.currentTimeMillis) - settings.ttlMillis)
    let purged = 0
    while (true) {
      const deleted = yield* q
        .purgeClaimedBefore({ claimedBefore, limit: settings.purgeBatchSize })
        .pipe(unavailableOnFailure)
      purged += deleted
      if (deleted < settings.purgeBatchSize) return purged
    }
  })

  yield* purgeExpired.pipe(
    Effect.tap((purged) => (purged > 0 ? Effect.logDebug(`purged ${purged} idempotency keys`) : Effect.void)),
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause)
        : Effect.logWarning("idempotency key purge failed", cause)
    ),
    Effect.delay(Duration.millis(settings.purgeIntervalMillis)),
    Effect.forever,
    Effect.annotateLogs({ module: "IdempotencyKeys", fiber: "purge" }),
    Effect.interruptible,
    Effect.forkScoped
  )

  return IdempotencyKeys.of({ run })
})

const storedResponse = (row: KeyRow, status: number): StoredResponse => ({
  status,
  body: row.response?.body ?? null,
  headers: row.response?.headers ?? {}
})

/**
 * SHA-256 (lowercase hex) of a request body's canonical JSON, so that whitespace and object key order do
 * not matter. Canonical form, version 1: `idempotency-request/v1\n` followed by the body serialised like
 * `JSON.stringify` (RFC 8785 style) except that object keys are sorted by UTF-16 code units at every level,
 * and a `JsonNumberText` (a number `parseJsonExact` could not hold exactly) is written as its source text.
 * Walks the value with an explicit stack, so any nesting `parseJsonExact` accepts is hashed without
 * overflowing the call stack. Throws a `TypeError` for a cyclic value, as `JSON.stringify` does.
 */
export const requestHash = (body: unknown): string => {
  const hash = createHash("sha256").update("idempotency-request/v1\n", "utf8")
  let chunk = ""
  const emit = (text: string) => {
    chunk += text
    if (chunk.length >= 65_536) {
      hash.update(chunk, "utf8")
      chunk = ""
    }
  }
  const open = new Set<object>()
  const stack: Array<unknown> = [body]
  while (stack.length > 0) {
    const value = stack.pop()
    if (value instanceof Raw) {
      if (value instanceof Close) open.delete(value.of)
      emit(value.text)
      continue
    }
    if (value === null || value === undefined) {
      emit("null")
    } else if (typeof value === "string") {
      emit(JSON.stringify(value))
    } else if (typeof value === "number") {
      emit(Number.isFinite(value) ? JSON.stringify(value) : "null")
    } else if (typeof value === "boolean") {
      emit(value ? "true" : "false")
    } else if (typeof value === "bigint") {
      emit(value.toString())
    } else if (value instanceof JsonNumberText) {
      emit(value.source)
    } else if (typeof value === "object") {
      if (open.has(value)) throw new TypeError("requestHash: the body is cyclic")
      if (!Array.isArray(value) && typeof (value as { toJSON?: unknown }).toJSON === "function") {
        stack.push((value as { toJSON: () => unknown }).toJSON())
        continue
      }
      open.add(value)
      // Pushed in reverse: the stack pops the opening bracket's followers in order.
      if (Array.isArray(value)) {
        emit("[")
        stack.push(new Close(value, "]"))
        for (let i = value.length - 1; i >= 0; i--) {
          stack.push(jsonOrNull(value[i]))
          if (i > 0) stack.push(comma)
        }
      } else {
        const record = value as Record<string, unknown>
        const keys = Object.keys(record)
          .filter((k) => isJsonValue(record[k]))
          .sort()
        emit("{")
        stack.push(new Close(value, "}"))
        for (let i = keys.length - 1; i >= 0; i--) {
          stack.push(record[keys[i]!])
          stack.push(new Raw((i > 0 ? "," : "") + JSON.stringify(keys[i]) + ":"))
        }
      }
    } else {
      // Functions and symbols, like JSON.stringify inside an array.
      emit("null")
    }
  }
  return hash.update(chunk, "utf8").digest("hex")
}

class Raw {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

class Close extends Raw {
  readonly of: object
  constructor(of: object, text: string) {
    super(text)
    this.of = of
  }
}

const comma = new Raw(",")

/** Object members with these values are left out, as `JSON.stringify` does. */
const isJsonValue = (value: unknown): boolean =>
  value !== undefined && typeof value !== "function" && typeof value !== "symbol"

const jsonOrNull = (value: unknown): unknown => (isJsonValue(value) ? value : null)
