/**
 * The import's total for the progress bar: the file's lines counted by
 * streaming it once (newline bytes, chunk by chunk: about a second per GB, in
 * constant memory), run beside the import so the first requests do not wait
 * for it. Exact, unlike an estimate from the file size.
 */
import { createReadStream } from "node:fs"

export const countLines = async (file: string): Promise<number> => {
  let lines = 0
  let endsWithNewline = true
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++
    if (chunk.length > 0) endsWithNewline = chunk[chunk.length - 1] === 10
  }
  return endsWithNewline ? lines : lines + 1
}
