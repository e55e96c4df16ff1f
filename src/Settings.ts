/**
 * Every environment variable the service reads, defined once: the variable,
 * its default, and what a valid value looks like.
 *
 * `load` reads them all through Effect `Config` before anything is opened and
 * fails with one `SettingsInvalid` listing every bad variable (name, value,
 * what is expected), so an operator fixes them all in one go. The layers that
 * read their own setting for library users (`MessageQueue.layer`,
 * `FingerprintCache.layer`, …) use the same definitions; the server reads
 * `load` once and hands the values to the layers explicitly.
 */
import { Config, Effect, type LogLevel, Redacted, Result, Schema } from "effect"
import { realpathSync } from "node:fs"
import { isIP } from "node:net"
import { dirname, resolve } from "node:path"

/** One environment variable. */
export interface Setting<A> {
  readonly variable: string
  /** What a valid value looks like, completing "expected …". */
  readonly expected: string
  readonly config: Config.Config<A>
  /** How a bad value is shown (secrets redacted); default: as it is. */
  readonly show?: ((raw: string) => string) | undefined
}

const setting = <A>(
  variable: string,
  expected: string,
  config: Config.Config<A>,
  show?: (raw: string) => string
): Setting<A> => ({ variable, expected, config, show })

/** A whole number in range; a value that is not one fails naming the variable. */
export const intSetting = (
  variable: string,
  range: { readonly min: number; readonly max: number },
  fallback: number,
  unit = ""
): Setting<number> =>
  setting(
    variable,
    `a whole number${unit} from ${range.min} to ${range.max}`,
    Config.schema(Schema.Int.check(Schema.isBetween({ minimum: range.min, maximum: range.max })), variable).pipe(
      Config.withDefault(fallback)
    )
  )

/** A string passing `check` (which returns why not, or undefined). */
const stringSetting = <A>(
  variable: string,
  check: (value: string) => string | undefined,
  parse: (value: string) => A
) =>
  Config.schema(Schema.String.check(Schema.makeFilter((value: string) => check(value) ?? true)), variable).pipe(
    Config.map(parse)
  )

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export const Port = intSetting("PORT", { min: 0, max: 65535 }, 8080)

/** A host name or an IP address; whether it is one of this machine's is found out when the port is checked. */
const hostName =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/
export const Host: Setting<string | undefined> = setting(
  "HOST",
  "an IP address or host name of this machine (unset: all interfaces)",
  Config.option(
    stringSetting(
      "HOST",
      (value) => (isIP(value) !== 0 || hostName.test(value) ? undefined : "not an address"),
      (value) => value
    )
  ).pipe(Config.map((host) => (host._tag === "Some" ? host.value : undefined)))
)

// ---------------------------------------------------------------------------------------------------------------
// Database

/** `postgres://user:***@host/db`: the password (and any password parameter) hidden. */
export const redactUrl = (raw: string): string => {
  try {
    const url = new URL(raw)
    if (url.password !== "") url.password = "***"
    for (const key of ["password", "sslpassword"]) if (url.searchParams.has(key)) url.searchParams.set(key, "***")
    return url.toString()
  } catch {
    return raw.replace(/\/\/([^/@]*?):[^/@]*@/, "//$1:***@")
  }
}

export const DatabaseUrl: Setting<Redacted.Redacted<string> | undefined> = setting(
  "DATABASE_URL",
  "a postgres:// or postgresql:// URL (unset: the embedded database under DATA_DIR)",
  Config.option(
    Config.schema(
      Schema.Redacted(
        Schema.String.check(
          Schema.makeFilter((value: string) => {
            try {
              const url = new URL(value)
              return (url.protocol === "postgres:" || url.protocol === "postgresql:") && url.hostname !== ""
            } catch {
              return false
            }
          })
        )
      ),
      "DATABASE_URL"
    )
  ).pipe(Config.map((url) => (url._tag === "Some" ? url.value : undefined))),
  redactUrl
)

// Pseudo-filesystems: nothing can be stored there, and Node's recursive mkdir
// never returns on a path under /proc.
const pseudoFilesystems = ["/proc", "/sys"]

