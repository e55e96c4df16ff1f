import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Schema } from "effect"
import { TimerHeap, type TimerNode } from "../../src/queue/TimerHeap.ts"
import { Timers } from "../../src/queue/Timers.ts"

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

const Op = Schema.Union([
  Schema.TaggedStruct("Insert", { node: int(0, 30), dueAt: int(0, 1_000) }),
  Schema.TaggedStruct("Update", { node: int(0, 30), dueAt: int(0, 1_000) }),
  Schema.TaggedStruct("Remove", { node: int(0, 30) }),
  Schema.TaggedStruct("PopDue", { now: int(0, 1_000) })
])

interface Node extends TimerNode {
  readonly name: number
}

interface TimerQueue {
  readonly size: number
  peek(): Node | undefined
  insert(node: Node, dueAt: number): void
  update(node: Node, dueAt: number): void
  remove(node: Node): void
  popDue(now: number): Node | undefined
}

describe.each([
  ["TimerHeap", () => new TimerHeap<Node>()],
  ["Timers (list + heap)", () => new Timers<Node>()]
] as const)("%s", (_, make: () => TimerQueue) => {
  it.prop(
    "behaves like a sorted list of live timers",
    [Arbitrary.array(Arbitrary.schema(Op), { maxLength: 200 })],
    ([ops]) => {
      const heap = make()
      const nodes = Array.from(
        { length: 31 },
        (_, name): Node => ({
          name,
          dueAt: 0,
          heapIndex: -1,
          timerPrev: undefined,
          timerNext: undefined
        })
      )
      const live = new Map<number, number>()
      for (const op of ops) {
        switch (op._tag) {
          case "Insert":
            if (live.has(op.node)) break
            heap.insert(nodes[op.node], op.dueAt)
            live.set(op.node, op.dueAt)
            break
          case "Update":
            heap.update(nodes[op.node], op.dueAt)
            live.set(op.node, op.dueAt)
            break
          case "Remove":
            heap.remove(nodes[op.node])
            live.delete(op.node)
            break
          case "PopDue": {
            const popped = heap.popDue(op.now)
            const earliest = Math.min(...live.values())
            if (earliest <= op.now) {
              assert.isDefined(popped)
              assert.strictEqual(popped!.dueAt, earliest)
              assert.strictEqual(live.get(popped!.name), earliest)
              live.delete(popped!.name)
              assert.strictEqual(popped!.heapIndex, -1)
              assert.isUndefined(popped!.timerNext)
            } else {
              assert.isUndefined(popped)
            }
          }
        }
        assert.strictEqual(heap.size, live.size)
        assert.strictEqual(heap.peek()?.dueAt, live.size === 0 ? undefined : Math.min(...live.values()))
      }
    },
    { arbitrary: { runs: 300, size: 200 } }
  )
})
