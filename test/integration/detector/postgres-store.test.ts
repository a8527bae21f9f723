/**
 * What only the PostgreSQL store has to show (the shared contract is in
 * store-contract.test.ts): migrations applied once under an advisory lock when
 * detectors start together, a newer schema refused, a batch stored once when
 * two detectors take it at the same time, evidence for a batch of decisions in
 * a bounded number of queries, and `detector migrate`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Observation, TelemetryBatch } from '../../../protocol/telemetry.js';
import { PostgresStore } from '../../../detector/store/postgres-store.js';
import { POSTGRES_SCHEMA_VERSION } from '../../../detector/store/postgres-schema.js';
import { postgresTarget } from '../../../detector/store/postgres-connection.js';
import { migrateCommand } from '../../../cli/commands/migrate.js';
import { createTestSchema, postgresTestsRun, querySchema, type TestSchema } from '../../helpers/postgres.js';

const T0 = Date.parse('2026-11-27T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

function observation(i: number): Observation {
  return {
    type: 'observation',
    schema: 1,
    gatewayId: 'gw-a',
    firstSeen: iso(T0 + i * 1000),
    lastSeen: iso(T0 + i * 1000 + 500),
    count: 1,
    clientIp: '10.20.3.4',
    network: 'vpc-prod',
    mode: 'inspect',
    host: 'sts.us-east-1.amazonaws.com',
    port: 443,
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    accessKeyId: `ASIAKEY${String(i).padStart(13, '0')}`,
    action: 'GetCallerIdentity',
    bytesUp: 1,
    bytesDown: 1,
    outcome: 'ok',
  };
}

function batch(batchId: string, records: TelemetryBatch['records']): TelemetryBatch {
  return {
    schemaVersion: 1,
    sentAt: iso(T0),
    batchId,
    gatewayId: 'gw-a',
    agent: { version: 'test', startedAt: iso(T0) },
    sequence: 1,
    egressCidrs: ['203.0.113.0/28'],
    records,
  };
}

describe.runIf(postgresTestsRun(import.meta.filename))('PostgreSQL store', () => {
  let schema: TestSchema;
  const open: PostgresStore[] = [];

  beforeEach(async () => {
    schema = await createTestSchema(import.meta.filename);
  });

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    await schema.drop();
  });

  async function openStore(o: Parameters<typeof PostgresStore.open>[1] = {}): Promise<PostgresStore> {
    const s = await PostgresStore.open(schema.config(), o);
    open.push(s);
    return s;
  }

  it('detectors starting together migrate once: the second waits for the lock and finds the schema current', async () => {
    const [a, b, c] = await Promise.all([openStore(), openStore(), openStore()]);
    const applied = [a, b, c].map((s) => s.migration.applied);
    expect(applied.filter((v) => v.length > 0)).toEqual([[...Array(POSTGRES_SCHEMA_VERSION).keys()].map((i) => i + 1)]);
    const rows = await querySchema<{ version: number }>(schema, 'SELECT version FROM schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual([...Array(POSTGRES_SCHEMA_VERSION).keys()].map((i) => i + 1));
    const again = await openStore();
    expect(again.migration).toEqual({ from: POSTGRES_SCHEMA_VERSION, to: POSTGRES_SCHEMA_VERSION, applied: [] });
  });

  it('a schema newer than this detector knows is refused, with what to do', async () => {
    await (await openStore()).close();
    open.length = 0;
    await querySchema(schema, "INSERT INTO schema_migrations (version, description, applied_ms) VALUES ($1, 'from the future', 0)", [
      POSTGRES_SCHEMA_VERSION + 1,
    ]);
    await expect(PostgresStore.open(schema.config())).rejects.toThrow(
      new RegExp(`store schema version ${POSTGRES_SCHEMA_VERSION + 1} in schema "${schema.name}" is newer than this detector knows`),
    );
  });

  it('a search_path naming no schema is an error that says so', async () => {
    await expect(
      PostgresStore.open({ ...schema.config(), url: schema.url.replace(schema.name, `${schema.name}_missing`) }),
    ).rejects.toThrow(/no schema to create tables in/);
  });

  it('an unreachable server is named in the error, without its password', async () => {
    await expect(PostgresStore.open({ ...schema.config(), url: 'postgres://ew:s3cret@127.0.0.1:1/witness' })).rejects.toThrow(
      /^store\.postgres ew@127\.0\.0\.1:1\/witness: cannot connect \(sslmode disable\): (?!.*s3cret)/,
    );
  });

  it('the same batch taken by two detectors at once is stored once (the unique key decides, not a read first)', async () => {
    const [a, b] = await Promise.all([openStore(), openStore()]);
    const records = Array.from({ length: 50 }, (_, i) => observation(i));
    for (let round = 0; round < 10; round++) {
      const id = `batch-${round}`;
      const results = await Promise.all([a.ingestBatch('gw-a', batch(id, records), T0), b.ingestBatch('gw-a', batch(id, records), T0)]);
      expect(results.map((r) => r.kind).sort()).toEqual(['duplicate', 'stored']);
    }
    const [n] = await querySchema<{ n: number }>(schema, 'SELECT COUNT(*)::int AS n FROM observations');
    expect(n!.n).toBe(10 * 50);
  });

  it('evidence for a batch of many decisions is three queries, and a span stored by another detector widens the search', async () => {
    const queries: string[] = [];
    const reader = await openStore({ onQuery: (kind) => queries.push(kind) });
    const writer = await openStore();
    const records = Array.from({ length: 300 }, (_, i) => observation(i));
    // One long observation (a tunnel open for ten minutes) written by the other detector.
    records.push({ ...observation(999), firstSeen: iso(T0 - 600_000), lastSeen: iso(T0 + 5_000), accessKeyId: 'ASIALONGSPAN000000001' });
    await writer.ingestBatch('gw-a', batch('b-1', records), T0);
    queries.length = 0;
    const keys = records.map((r) => ({ accessKeyId: r.accessKeyId!, fromMs: T0 - 60_000, toMs: T0 + 400_000 }));
    const snap = await reader.evidenceSnapshot({
      keys,
      endpoints: Array.from({ length: 300 }, (_, i) => ({
        gatewayId: 'gw-a',
        service: 'sts',
        region: 'us-east-1',
        fromMs: T0 + i * 1000,
        toMs: T0 + i * 1000,
      })),
      liveness: [{ gatewayId: 'gw-a', fromMs: T0 - 60_000, toMs: T0 + 400_000 }],
    });
    expect(queries).toEqual(['evidence_keys', 'evidence_endpoints', 'evidence_liveness']);
    for (const k of keys) expect(snap.keySightings(k.accessKeyId, k.fromMs, k.toMs)).toHaveLength(1);
    expect(snap.endpointSightings('gw-a', 'sts', 'us-east-1', T0 + 42_000, T0 + 42_000).length).toBeGreaterThanOrEqual(1);
    expect(snap.endpointSightings('gw-a', 'sts', null, T0, T0 + 400_000)).toEqual([]);
    expect(snap.heartbeatNear('gw-a', T0 + 100_000, T0 + 100_000)).toBe(true);
  });

  describe('detector migrate', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ew-pg-migrate-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('migrates an empty schema, then finds it current; the URL may come from url_file', async () => {
      await writeFile(join(dir, 'url'), `${schema.url}\n`, { mode: 0o600 });
      await writeFile(join(dir, 'detector.yaml'), `store:\n  postgres:\n    url_file: ${join(dir, 'url')}\n`);
      const lines: string[] = [];
      const out = { stdout: (s: string) => lines.push(s), stderr: (s: string) => lines.push(`stderr: ${s}`) };
      expect(await migrateCommand({ config: join(dir, 'detector.yaml') }, out)).toBe(0);
      expect(await migrateCommand({ config: join(dir, 'detector.yaml') }, out)).toBe(0);
      const target = (await postgresTarget(schema.config(), process.env)).describe;
      expect(lines).toEqual([
        `store.postgres ${target}: schema version 0 → ${POSTGRES_SCHEMA_VERSION} (applied ${[...Array(POSTGRES_SCHEMA_VERSION).keys()].map((i) => i + 1).join(', ')})\n`,
        `store.postgres ${target}: schema version ${POSTGRES_SCHEMA_VERSION}, current (this detector writes ${POSTGRES_SCHEMA_VERSION})\n`,
      ]);
    });

    it('a server it cannot reach: exit 1 and the key named', async () => {
      await writeFile(join(dir, 'detector.yaml'), 'store:\n  postgres:\n    url: postgres://ew@127.0.0.1:1/witness\n');
      const err: string[] = [];
      expect(await migrateCommand({ config: join(dir, 'detector.yaml') }, { stdout: () => undefined, stderr: (s) => err.push(s) })).toBe(1);
      expect(err.join('')).toMatch(
        /^detector migrate: store\.postgres ew@127\.0\.0\.1:1\/witness: cannot connect \(sslmode disable\): .* \(set in .*detector\.yaml\)\n$/,
      );
    });
  });
});
