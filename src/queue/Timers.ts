/**
 * The queue's timers (visibility deadlines and nack delays): a FIFO list for the
 * common case plus an indexed heap (TimerHeap) for the rest.
 *
 * With one visibility timeout and a clock that only moves forward, deadlines
 * arrive in order, so a timer due no earlier than the list's tail is appended to
 * a doubly linked list: O(1) to add, O(1) to cancel (an ack), and the list head
 * is its earliest. Anything out of order (a shorter timeout, a nack delay, an
 * extend) goes to the heap, O(log n). The earliest timer is the earlier of the
 * two heads, so nothing is ever scanned.
 */
import { TimerHeap, type TimerNode } from "./TimerHeap.ts"

const inList = -2

export class Timers<A extends TimerNode> {
  private readonly heap = new TimerHeap<A>()
  private head: A | undefined = undefined
  private tail: A | undefined = undefined
  private listSize = 0

  get size(): number {
    return this.heap.size + this.listSize
  }

  peek(): A | undefined {
    const fromHeap = this.heap.peek()
    const fromList = this.head
    if (fromHeap === undefined) return fromList
    if (fromList === undefined) return fromHeap
    return fromList.dueAt <= fromHeap.dueAt ? fromList : fromHeap
  }

  insert(node: A, dueAt: number): void {
    const tail = this.tail
    if (tail !== undefined && dueAt < tail.dueAt) return this.heap.insert(node, dueAt)
    node.dueAt = dueAt
    node.heapIndex = inList
    node.timerPrev = tail
    node.timerNext = undefined
    if (tail === undefined) this.head = node
    else tail.timerNext = node
    this.tail = node
    this.listSize++
  }

  remove(node: A): void {
    if (node.heapIndex !== inList) return this.heap.remove(node)
    const prev = node.timerPrev as A | undefined
    const next = node.timerNext as A | undefined
    if (prev === undefined) this.head = next
    else prev.timerNext = next
    if (next === undefined) this.tail = prev
    else next.timerPrev = prev
    node.timerPrev = undefined
    node.timerNext = undefined
    node.heapIndex = -1
    this.listSize--
  }

  /** Changes the due time of a queued node, or queues it if it is not. */
  update(node: A, dueAt: number): void {
    this.remove(node)
    this.insert(node, dueAt)
  }

  /** Removes and returns the earliest node if it is due at `now`. */
  popDue(now: number): A | undefined {
    const top = this.peek()
    if (top === undefined || top.dueAt > now) return undefined
    this.remove(top)
    return top
  }
}
