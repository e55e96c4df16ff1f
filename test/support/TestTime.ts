/**
 * Waiting in TestClock tests whose code under test also does real I/O (a
 * database backend's statements): the clock only moves when told, and a
 * fiber busy with a statement when it moves only sees the new time afterwards.
 * These wait for real events with bounds in real time, and move the clock in
 * steps until a fiber is done, so the same test runs on the memory queue
 * (done at the first step) and on one in a database.
 */
import { Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

/** Lets forked fibers run until they block (no clock involved). */
export const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

/** Polls `check` every 5 ms of real time, up to 10 s; fails naming what never happened. */
export const eventually = (what: string, check: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 2_000; i++) {
      if (yield* check) return
      yield* TestClock.withLive(Effect.sleep(5))
    }
    return yield* Effect.die(new Error(`never happened: ${what}`))
  })

/** The fiber's result within `ms` of real time (the clock not moved), else a failure. */
export const joinWithin = <A, E>(fiber: Fiber.Fiber<A, E>, ms: number) =>
  Fiber.join(fiber).pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(ms),
      orElse: () => Effect.die(new Error(`not answered within ${ms} ms without the clock moving`))
    }),
    TestClock.withLive
  )

/**
 * Moves the clock `stepMs` at a time until `fiber` is done, giving real I/O up
 * to 50 ms between steps; fails once the clock moved `limitMs` in all and the
 * fiber is still not done. Returns the fiber's result.
 */
export const advanceUntilDone = <A, E>(fiber: Fiber.Fiber<A, E>, stepMs: number, limitMs: number) =>
  Effect.gen(function* () {
    let moved = 0
    while (true) {
      yield* TestClock.adjust(stepMs)
      moved += stepMs
      yield* settle
      for (let i = 0; i < 25 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.withLive(Effect.sleep(2))
      if (fiber.pollUnsafe() !== undefined) return yield* Fiber.join(fiber)
      if (moved >= limitMs) return yield* Effect.die(new Error(`not done after the clock moved ${moved} ms`))
    }
  })
