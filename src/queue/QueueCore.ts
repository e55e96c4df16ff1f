/**
 * The synchronous heart of `MessageQueue`: plain data structures and the message
 * state machine described in MessageQueue.ts, with no Effect in sight so every
 * operation is a few map lookups and pointer moves. Only `MessageQueue` touches
 * it; callers go through the service API.
 *
 * Per operation: reserve/commit/abort/publish O(1); receive O(1) per delivery
 * (O(log n) if its deadline is out of order, see Timers.ts); ack/release O(1) or
 * O(log n) likewise; nack with a delay and extend O(log n); a fired timer at most
 * O(log n). Nothing scans.
 */
import { Timers } from "./Timers.ts"

export type MessageState = "pending" | "ready" | "delayed" | "inFlight" | "dead"

export interface Entry {
  readonly messageId: string
  readonly body: unknown
  state: MessageState
  /** Deliveries so far; the attempt number of the current delivery. */
  deliveries: number
  /** Open reservations while pending (a reserve of a pending id joins it). */
  holders: number
  /** The one valid receipt while in flight. */
  receipt: string | undefined
  /** Index in the in-flight slot table while in flight, else -1. */
  slot: number
  /** Visibility deadline (in flight) or end of the nack delay (delayed). */
  dueAt: number
  heapIndex: number
  timerPrev: Entry | undefined
  timerNext: Entry | undefined
  /** Ready FIFO link. */
  next: Entry | undefined
  lastError: string | undefined
  deadLetteredAt: number
}

export interface Delivery {
  readonly messageId: string
  readonly receipt: string
  /** 1-based: 1 on the first delivery, 2 on the first redelivery, ... */
  readonly attempt: number
  readonly body: unknown
}

export interface DeadLetter {
  readonly messageId: string
  readonly attempts: number
  readonly lastError: string
  readonly body: unknown
  /** Epoch milliseconds, from the queue's Clock. */
  readonly deadLetteredAt: number
}

export interface Counts {
  readonly pending: number
  readonly ready: number
  readonly delayed: number
  readonly inFlight: number
  readonly deadLettered: number
}

export interface Totals {
  readonly published: number
  readonly duplicates: number
  readonly aborted: number
  readonly delivered: number
  readonly redelivered: number
  readonly acked: number
  readonly nacked: number
  readonly expired: number
  readonly released: number
  readonly deadLettered: number
  readonly redriven: number
  readonly purged: number
}

export const expiredError = "visibility timeout expired"
export const nackedError = "nacked"

/**
 * A reservation handle. `duplicate` is true when the message id was already in the
 * queue: if that message is itself still reserved, this handle joins it (the
 * message becomes deliverable when any holder commits, and goes away only when
 * every holder aborted); otherwise the handle is a no-op and commit/abort leave
 * the existing message alone.
 */
export interface Reservation {
  readonly messageId: string
  readonly duplicate: boolean
}

export class ReservationHandle implements Reservation {
  readonly messageId: string
  readonly duplicate: boolean
  readonly owner: QueueCore
  /** The reserved entry; undefined for a no-op duplicate. */
  readonly entry: Entry | undefined
  settled = false
  constructor(owner: QueueCore, messageId: string, duplicate: boolean, entry: Entry | undefined) {
    this.owner = owner
    this.messageId = messageId
    this.duplicate = duplicate
    this.entry = entry
  }
}

export interface CoreOptions {
  readonly capacity: number
  readonly maxDeliveries: number
  /** Called with the number of messages that just became ready. */
  readonly onReady: (count: number) => void
  /** Called when a timer is scheduled, with its due time. */
  readonly onTimer: (dueAt: number) => void
  /** Called when a message stopped counting against the capacity (acked, aborted, dead-lettered). */
  readonly onRoom: () => void
  /** Called when a message was just dead-lettered (expiry or nack at maxDeliveries). */
  readonly onDead: (entry: Entry) => void
}

const randomId = (): string => {
  const bytes = new Uint8Array(6)
  globalThis.crypto.getRandomValues(bytes)
  let out = ""
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0")
  return out
}

export class QueueCore {
  readonly capacity: number
  readonly maxDeliveries: number
  private readonly onReady: (count: number) => void
  private readonly onTimer: (dueAt: number) => void
  private readonly onRoom: () => void
  private readonly onDead: (entry: Entry) => void

