/**
 * An in-process wake-up for the webhook dispatcher. Whoever commits webhook
 * delivery rows (a submission, an ack, a dead-lettering, a test event, a
 * manual retry) calls `wake()` after the commit, so a first attempt goes out
 * at once instead of at the dispatcher's next poll. It is only a shortcut: the
 * rows are the truth, and the dispatcher still polls for deliveries written by
 * other processes and for retries that fall due.
 */
import { Context, Effect, Latch, Layer } from "effect"

export interface DeliverySignalService {
  /** Deliveries may be due now. Synchronous and cheap: safe on the hot path. */
  readonly wake: () => void
  /**
   * Completes at the first `wake` after the previous wait completed (at once if
   * one came in between), so no wake is missed between two waits. For the
   * dispatcher alone (one waiter).
   */
  readonly waitForWake: Effect.Effect<void>
}

export class DeliverySignal extends Context.Service<DeliverySignal, DeliverySignalService>()(
  "formula-intake/webhooks/DeliverySignal"
) {
  static readonly layer: Layer.Layer<DeliverySignal> = Layer.sync(DeliverySignal, () => {
    const latch = Latch.makeUnsafe(false)
    return {
      wake: () => {
        latch.openUnsafe()
      },
      waitForWake: Effect.andThen(
        latch.await,
        Effect.sync(() => {
          latch.closeUnsafe()
        })
      )
    }
  })
}