/** The path with symlinks of its longest existing prefix resolved (reads the filesystem, opens nothing). */
const realPath = (path: string): string => {
  const absolute = resolve(path)
  for (
    let prefix = absolute, rest = "";
    ;
    rest = prefix.slice(dirname(prefix).length) + rest, prefix = dirname(prefix)
  ) {
    try {
      return realpathSync(prefix) + rest
    } catch {
      if (prefix === dirname(prefix)) return absolute
    }
  }
}

export const DataDir: Setting<string> = setting(
  "DATA_DIR",
  "a directory path on a real filesystem (not under /proc or /sys)",
  stringSetting(
    "DATA_DIR",
    (value) => {
      if (value.trim() === "") return "empty"
      const real = realPath(value)
      return pseudoFilesystems.some((root) => real === root || real.startsWith(`${root}/`))
        ? "a pseudo-filesystem"
        : undefined
    },
    (value) => value
  ).pipe(Config.withDefault("./data"))
)

export const DatabaseWaitMs = intSetting("DATABASE_WAIT_MS", { min: 0, max: 3_600_000 }, 30_000, " of milliseconds")

// ---------------------------------------------------------------------------------------------------------------
// Logging

const logLevels: Record<string, LogLevel.LogLevel> = {
  all: "All",
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
}

export const LogLevelSetting: Setting<LogLevel.LogLevel> = setting(
  "LOG_LEVEL",
  "one of trace, debug, info, warn, error, fatal, none",
  stringSetting(
    "LOG_LEVEL",
    (value) => (Object.hasOwn(logLevels, value.toLowerCase()) ? undefined : "not a level"),
    (value) => logLevels[value.toLowerCase()]!
  ).pipe(Config.withDefault<LogLevel.LogLevel>("Info"))
)

/** One line per request (src/http/AccessLog.ts). */
export const AccessLogSetting: Setting<boolean> = setting(
  "ACCESS_LOG",
  "true or false",
  Config.Boolean("ACCESS_LOG").pipe(Config.withDefault(true))
)

export type LogFormat = "json" | "pretty"

/** Default: pretty for a person at a terminal, json for a log collector. */
export const LogFormatSetting: Setting<LogFormat> = setting(
  "LOG_FORMAT",
  "json or pretty",
  Config.schema(Schema.Literals(["json", "pretty"]), "LOG_FORMAT").pipe(
    Config.withDefault<LogFormat>(process.stdout.isTTY ? "pretty" : "json")
  )
)

// ---------------------------------------------------------------------------------------------------------------
// Runtime

export const QueueCapacity = intSetting("QUEUE_CAPACITY", { min: 1, max: 100_000_000 }, 10_000)
export const QueueVisibilityTimeoutMs = intSetting(
  "QUEUE_VISIBILITY_TIMEOUT_MS",
  { min: 1, max: 43_200_000 },
  30_000,
  " of milliseconds"
)
export const QueueMaxDeliveries = intSetting("QUEUE_MAX_DELIVERIES", { min: 1, max: 1_000 }, 5)

export type QueueBackend = "memory" | "postgres"

/**
 * Where the queue lives: `memory` (default, fastest; one instance per database, guarded by an
 * advisory lock) or `postgres` (the outbox table is the queue; any number of instances on one database).
 */
export const QueueBackendSetting: Setting<QueueBackend> = setting(
  "QUEUE_BACKEND",
  "memory or postgres",
  Config.schema(Schema.Literals(["memory", "postgres"]), "QUEUE_BACKEND").pipe(
    Config.withDefault<QueueBackend>("memory")
  )
)
/** `postgres` backend: how often an idle long poll looks for due messages anyway (delays ending, expiries, a missed NOTIFY). */
export const QueuePollIntervalMs = intSetting(
  "QUEUE_POLL_INTERVAL_MS",
  { min: 10, max: 60_000 },
  1_000,
  " of milliseconds"
)
/**
 * How long a starting instance waits (a rolling restart) before it refuses to start for another instance that
 * excludes it: an in-memory queue on the same database schema (store/InstanceLock.ts; for either backend), or any
 * process on the same DATA_DIR (store/DataDirLock.ts).
 */
