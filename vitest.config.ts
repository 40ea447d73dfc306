import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // isolated-vm needs this flag on Node 20 and later, in every process that loads it.
    execArgv: ['--no-node-snapshot'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: end-to-end files share one engine and must not starve each other.
    maxWorkers: 2,
  },
});
