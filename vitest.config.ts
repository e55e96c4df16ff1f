import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // Two test files at once on two cores: many tests wait on child processes, sockets and databases, and one
    // worker (the default here) left a core idle for most of the suite.
    maxWorkers: 2,
    hookTimeout: 60_000
  }
})
