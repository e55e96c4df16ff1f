/**
 * Judges `POST /formulas` bodies without stalling the event loop: small,
 * plainly decided bodies on the spot (`judgeInline`), everything else on one
 * worker thread (SubmissionWorker.ts), which sends back only a bounded
 * judgement — a formula of at most 500 materials, at most 100 problems, or a
 * line of text — never the parsed body. Whatever a client sends within the
 * 1 MiB limit, the event loop spends on it a copy of the bytes and a small
 * message, so every other request (`/health`, the queue, other submissions)
 * goes on being answered while a hostile body is being judged.
 *
 * One worker: bodies that need it wait their turn in its message queue,
 * leaving the other core to the event loop. It starts with the first body
 * that needs it and stops with the layer's scope; should it ever die, the
 * requests it held fail (a defect, 500) and the next request starts a new one.
 */
import { Context, Effect, Layer } from "effect"
import { Worker } from "node:worker_threads"
import { type Judgement, judgeInline } from "./SubmissionBody.ts"
import type { JudgeRequest } from "./SubmissionWorker.ts"

type Reply = { readonly id: number; readonly judgement: Judgement } | { readonly id: number; readonly defect: string }

export class SubmissionJudge extends Context.Service<
  SubmissionJudge,
  {
    /** What the body is; `withRequestHash` when an Idempotency-Key needs the body's hash. */
    judge(bytes: Uint8Array, withRequestHash: boolean): Effect.Effect<Judgement>
  }
>()("formula-intake/http/SubmissionJudge") {
  static readonly layer = Layer.effect(
    SubmissionJudge,
    Effect.gen(function* () {
      /** A worker and the requests waiting for its replies: a worker that dies fails its own, no other's. */
      interface Running {
        readonly worker: Worker
        readonly waiting: Map<number, (result: Effect.Effect<Judgement>) => void>
      }
      let nextId = 0
      let running: Running | undefined

      const start = (): Running => {
        const worker = new Worker(new URL("./SubmissionWorker.ts", import.meta.url))
        const self: Running = { worker, waiting: new Map() }
        // Never what keeps the process alive; the layer's scope stops it.
        worker.unref()
        worker.on("message", (reply: Reply) => {
          const resume = self.waiting.get(reply.id)
          if (resume === undefined) return // its request was interrupted
          self.waiting.delete(reply.id)
          resume("judgement" in reply ? Effect.succeed(reply.judgement) : Effect.die(new Error(reply.defect)))
        })
        // "error" and then "exit" may both come, turns apart: by then a new worker may serve new requests.
        const fail = (reason: string) => {
          if (running === self) running = undefined
          const resumes = [...self.waiting.values()]
          self.waiting.clear()
          for (const resume of resumes) resume(Effect.die(new Error(`the submission worker ${reason}`)))
        }
        worker.on("error", (error) => fail(`failed: ${error.message}`))
        worker.on("exit", (code) => fail(`exited with code ${code}`))
        return self
      }

      // Started by the first body that needs it: most deployments never see one, and loading the
      // worker's modules would compete with the database's start-up for the CPU.
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          const stopping = running
          running = undefined
          await stopping?.worker.terminate()
        })
      )

      const offThread = (bytes: Uint8Array, withRequestHash: boolean): Effect.Effect<Judgement> =>
        Effect.callback<Judgement>((resume) => {
          const id = nextId++
          const target = (running ??= start())
          target.waiting.set(id, resume)
          // A copy of its own, so the bytes can be moved to the worker rather than copied again.
          const own = new Uint8Array(bytes)
          const request: JudgeRequest = { id, bytes: own, withRequestHash }
          target.worker.postMessage(request, [own.buffer])
          return Effect.sync(() => target.waiting.delete(id))
        })

      return SubmissionJudge.of({
        judge: (bytes, withRequestHash) => {
          const inline = judgeInline(bytes, withRequestHash)
          return inline === undefined ? offThread(bytes, withRequestHash) : Effect.succeed(inline)
        }
      })
    })
  )
}
