import { defineConfig } from 'vitest/config';

/**
 * Two projects: every test as it is (SQLite where a test uses the detector's default store), and the
 * detector's integration suite again with each harness detector on PostgreSQL (EW_TEST_STORE, see
 * test/helpers/detector.ts). The store contract and the PostgreSQL store's own tests run every
 * backend themselves, so they are not repeated.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
    coverage: {
      provider: 'v8',
      include: ['agent/**', 'detector/**', 'protocol/**', 'common/**', 'cli/**'],
    },
    projects: [
      { extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'detector-on-postgres',
          include: ['test/integration/detector/**/*.test.ts'],
          exclude: [
            'test/integration/detector/store-contract.test.ts',
            'test/integration/detector/postgres-store.test.ts',
            // About the queue, on a tmpfs SQLite file (200,000 decisions); PostgreSQL behind SQS is the replicas test's.
            'test/integration/detector/cloudtrail-sqs.test.ts',
          ],
          env: { EW_TEST_STORE: 'postgres' },
        },
      },
    ],
  },
});