export const InstanceLockWaitMs = intSetting(
  "INSTANCE_LOCK_WAIT_MS",
  { min: 0, max: 3_600_000 },
  30_000,
  " of milliseconds"
)
export const FingerprintCacheSize = intSetting("FINGERPRINT_CACHE_SIZE", { min: 0, max: 10_000_000 }, 50_000)
export const OutboxRelayIntervalMs = intSetting(
  "OUTBOX_RELAY_INTERVAL_MS",
  { min: 10, max: 3_600_000 },
  5_000,
  " of milliseconds"
)
export const IdempotencyKeyTtlHours = intSetting("IDEMPOTENCY_KEY_TTL_HOURS", { min: 1, max: 8760 }, 24, " of hours")
export const GroupCommitMaxBatch = intSetting("GROUP_COMMIT_MAX_BATCH", { min: 1, max: 1000 }, 64)
export const GroupCommitLingerMs = intSetting("GROUP_COMMIT_LINGER_MS", { min: 0, max: 1000 }, 0, " of milliseconds")
export const GroupCommitWorkers = intSetting("GROUP_COMMIT_WORKERS", { min: 1, max: 64 }, 2)

// ---------------------------------------------------------------------------------------------------------------
// Webhooks

const durationUnits: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "0,5s,5m,30m,2h" → [0, 5000, 300000, 1800000, 7200000]; undefined when any step is not a duration. */
export const parseRetrySchedule = (value: string): ReadonlyArray<number> | undefined => {
  const steps = value.split(",").map((step) => step.trim())
  if (steps.length === 0 || steps.length > 50) return undefined
  const millis: Array<number> = []
  for (const step of steps) {
    const match = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(step)
    if (match === null || (match[2] === undefined && match[1] !== "0")) return undefined
    const value = Number(match[1]) * durationUnits[match[2] ?? "ms"]!
    if (value > 30 * 86_400_000) return undefined
    millis.push(value)
  }
  return millis
}

/** Delays of a delivery's successive attempts (the first is usually 0: at once). */
export const WebhookRetrySchedule: Setting<ReadonlyArray<number>> = setting(
  "WEBHOOK_RETRY_SCHEDULE",
  "a comma-separated list of delays such as 0,5s,5m,30m,2h (units ms, s, m, h, d; each at most 30d)",
  stringSetting(
    "WEBHOOK_RETRY_SCHEDULE",
    (value) => (parseRetrySchedule(value) === undefined ? "not a schedule" : undefined),
    (value) => parseRetrySchedule(value)!
  ).pipe(Config.withDefault<ReadonlyArray<number>>(parseRetrySchedule("0,5s,5m,30m,2h,5h,10h,10h")!))
)
export const WebhookConcurrency = intSetting("WEBHOOK_CONCURRENCY", { min: 1, max: 1024 }, 32)
export const WebhookDisableAfterHours = intSetting(
  "WEBHOOK_DISABLE_AFTER_HOURS",
  { min: 1, max: 8760 },
  120,
  " of hours"
)
/** Development and tests: endpoints may resolve to loopback and private addresses. */
export const WebhookAllowPrivateNetworks: Setting<boolean> = setting(
  "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
  "true or false",
  Config.Boolean("WEBHOOK_ALLOW_PRIVATE_NETWORKS").pipe(Config.withDefault(false))
)

// ---------------------------------------------------------------------------------------------------------------
// All of them, read once