  private readonly entries = new Map<string, Entry>()
  /**
   * In-flight entries by slot. A receipt is `<slot>.<delivery seq>.<random queue id>`:
   * its slot finds the entry without a map (receipts are created and dropped on
   * every delivery, and hashing them was a fifth of the hot path), and comparing
   * the whole string with the entry's current receipt rejects stale ones.
   */
  private readonly slots: Array<Entry | undefined> = []
  private readonly freeSlots: Array<number> = []
  private readonly dead = new Map<string, Entry>()
  private readonly timers = new Timers<Entry>()
  private head: Entry | undefined = undefined
  private tail: Entry | undefined = undefined

  private readonly receiptSuffix = "." + randomId()
  private receiptSeq = 0

  pending = 0
  ready = 0
  delayed = 0
  inFlight = 0

  published = 0
  duplicates = 0
  aborted = 0
  delivered = 0
  redelivered = 0
  acked = 0
  nacked = 0
  expired = 0
  released = 0
  deadLetteredTotal = 0
  redriven = 0
  purged = 0

  constructor(options: CoreOptions) {
    this.capacity = options.capacity
    this.maxDeliveries = options.maxDeliveries
    this.onReady = options.onReady
    this.onTimer = options.onTimer
    this.onRoom = options.onRoom
    this.onDead = options.onDead
  }

  /** Messages counted against the capacity (dead letters are not). */
  get size(): number {
    return this.pending + this.ready + this.delayed + this.inFlight
  }

  get deadLettered(): number {
    return this.dead.size
  }

  counts(): Counts {
    return {
      pending: this.pending,
      ready: this.ready,
      delayed: this.delayed,
      inFlight: this.inFlight,
      deadLettered: this.dead.size
    }
  }

  totals(): Totals {
    return {
      published: this.published,
      duplicates: this.duplicates,
      aborted: this.aborted,
      delivered: this.delivered,
      redelivered: this.redelivered,
      acked: this.acked,
      nacked: this.nacked,
      expired: this.expired,
      released: this.released,
      deadLettered: this.deadLetteredTotal,
      redriven: this.redriven,
      purged: this.purged
    }
  }

  nextDueAt(): number | undefined {
    return this.timers.peek()?.dueAt
  }

  // --- publishing -------------------------------------------------------------

  /** A reservation, or undefined when the queue is full. */
  reserve(messageId: string, body: unknown): ReservationHandle | undefined {
    const existing = this.entries.get(messageId)
    if (existing !== undefined) {
      this.duplicates++
      if (existing.state === "pending") {
        existing.holders++
        return new ReservationHandle(this, messageId, true, existing)
      }
      return new ReservationHandle(this, messageId, true, undefined)
    }
    const entry = this.add(messageId, body)
    return entry === undefined ? undefined : new ReservationHandle(this, messageId, false, entry)
  }

  private add(messageId: string, body: unknown): Entry | undefined {
    if (this.size >= this.capacity) return undefined
    const entry: Entry = {
      messageId,
      body,
      state: "pending",
      deliveries: 0,
      holders: 1,
      receipt: undefined,
      slot: -1,
      dueAt: 0,
      heapIndex: -1,
      timerPrev: undefined,
      timerNext: undefined,
      next: undefined,
      lastError: undefined,
      deadLetteredAt: 0
    }
    this.entries.set(messageId, entry)
    this.pending++
    return entry
  }

  commit(reservation: ReservationHandle): void {
    if (reservation.settled) return
    reservation.settled = true
    const entry = reservation.entry
    if (entry === undefined) return
    entry.holders--
    if (entry.state === "pending") this.makeReady(entry)
  }

  abort(reservation: ReservationHandle): void {
    if (reservation.settled) return
    reservation.settled = true
    const entry = reservation.entry
    if (entry === undefined) return
    entry.holders--
    if (entry.state !== "pending" || entry.holders > 0) return
    this.pending--
    this.aborted++
    this.entries.delete(entry.messageId)
    this.onRoom()
  }

  /**
   * One-shot reserve + commit: true if added, false for a duplicate id (a pending
   * one is committed: it joins and commits), undefined when full.
   */
  publish(messageId: string, body: unknown): boolean | undefined {
    const existing = this.entries.get(messageId)
    if (existing !== undefined) {
      this.duplicates++
      if (existing.state === "pending") this.makeReady(existing)
      return false
    }
    const entry = this.add(messageId, body)
    if (entry === undefined) return undefined
    entry.holders = 0
    this.makeReady(entry)
    return true
  }

