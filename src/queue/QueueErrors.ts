import { Schema } from "effect"

/**
 * The queue holds `capacity` messages (pending + ready + delayed + in-flight) and
 * refuses another one at once: back-pressure for the publisher, never a buffer.
 */
export class QueueFull extends Schema.TaggedError<QueueFull>()(
  "QueueFull",
  {
    messageId: Schema.String,
    capacity: Schema.Number
  },
  { httpApiStatus: 503 }
) {
  override get message(): string {
    return `Message queue is full (capacity ${this.capacity}); message ${this.messageId} was not accepted`
  }
}

/**
 * A receipt that does not name a current delivery: never issued, already acked or
 * nacked, or superseded because the message was redelivered (its visibility timeout
 * expired) since. A late ack with such a receipt never touches the message.
 */
export class ReceiptInvalid extends Schema.TaggedError<ReceiptInvalid>()(
  "ReceiptInvalid",
  {
    receipt: Schema.String
  },
  { httpApiStatus: 409 }
) {
  override get message(): string {
    return `Receipt ${this.receipt} is unknown, stale (the message was redelivered since) or already settled`
  }
}

/**
 * The ack's settlement could not be recorded (the storage behind the queue's
 * `onAck` hook failed). Nothing changed: the message is still in flight under
 * the same receipt, so the consumer may ack again, or it is redelivered.
 */
export class AckNotRecorded extends Schema.TaggedError<AckNotRecorded>()(
  "AckNotRecorded",
  {
    messageId: Schema.String,
    message: Schema.String
  },
  { httpApiStatus: 503 }
) {}
