import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/e2e/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    // Tests use real btrfs, nspawn and agent processes: generous limits, one fork per file.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: process.env.CI === "true" ? ["verbose"] : ["default"],
  },
});
