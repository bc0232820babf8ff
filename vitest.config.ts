import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: RSA-heavy files and real-process tests share them.
    maxWorkers: 2,
    reporters: ["default"],
    // A throwaway PostgreSQL cluster for the cluster-store tests (issue 14).
    globalSetup: ["test/global-pg.ts"],
  },
});
