import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { POSTGRES_TEST_URL, postgresUnreachable, redactUrl } from './test/helpers/postgres.js';

/**
 * The detector's integration suite again, each harness detector on a PostgreSQL schema of its own
 * (EW_TEST_STORE, see test/helpers/detector.ts). The store contract and the PostgreSQL store's own
 * tests run every backend themselves, so they are not repeated.
 */
const onPostgres: TestProjectInlineConfiguration = {
  extends: true,
  test: {
    name: 'detector-on-postgres',
    include: ['test/integration/detector/**/*.test.ts'],
    exclude: [
      'test/integration/detector/store-contract.test.ts',
      'test/integration/detector/postgres-store.test.ts',
      'test/integration/detector/postgres-leader.test.ts',
      // About the queue, on a tmpfs SQLite file (200,000 decisions); PostgreSQL behind SQS is the replicas test's.
      'test/integration/detector/cloudtrail-sqs.test.ts',
    ],
    env: { EW_TEST_STORE: 'postgres' },
  },
};

/**
 * The agent's integration suite, the AWS SDK and client tests and the telemetry delivery tests
 * again, every in-process agent with two proxy workers (EW_TEST_PROXY_WORKERS, see
 * test/helpers/agent.ts): workers must change nothing a client or the detector can see.
 */
const withWorkers: TestProjectInlineConfiguration = {
  extends: true,
  test: {
    name: 'agent-workers',
    include: ['test/integration/agent/**/*.test.ts', 'test/integration/clients/**/*.test.ts', 'test/integration/telemetry/**/*.test.ts'],
    exclude: [
      // No agent in it: the signature format alone.
      'test/integration/telemetry/signature.test.ts',
      // The upstream connector on its own, no agent.
      'test/integration/agent/inspect-upstream-dial.test.ts',
    ],
    env: { EW_TEST_PROXY_WORKERS: '2' },
  },
};

/**
 * The agent's tunnel tests again with the JavaScript tunnel relay (EW_TEST_TUNNEL_RELAY, see
 * test/helpers/agent.ts): the suite's default is the native relay where its addon is built, and
 * the JavaScript one stays the fallback, so both must carry tunnels alike.
 */
const withJsRelay: TestProjectInlineConfiguration = {
  extends: true,
  test: {
    name: 'agent-js-relay',
    include: [
      'test/integration/agent/tunnels.test.ts',
      'test/integration/agent/tunnel-relay.test.ts',
      'test/integration/agent/long-tunnel.test.ts',
      'test/integration/agent/connect-head.test.ts',
      'test/integration/agent/exit-paths.test.ts',
      'test/integration/agent/passthrough.test.ts',
      'test/integration/agent/failure-reasons.test.ts',
      'test/integration/transparent/listener.test.ts',
    ],
    env: { EW_TEST_TUNNEL_RELAY: 'js' },
  },
};

// Without a server that project is left out with the reason printed, except under CI, where the server is part of the run.
const unreachable = await postgresUnreachable();
const withPostgres = unreachable === null || Boolean(process.env.CI);
if (!withPostgres)
  console.warn(
    `detector-on-postgres left out: no PostgreSQL answers at ${redactUrl(POSTGRES_TEST_URL)} ` +
      `(${unreachable}); start one or set EW_TEST_POSTGRES_URL`,
  );

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
      withWorkers,
      withJsRelay,
      ...(withPostgres ? [onPostgres] : []),
    ],
  },
});
