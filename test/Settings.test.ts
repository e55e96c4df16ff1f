/**
 * Settings.load: every variable read once, defaults when unset, every bad one
 * listed (secrets redacted). The process-level behaviour is in
 * test/process/startup.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Redacted } from "effect"
import { load, redactUrl } from "../src/Settings.ts"

const withEnv = (env: Record<string, string>) =>
  Effect.provideService(load, ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

describe("Settings.load", () => {
  it.effect("defaults when nothing is set", () =>
    Effect.gen(function* () {
      const settings = yield* withEnv({ LOG_FORMAT: "json" })
      assert.strictEqual(settings.port, 8080)
      assert.isUndefined(settings.host)
      assert.isUndefined(settings.databaseUrl)
      assert.strictEqual(settings.dataDir, "./data")
      assert.strictEqual(settings.databaseWaitMs, 30_000)
      assert.strictEqual(settings.logLevel, "Info")
      assert.strictEqual(settings.queueCapacity, 10_000)
    })
  )

  it.effect("reads each variable", () =>
    Effect.gen(function* () {
      const settings = yield* withEnv({
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: "postgres://u:p@db:5432/intake",
        DATABASE_WAIT_MS: "0",
        LOG_LEVEL: "DEBUG",
        LOG_FORMAT: "pretty"
      })
      assert.strictEqual(settings.port, 0)
      assert.strictEqual(settings.host, "127.0.0.1")
      assert.strictEqual(Redacted.value(settings.databaseUrl!), "postgres://u:p@db:5432/intake")
      assert.strictEqual(settings.databaseWaitMs, 0)
      assert.strictEqual(settings.logLevel, "Debug")
      assert.strictEqual(settings.logFormat, "pretty")
    })
  )

  it.effect("lists every bad variable with its value and what is expected", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        withEnv({
          PORT: "http",
          QUEUE_CAPACITY: "0",
          DATABASE_URL: "postgres://u:hunter2@/nohost",
          LOG_LEVEL: "verbose"
        })
      )
      assert.deepStrictEqual(
        error.problems.map((problem) => problem.variable),
        ["PORT", "DATABASE_URL", "LOG_LEVEL", "QUEUE_CAPACITY"]
      )
      assert.include(error.message, 'PORT="http": expected a whole number from 0 to 65535')
      assert.include(error.message, 'QUEUE_CAPACITY="0": expected a whole number from 1 to 100000000')
      assert.include(error.message, 'DATABASE_URL="postgres://u:***@/nohost": expected a postgres://')
      assert.notInclude(error.message, "hunter2")
    })
  )

  it.effect.each(["constructor", "__proto__", "toString"])(
    "LOG_LEVEL=%s is not a level (nothing inherited counts)",
    (level) =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(withEnv({ LOG_LEVEL: level }))
        assert.deepStrictEqual(
          error.problems.map((problem) => problem.variable),
          ["LOG_LEVEL"]
        )
      })
  )
})

describe("redactUrl", () => {
  it("hides the password and password parameters, keeps the rest", () => {
    assert.strictEqual(redactUrl("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db")
    assert.strictEqual(redactUrl("postgres://u@h/db?sslpassword=x"), "postgres://u@h/db?sslpassword=***")
    assert.strictEqual(redactUrl("postgres://h/db"), "postgres://h/db")
    assert.strictEqual(redactUrl("not a url://u:secret@h"), "not a url://u:***@h")
  })
})
