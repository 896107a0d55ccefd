import { defineConfig } from 'vitest/config';

// Two projects, as Hono does: pure unit tests, and integration tests that start
// real servers (the built gateway from dist/, real upstreams, real JWKS/OIDC).
// A third, `leaks`, runs last: the whole-run check that no token any test minted
// appears in anything the run printed, logged or audited (issue 5; test/leaks).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          // Property tests run thousands of cases; on a loaded two-core CI machine one can
          // take several seconds, which is not a failure of the property.
          testTimeout: 30_000,
          // Projects with different maxWorkers must run in different groups (vitest 4).
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Integration files start gateways and upstreams; two cores, so keep them few at once.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
          // The run's leak directory (MFA_GW_LEAK_DIR), made only when integration files run,
          // and each file's registration in it (test/integration/leaks.ts).
          globalSetup: ['test/leaks/global-setup.ts'],
          setupFiles: ['test/leaks/register-file.ts'],
        },
      },
      {
        test: {
          name: 'leaks',
          include: ['test/leaks/**/*.test.ts'],
          environment: 'node',
          // After every integration file: it reads what they all collected.
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
