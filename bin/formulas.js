#!/usr/bin/env node
// The `formulas` command. Plain JavaScript that any Node parses, so an old
// Node (the system's 20, say) gets a sentence instead of a syntax error: the
// CLI itself is TypeScript, which Node runs only from 22.18 (we pin 24).
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `formulas needs Node 24 (the project pins it); this is Node ${process.versions.node} at ${process.execPath}.\n` +
      "Run it as `npx formulas …` in the project directory (npx puts the pinned node first on PATH),\n" +
      "or as `node_modules/.bin/node bin/formulas.js …`.\n"
  )
  process.exit(2)
}

const { enableCompileCache } = await import("node:module")
// Most of start-up is compiling Effect's modules; the on-disk cache halves it after the first run.
enableCompileCache?.()

const args = process.argv.slice(2)
const positional = args.filter((arg) => !arg.startsWith("-"))
if (positional.length === 1 && positional[0] === "serve" && !args.some((arg) => arg === "--help" || arg === "-h")) {
  // The service, started exactly as `node src/main.ts` starts it (settings first, nothing else loaded).
  await import("../src/main.ts")
} else {
  const { run } = await import("../src/cli/main.ts")
  run(args)
}