  private makeReady(entry: Entry): void {
    this.pending--
    this.published++
    this.pushBack(entry)
    this.onReady(1)
  }

  // --- consuming --------------------------------------------------------------

  take(max: number, now: number, visibilityMs: number): Array<Delivery> {
    const out: Array<Delivery> = []
    const dueAt = now + visibilityMs
    let earliest = Infinity
    while (out.length < max) {
      const entry = this.head
      if (entry === undefined) break
      this.head = entry.next
      if (this.head === undefined) this.tail = undefined
      entry.next = undefined
      this.ready--
      entry.state = "inFlight"
      this.inFlight++
      const attempt = ++entry.deliveries
      const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.slots.length
      this.slots[slot] = entry
      entry.slot = slot
      const receipt = `${slot}.${this.receiptSeq++}${this.receiptSuffix}`
      entry.receipt = receipt
      this.timers.insert(entry, dueAt)
      this.delivered++
      if (attempt > 1) this.redelivered++
      out.push({ messageId: entry.messageId, receipt, attempt, body: entry.body })
      earliest = dueAt
    }
    if (earliest !== Infinity) this.onTimer(earliest)
    // A receive that leaves messages behind passes the wake-up on, so a waiter
    // woken for a message another receive took does not strand the rest.
    if (this.ready > 0) this.onReady(this.ready)
    return out
  }

  /** The in-flight entry whose current receipt this is (nothing changes), or undefined. */
  current(receipt: string): Entry | undefined {
    return this.lookup(receipt)
  }

  /** Deliveries so far of a message the queue holds (in any state), or undefined. */
  attemptsOf(messageId: string): number | undefined {
    return this.entries.get(messageId)?.deliveries
  }

  /**
   * Forgets a message whose ack was recorded after its receipt went stale, if it
   * has been dead-lettered meanwhile: it is processed, so it must not stay a dead
   * letter (a redrive would deliver it again). In any other state its new owner
   * settles it as usual.
   */
  forgetProcessed(entry: Entry): void {
    if (entry.state !== "dead" || this.dead.get(entry.messageId) !== entry) return
    this.dead.delete(entry.messageId)
    this.entries.delete(entry.messageId)
  }

  /**
   * A dead letter recovered from storage at start-up: listed, never delivered
   * until redriven. False (nothing changes) when the id is already present.
   */
  restoreDead(letter: DeadLetter): boolean {
    if (this.entries.has(letter.messageId)) return false
    const entry: Entry = {
      messageId: letter.messageId,
      body: letter.body,
      state: "dead",
      deliveries: letter.attempts,
      holders: 0,
      receipt: undefined,
      slot: -1,
      dueAt: 0,
      heapIndex: -1,
      timerPrev: undefined,
      timerNext: undefined,
      next: undefined,
      lastError: letter.lastError,
      deadLetteredAt: letter.deadLetteredAt
    }
    this.entries.set(entry.messageId, entry)
    this.dead.set(entry.messageId, entry)
    return true
  }

  /** The acked entry, or undefined for an invalid receipt. */
  ack(receipt: string): Entry | undefined {
    const entry = this.settle(receipt)
    if (entry === undefined) return undefined
    this.inFlight--
    this.entries.delete(entry.messageId)
    this.acked++
    this.onRoom()
    return entry
  }

  /** Back to ready (after `delayMs`), or to the dead letters once out of deliveries. */
  nack(receipt: string, now: number, delayMs: number, error: string | undefined): boolean {
    const entry = this.settle(receipt)
    if (entry === undefined) return false
    this.inFlight--
    this.nacked++
    entry.lastError = error ?? nackedError
    if (entry.deliveries >= this.maxDeliveries) {
      this.toDead(entry, now)
    } else if (delayMs > 0) {
      entry.state = "delayed"
      this.delayed++
      this.timers.insert(entry, now + delayMs)
      this.onTimer(entry.dueAt)
    } else {
      this.pushBack(entry)
      this.onReady(1)
    }
    return true
  }

