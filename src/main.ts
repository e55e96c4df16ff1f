import { enableCompileCache } from "node:module"

// Most of start-up is compiling Effect's modules; Node's on-disk compile cache
// makes every start after the first about twice as fast.
enableCompileCache()

const { launch } = await import("./http/Server.ts")
launch()
