/**
 * The worker thread's side of SubmissionJudge.ts: judges each body it is
 * sent and answers with the judgement (or, were `judge` ever to throw, the
 * error's text), tagged with the request's id.
 */
import { parentPort } from "node:worker_threads"
import { judge } from "./SubmissionBody.ts"

export interface JudgeRequest {
  readonly id: number
  readonly bytes: Uint8Array
  readonly withRequestHash: boolean
}

const port = parentPort
if (port === null) throw new Error("SubmissionWorker.ts runs as a worker thread (SubmissionJudge.ts starts it)")

port.on("message", ({ id, bytes, withRequestHash }: JudgeRequest) => {
  try {
    port.postMessage({ id, judgement: judge(bytes, withRequestHash) })
  } catch (error) {
    port.postMessage({ id, defect: error instanceof Error ? (error.stack ?? error.message) : String(error) })
  }
})
