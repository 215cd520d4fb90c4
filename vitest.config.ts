// Two test projects: `unit` (beside the code, no servers) and `integration` (test/, real servers that
// test/harness starts on 127.0.0.1). The integration project builds the CLI first so bin/lifeboat.js runs;
// the unit project builds the native addon (native/blake3) first.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/harness/native-setup.ts'],
          // A guard against a hang, not a speed check: unit files share the two cores with the
          // integration project's servers, and a CPU-bound test that takes 2 s alone took over 5 s there.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/harness/global-setup.ts'],
          // Guards against a hang, not speed checks: under CPU steal on a shared host, tests that take
          // ~20 s took 90 s (the SIGKILL rounds of test/cli/repository.test.ts), close to the old 120 s.
          testTimeout: 300_000,
          hookTimeout: 180_000,
          // Servers are heavy on a 2-core machine: files run one after another.
          fileParallelism: false,
        },
      },
    ],
  },
});
