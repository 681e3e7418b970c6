import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/e2e/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    // Tests use real btrfs, nspawn and agent processes: generous limits, one fork per file.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // One file at a time: a container started by one file's fleet gets its own copy of every mount that
    // exists at that moment, other files' loop-mounted pools included, and holds their loop devices
    // until it stops; files running side by side would also share 2 cores with real nspawn workloads.
    fileParallelism: false,
    reporters: process.env.CI === "true" ? ["verbose"] : ["default"],
  },
});