/** Every setting, by the name the program uses. */
export const definitions = {
  port: Port,
  host: Host,
  databaseUrl: DatabaseUrl,
  dataDir: DataDir,
  databaseWaitMs: DatabaseWaitMs,
  logLevel: LogLevelSetting,
  logFormat: LogFormatSetting,
  accessLog: AccessLogSetting,
  queueCapacity: QueueCapacity,
  queueVisibilityTimeoutMs: QueueVisibilityTimeoutMs,
  queueMaxDeliveries: QueueMaxDeliveries,
  queueBackend: QueueBackendSetting,
  queuePollIntervalMs: QueuePollIntervalMs,
  instanceLockWaitMs: InstanceLockWaitMs,
  fingerprintCacheSize: FingerprintCacheSize,
  outboxRelayIntervalMs: OutboxRelayIntervalMs,
  idempotencyKeyTtlHours: IdempotencyKeyTtlHours,
  groupCommitMaxBatch: GroupCommitMaxBatch,
  groupCommitLingerMs: GroupCommitLingerMs,
  groupCommitWorkers: GroupCommitWorkers,
  webhookRetrySchedule: WebhookRetrySchedule,
  webhookConcurrency: WebhookConcurrency,
  webhookDisableAfterHours: WebhookDisableAfterHours,
  webhookAllowPrivateNetworks: WebhookAllowPrivateNetworks
} as const

export type Settings = { readonly [K in keyof typeof definitions]: Setting.Value<(typeof definitions)[K]> }

export declare namespace Setting {
  export type Value<S> = S extends Setting<infer A> ? A : never
}

export interface Problem {
  readonly variable: string
  /** As given, secrets redacted. */
  readonly value: string
  readonly expected: string
}

/** One or more bad variables; `message` lists them all, one per line. */
export class SettingsInvalid extends Schema.TaggedError<SettingsInvalid>()("SettingsInvalid", {
  problems: Schema.Array(Schema.Struct({ variable: Schema.String, value: Schema.String, expected: Schema.String }))
}) {
  override get message() {
    return [
      `invalid configuration, nothing was started (${this.problems.length} bad variable${this.problems.length === 1 ? "" : "s"}):`,
      ...this.problems.map((problem) => `  ${problem.variable}=${problem.value}: expected ${problem.expected}`)
    ].join("\n")
  }
}

const describeBad = <A>(definition: Setting<A>) =>
  Effect.map(Effect.result(Config.String(definition.variable)), (raw): Problem => {
    const value = Result.isSuccess(raw) ? JSON.stringify((definition.show ?? String)(raw.success)) : "(unreadable)"
    return { variable: definition.variable, value, expected: definition.expected }
  })

/** Reads every setting from the current ConfigProvider (the environment); fails listing every bad one. */
export const load: Effect.Effect<Settings, SettingsInvalid> = Effect.gen(function* () {
  const values: Record<string, unknown> = {}
  const problems: Array<Problem> = []
  for (const [key, definition] of Object.entries(definitions) as Array<[string, Setting<unknown>]>) {
    const result = yield* Effect.result(definition.config)
    if (Result.isSuccess(result)) values[key] = result.success
    else problems.push(yield* describeBad(definition))
  }
  if (problems.length > 0) return yield* new SettingsInvalid({ problems })
  return values as Settings
})

/** `load`, run at once: for the process's entry point, before anything else is loaded (main.ts). */
export const loadSync = (): Result.Result<Settings, SettingsInvalid> => Effect.runSync(Effect.result(load))

/** The database the settings choose. */
export type DatabaseChoice =
  | { readonly _tag: "Postgres"; readonly url: Redacted.Redacted<string> }
  | { readonly _tag: "Embedded"; readonly dataDir: string }

export const databaseChoice = (settings: Pick<Settings, "databaseUrl" | "dataDir">): DatabaseChoice =>
  settings.databaseUrl === undefined
    ? { _tag: "Embedded", dataDir: settings.dataDir }
    : { _tag: "Postgres", url: settings.databaseUrl }

/** The database setting as a Config (for `Database.layer`). */
export const DatabaseConfig: Config.Config<DatabaseChoice> = Config.all({
  databaseUrl: DatabaseUrl.config,
  dataDir: DataDir.config
}).pipe(Config.map(databaseChoice))

/**
 * A start-up failure that is the operator's to fix (a port in use, a database
 * that cannot be reached): `message` says what and names the variable.
 */
export class StartupFailed extends Schema.TaggedError<StartupFailed>()("StartupFailed", {
  message: Schema.String
}) {}