  /** Back to the front of the ready list without counting the delivery (consumer shutdown). */
  release(receipt: string): boolean {
    const entry = this.settle(receipt)
    if (entry === undefined) return false
    this.inFlight--
    this.released++
    entry.deliveries--
    this.pushFront(entry)
    this.onReady(1)
    return true
  }

  extend(receipt: string, now: number, visibilityMs: number): boolean {
    const entry = this.lookup(receipt)
    if (entry === undefined) return false
    this.timers.update(entry, now + visibilityMs)
    this.onTimer(entry.dueAt)
    return true
  }

  /** Fires every timer due at `now`; returns how many messages became ready. */
  fireDue(now: number): number {
    let madeReady = 0
    while (true) {
      const entry = this.timers.popDue(now)
      if (entry === undefined) break
      if (entry.state === "inFlight") {
        this.freeSlot(entry)
        this.inFlight--
        this.expired++
        entry.lastError = expiredError
        if (entry.deliveries >= this.maxDeliveries) {
          this.toDead(entry, now)
          continue
        }
      } else {
        this.delayed--
      }
      this.pushBack(entry)
      madeReady++
    }
    if (madeReady > 0) this.onReady(madeReady)
    return madeReady
  }

  // --- dead letters -----------------------------------------------------------

  deadLetters(): Array<DeadLetter> {
    const out: Array<DeadLetter> = []
    for (const entry of this.dead.values()) {
      out.push({
        messageId: entry.messageId,
        attempts: entry.deliveries,
        lastError: entry.lastError ?? nackedError,
        body: entry.body,
        deadLetteredAt: entry.deadLetteredAt
      })
    }
    return out
  }

  /**
   * Dead letters back to ready, oldest first, attempts counted from 1 again. Only
   * as many as the free capacity allows; the rest stay dead-lettered. Returns the ids redriven.
   */
  redrive(messageIds: ReadonlyArray<string> | undefined): Array<string> {
    const redriven: Array<string> = []
    const candidates = messageIds ?? Array.from(this.dead.keys())
    for (const messageId of candidates) {
      if (this.size >= this.capacity) break
      const entry = this.dead.get(messageId)
      if (entry === undefined) continue
      this.dead.delete(messageId)
      entry.deliveries = 0
      entry.lastError = undefined
      this.pushBack(entry)
      redriven.push(messageId)
    }
    this.redriven += redriven.length
    if (redriven.length > 0) this.onReady(redriven.length)
    return redriven
  }

  /** Drops dead letters for good; returns the ids dropped. */
  purge(messageIds: ReadonlyArray<string> | undefined): Array<string> {
    const purged: Array<string> = []
    const candidates = messageIds ?? Array.from(this.dead.keys())
    for (const messageId of candidates) {
      const entry = this.dead.get(messageId)
      if (entry === undefined) continue
      this.dead.delete(messageId)
      this.entries.delete(messageId)
      purged.push(messageId)
    }
    this.purged += purged.length
    return purged
  }

  // --- internals --------------------------------------------------------------

  /** The in-flight entry whose current receipt this is. */
  private lookup(receipt: string): Entry | undefined {
    // parseInt reads the leading slot number; the full comparison does the rest.
    const entry = this.slots[Number.parseInt(receipt, 10)]
    return entry !== undefined && entry.receipt === receipt ? entry : undefined
  }

  private freeSlot(entry: Entry): void {
    this.slots[entry.slot] = undefined
    this.freeSlots.push(entry.slot)
    entry.slot = -1
    entry.receipt = undefined
  }

  /** Invalidates a current receipt and stops its visibility timer. */
  private settle(receipt: string): Entry | undefined {
    const entry = this.lookup(receipt)
    if (entry === undefined) return undefined
    this.freeSlot(entry)
    this.timers.remove(entry)
    return entry
  }

  private toDead(entry: Entry, now: number): void {
    entry.state = "dead"
    entry.deadLetteredAt = now
    this.dead.set(entry.messageId, entry)
    this.deadLetteredTotal++
    this.onRoom()
    this.onDead(entry)
  }

  private pushBack(entry: Entry): void {
    entry.state = "ready"
    entry.next = undefined
    if (this.tail === undefined) this.head = entry
    else this.tail.next = entry
    this.tail = entry
    this.ready++
  }

  private pushFront(entry: Entry): void {
    entry.state = "ready"
    entry.next = this.head
    this.head = entry
    if (this.tail === undefined) this.tail = entry
    this.ready++
  }
}
