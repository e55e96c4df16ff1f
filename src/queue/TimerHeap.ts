/**
 * An indexed binary min-heap of timers keyed by `dueAt`.
 *
 * Each node remembers its own position (`heapIndex`, -1 when not queued), so a
 * timer that no longer matters (the message was acked, nacked or extended) is
 * removed or re-keyed in O(log n) instead of being left behind as a stale entry:
 * the heap never holds more nodes than there are live timers, and the timer fiber
 * only ever looks at the root.
 */
export interface TimerNode {
  dueAt: number
  /** Position in the heap; -1 when not queued, `inList` when in the Timers list. */
  heapIndex: number
  timerPrev: TimerNode | undefined
  timerNext: TimerNode | undefined
}

export class TimerHeap<A extends TimerNode> {
  private readonly nodes: Array<A> = []

  get size(): number {
    return this.nodes.length
  }

  peek(): A | undefined {
    return this.nodes[0]
  }

  insert(node: A, dueAt: number): void {
    node.dueAt = dueAt
    node.heapIndex = this.nodes.length
    this.nodes.push(node)
    this.siftUp(node.heapIndex)
  }

  /** Changes the key of a queued node, or queues it if it is not. */
  update(node: A, dueAt: number): void {
    if (node.heapIndex < 0) return this.insert(node, dueAt)
    const previous = node.dueAt
    node.dueAt = dueAt
    if (dueAt < previous) this.siftUp(node.heapIndex)
    else this.siftDown(node.heapIndex)
  }

  remove(node: A): void {
    const index = node.heapIndex
    if (index < 0) return
    node.heapIndex = -1
    const last = this.nodes.pop()!
    if (index === this.nodes.length) return
    this.nodes[index] = last
    last.heapIndex = index
    this.siftDown(index)
    this.siftUp(last.heapIndex)
  }

  /** Removes and returns the earliest node if it is due at `now`. */
  popDue(now: number): A | undefined {
    const top = this.nodes[0]
    if (top === undefined || top.dueAt > now) return undefined
    this.remove(top)
    return top
  }

  private siftUp(index: number): void {
    const nodes = this.nodes
    const node = nodes[index]
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = nodes[parentIndex]
      if (parent.dueAt <= node.dueAt) break
      nodes[index] = parent
      parent.heapIndex = index
      index = parentIndex
    }
    nodes[index] = node
    node.heapIndex = index
  }

  private siftDown(index: number): void {
    const nodes = this.nodes
    const length = nodes.length
    const node = nodes[index]
    while (true) {
      const left = 2 * index + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && nodes[right].dueAt < nodes[left].dueAt ? right : left
      const childNode = nodes[child]
      if (childNode.dueAt >= node.dueAt) break
      nodes[index] = childNode
      childNode.heapIndex = index
      index = child
    }
    nodes[index] = node
    node.heapIndex = index
  }
}
