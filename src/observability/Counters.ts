/**
 * Metrics read when they are exported (`Metric.registerUnsafe`) instead of
 * pushed on every event: the queue's gauges and counters read its own
 * fields (MessageQueue.ts), and the hot path's counters are plain numbers
 * incremented synchronously.
 *
 * `Metric.update` looks its series up in the registry on every call and, for a
 * metric given attributes per call, builds the series key each time: ~5% of a
 * duplicate submission's CPU (npm run bench, node --cpu-prof). An addition
 * costs nothing. The series live as long as the scope that registered them.
 */
import { type Context, Effect, Metric, type Scope } from "effect"

type Attributes = Metric.Metric.Attributes

const ignoreUpdates = { update: () => {}, modify: () => {} }

/** The series of counter `metric` with `attributes`, whose value `get` reads at export time. */
export const registerCounterReading = (
  metric: Metric.Counter<number>,
  attributes: Attributes,
  context: Context.Context<never>,
  get: () => number
): Metric.Registration =>
  Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
    get: () => ({ count: get(), incremental: true }),
    ...ignoreUpdates
  })

/** The series of gauge `metric` with `attributes`, whose value `get` reads at export time. */
export const registerGaugeReading = (
  metric: Metric.Gauge<number>,
  attributes: Attributes,
  context: Context.Context<never>,
  get: () => number
): Metric.Registration =>
  Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
    get: () => ({ value: get() }),
    ...ignoreUpdates
  })

/** Counts one more. */
export type Increment = () => void

const register = (
  metric: Metric.Counter<number>,
  attributes: Attributes,
  context: Context.Context<never>
): { readonly increment: Increment; readonly registration: Metric.Registration } => {
  let count = 0
  const registration = registerCounterReading(metric, attributes, context, () => count)
  return { increment: () => void count++, registration }
}

/** The series of `metric` with `attributes`, for as long as the current scope. */
export const counter = (
  metric: Metric.Counter<number>,
  attributes: Attributes = {}
): Effect.Effect<Increment, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.contextWith((context: Context.Context<never>) => Effect.succeed(register(metric, attributes, context))),
    ({ registration }) => Effect.sync(() => registration.remove())
  ).pipe(Effect.map(({ increment }) => increment))

/**
 * Series of `metric` told apart by attributes whose values are only known on
 * the way (an HTTP method and status, say): `increment(...values)` counts one
 * more for the series whose attributes `names` take `values`, registering it
 * the first time those values are seen.
 */
export const counterFamily = (
  metric: Metric.Counter<number>,
  names: ReadonlyArray<string>
): Effect.Effect<(...values: ReadonlyArray<string>) => void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.contextWith((context: Context.Context<never>) =>
      Effect.succeed({ context, series: new Map<string, ReturnType<typeof register>>() })
    ),
    ({ series }) => Effect.sync(() => series.forEach(({ registration }) => registration.remove()))
  ).pipe(
    Effect.map(({ context, series }) => (...values: ReadonlyArray<string>) => {
      const key = values.join("\n")
      let one = series.get(key)
      if (one === undefined) {
        one = register(metric, Object.fromEntries(names.map((name, i) => [name, values[i] ?? ""])), context)
        series.set(key, one)
      }
      one.increment()
    })
  )
