/**
 * PostgreSQL for tests: the server named by EW_TEST_POSTGRES_URL (default the
 * local one, trust auth, database `test`), one schema of its own per test
 * file (or per test), selected through the URL's search_path so nothing a
 * test writes is seen by another.
 *
 * When no server answers, PostgreSQL tests are left out with the reason
 * printed, unless CI is set: there the server is part of the run and its
 * absence fails the tests.
 */
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import pg from 'pg';
import type { PostgresStoreConfig } from '../../detector/store/postgres-connection.js';

export const POSTGRES_TEST_URL = process.env.EW_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Null when the test server answers, else why not. */
export async function postgresUnreachable(): Promise<string | null> {
  const client = new pg.Client({ connectionString: POSTGRES_TEST_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const unreachable = await postgresUnreachable();

/**
 * Whether PostgreSQL tests run here: true when the server answers, or under CI (where a missing
 * server fails them); false otherwise, with the reason printed once per file.
 */
export function postgresTestsRun(file: string): boolean {
  if (unreachable === null || process.env.CI) return true;
  console.warn(
    `${basename(file)}: PostgreSQL tests skipped: no server answers at ${redactUrl(POSTGRES_TEST_URL)} (${unreachable}); ` +
      'start one or set EW_TEST_POSTGRES_URL',
  );
  return false;
}

/** The URL with its password masked, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** The test URL with its search_path set to `schema`. */
export function urlWithSchema(schema: string, base = POSTGRES_TEST_URL): string {
  const u = new URL(base);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

export interface TestSchema {
  name: string;
  /** The URL that selects it. */
  url: string;
  /** store.postgres for it. */
  config(over?: Partial<PostgresStoreConfig>): PostgresStoreConfig;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_TEST_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A new, empty schema named after the test file (letters, digits, _), dropped with everything in it by `drop`. */
export async function createTestSchema(file: string): Promise<TestSchema> {
  const stem = basename(file)
    .replace(/\.test\.ts$/, '')
    .replace(/[^a-z0-9]+/gi, '_')
    .toLowerCase()
    .slice(0, 40);
  const name = `ew_${stem}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE SCHEMA ${name}`));
  const url = urlWithSchema(name);
  return {
    name,
    url,
    config: (over = {}) => ({
      url,
      url_file: null,
      pool_size: 4,
      statement_timeout: 30_000,
      sslmode: null,
      ca_file: null,
      leader_check: 5_000,
      ...over,
    }),
    drop: () => admin((c) => c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`)).then(() => undefined),
  };
}

/** Runs one statement on the test database with the schema selected (for assertions on what the store wrote). */
export async function querySchema<R extends pg.QueryResultRow>(schema: TestSchema, text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: schema.url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}
