import { enableCompileCache } from "node:module"

// Most of start-up is compiling Effect's modules; Node's on-disk compile cache
// makes every start after the first about twice as fast.
enableCompileCache()

// The settings first, with nothing else loaded: a bad configuration is
// reported in about half the time the server's modules take to load.
const Settings = await import("./Settings.ts")
const settings = Settings.loadSync()
if (settings._tag === "Failure") {
  console.error(settings.failure.message)
  process.exitCode = 1
} else {
  const { launch } = await import("./http/Server.ts")
  launch(settings.success)
}
