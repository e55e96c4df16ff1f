/**
 * Counters for hot paths: plain numbers incremented synchronously, which
 * Effect's metric registry reads when the metrics are exported
 * (`Metric.registerUnsafe`), as the queue's own metrics are (MessageQueue.ts).
 *
 * `Metric.update` looks its series up in the registry on every call and, for a
 * metric given attributes per call, builds the series key each time: ~5% of a
 * duplicate submission's CPU (npm run bench, node --cpu-prof). An addition
 * costs nothing. The series live as long as the scope that registered them.
 */
import { type Context, Effect, Metric, type Scope } from "effect"

/** Counts one more. */
export type Increment = () => void

const register = (
  metric: Metric.Counter<number>,
  attributes: Metric.Metric.Attributes,
  context: Context.Context<never>
): { readonly increment: Increment; readonly registration: Metric.Registration } => {
  let count = 0
  const registration = Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
    get: () => ({ count, incremental: true }),
    update: () => {},
    modify: () => {}
  })
  return { increment: () => void count++, registration }
}

/** The series of `metric` with `attributes`, for as long as the current scope. */
export const counter = (
  metric: Metric.Counter<number>,
  attributes: Metric.Metric.Attributes = {}
): Effect.Effect<Increment, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.contextWith((context: Context.Context<never>) => Effect.succeed(register(metric, attributes, context))),
    ({ registration }) => Effect.sync(() => registration.remove())
  ).pipe(Effect.map(({ increment }) => increment))

/**
 * Series of `metric` whose attributes are only known on the way (an HTTP
 * method and status, say): `increment(key)` counts one more for the series
 * `attributesOf(key)` names, registering it the first time the key is seen.
 */
export const counterFamily = (
  metric: Metric.Counter<number>,
  attributesOf: (key: string) => Metric.Metric.Attributes
): Effect.Effect<(key: string) => void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.contextWith((context: Context.Context<never>) =>
      Effect.succeed({ context, series: new Map<string, ReturnType<typeof register>>() })
    ),
    ({ series }) => Effect.sync(() => series.forEach(({ registration }) => registration.remove()))
  ).pipe(
    Effect.map(({ context, series }) => (key: string) => {
      let one = series.get(key)
      if (one === undefined) {
        one = register(metric, attributesOf(key), context)
        series.set(key, one)
      }
      one.increment()
    })
  )
