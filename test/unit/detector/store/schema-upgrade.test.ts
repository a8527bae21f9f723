/**
 * A store file written by an older detector is upgraded in place when a newer
 * one opens it: what it held is kept, the new columns work, and a file from a
 * newer detector is refused rather than misread.
 */
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore, STORE_SCHEMA_VERSION } from '../../../../detector/store/sqlite-store.js';
import type { TelemetryBatch } from '../../../../protocol/telemetry.js';
import { heartbeat } from '../scenario.js';

const V1 = readFileSync(new URL('../../../fixtures/store/schema-v1.sql', import.meta.url), 'utf8');

let dir: string;
let path: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-store-upgrade-'));
  path = join(dir, 'detector.db');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A version-1 file holding one processed CloudTrail file and one telemetry batch of gw-a. */
function writeV1(): void {
  const db = new Database(path);
  db.exec(V1);
  db.prepare('INSERT INTO batches (batch_id, gateway_id, sequence, received_ms, records) VALUES (?, ?, ?, ?, ?)').run(
    'shared-batch-id-0001',
    'gw-a',
    3,
    4_000,
    1,
  );
  db.prepare('INSERT INTO cloudtrail_files (path, size, mtime_ms, processed_ms, records, invalid) VALUES (?, ?, ?, ?, ?, ?)').run(
    '/trail/a.json.gz',
    100,
    5_000,
    6_000,
    3,
    1,
  );
  db.close();
}

function schemaVersion(): string {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value;
  } finally {
    db.close();
  }
}

describe('store schema upgrade', () => {
  it('upgrades a version-1 file: processed files stay processed, and failures and attempts are recorded', async () => {
    writeV1();
    const store = new SqliteStore(path);
    try {
      expect(await store.fileProcessed('/trail/a.json.gz', 100, 5_000)).toBe(true);
      expect(await store.fileAttempt('/trail/b.json', 10, 1_000, 7_000)).toBe(1);
      expect(await store.fileAttempt('/trail/b.json', 10, 1_000, 7_001)).toBe(2);
      expect(await store.fileProcessed('/trail/b.json', 10, 1_000)).toBe(false);
      // A rewritten file starts counting again.
      expect(await store.fileAttempt('/trail/b.json', 11, 1_500, 7_002)).toBe(1);
      await store.markFileProcessed('/trail/b.json', 11, 1_500, 0, 0, 7_003, 'not JSON');
      expect(await store.fileProcessed('/trail/b.json', 11, 1_500)).toBe(true);
    } finally {
      await store.close();
    }
    expect(Number(schemaVersion())).toBeGreaterThan(1);
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT failure FROM cloudtrail_files WHERE path = ?').get('/trail/b.json')).toEqual({ failure: 'not JSON' });
    db.close();
    // Opening again changes nothing.
    await new SqliteStore(path).close();
  });

  it('upgrades the batch ids to one namespace per gateway: a stored batch stays a duplicate for its gateway only', async () => {
    writeV1();
    const batch = (gatewayId: string): TelemetryBatch => ({
      schemaVersion: 1,
      batchId: 'shared-batch-id-0001',
      gatewayId,
      agent: { version: '0.1.0', startedAt: '2026-11-25T12:00:00.000Z' },
      sequence: 0,
      egressCidrs: [],
      sentAt: '2026-11-25T12:00:00.000Z',
      records: [heartbeat(gatewayId, Date.parse('2026-11-25T12:00:00.000Z'))],
    });
    const store = new SqliteStore(path);
    try {
      expect(await store.ingestBatch('gw-a', batch('gw-a'), 8_000)).toEqual({ kind: 'duplicate' });
      expect(await store.ingestBatch('gw-b', batch('gw-b'), 8_000)).toEqual({ kind: 'stored', records: 1 });
      expect(await store.ingestBatch('gw-b', batch('gw-b'), 8_001)).toEqual({ kind: 'duplicate' });
      expect(await store.lastHeartbeatMs('gw-b')).toBe(Date.parse('2026-11-25T12:00:00.000Z'));
      // Pruning still finds the batches by age.
      await store.prune(8_000);
    } finally {
      await store.close();
    }
    expect(schemaVersion()).toBe(STORE_SCHEMA_VERSION);
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT gateway_id, batch_id FROM batches ORDER BY gateway_id').all()).toEqual([
      { gateway_id: 'gw-b', batch_id: 'shared-batch-id-0001' },
    ]);
    db.close();
  });

  it('refuses a file from a newer detector', () => {
    writeV1();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    db.close();
    expect(() => new SqliteStore(path)).toThrow(/store schema version 99 is not supported/);
  });
});

describe('store schema upgrade: events gain their origin', () => {
  it('an event kept by an older detector is taken over by its next copy without a decision; the schema is current', async () => {
    writeV1();
    const db = new Database(path);
    db.prepare('INSERT INTO events (event_id, access_key_id, source_ip, event_time_ms, vpc_endpoint_id) VALUES (?, ?, ?, ?, ?)').run(
      'e-old',
      'ASIAY34FZKBOKMUTVV7A',
      '198.51.100.200',
      1_000,
      null,
    );
    db.close();
    const store = new SqliteStore(path);
    try {
      expect(await store.keptCopy('e-old')).toEqual({ origin: null, fingerprint: null, summary: null });
      expect(await store.cloudTrailUses('ASIAY34FZKBOKMUTVV7A', 0, 2_000)).toEqual([
        expect.objectContaining({ eventId: 'e-old', sourceIPAddress: '198.51.100.200' }),
      ]);
      await store.vouchForEvent('e-old', 'trail', 'fp', { origin: 'trail' });
      expect(await store.keptCopy('e-old')).toEqual({ origin: 'trail', fingerprint: 'fp', summary: { origin: 'trail' } });
      // Rows without an arrival time age out by their event time, as before.
      expect((await store.prune(2_000)).events).toBe(1);
    } finally {
      await store.close();
    }
    expect(schemaVersion()).toBe(STORE_SCHEMA_VERSION);
  });
});

describe('store schema upgrade: observations gain capture', () => {
  it('a file from before capture (version 2) keeps its observations, read as explicit; new ones keep their capture', async () => {
    // A version-2 file: version 1 plus its upgrade, holding one observation from before capture existed.
    const db = new Database(path);
    db.exec(V1);
    db.exec(`ALTER TABLE cloudtrail_files ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE cloudtrail_files ADD COLUMN done INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE cloudtrail_files ADD COLUMN failure TEXT;`);
    db.prepare("UPDATE meta SET value = '2' WHERE key = 'schema_version'").run();
    db.prepare(
      'INSERT INTO observations (gateway_id, access_key_id, service, region, host, client_ip, network, mode, action, first_ms, last_ms, count, attests) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(
      'gw-a',
      'ASIAY34FZKBOKMUTVV7A',
      'sts',
      'us-east-1',
      'sts.us-east-1.amazonaws.com',
      '10.0.0.5',
      'lab',
      'inspect',
      'GetCallerIdentity',
      1_000,
      2_000,
      1,
      1,
    );
    db.close();
    const store = new SqliteStore(path);
    try {
      const legacy = await store.keySightings('ASIAY34FZKBOKMUTVV7A', 0, 10_000);
      expect(legacy.map((s) => s.capture)).toEqual(['explicit']);
      await store.ingestBatch('gw-a', transparentBatch(), 20_000);
      const all = await store.keySightings('ASIAY34FZKBOKMUTVV7A', 0, 1e15);
      expect(all.map((s) => s.capture)).toEqual(['explicit', 'transparent']);
    } finally {
      await store.close();
    }
    expect(schemaVersion()).toBe(STORE_SCHEMA_VERSION);
  });
});

function transparentBatch(): TelemetryBatch {
  return {
    schemaVersion: 1,
    batchId: 'b-transparent-1',
    gatewayId: 'gw-a',
    agent: { version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z' },
    sequence: 1,
    egressCidrs: ['203.0.113.0/28'],
    sentAt: '2026-01-01T00:00:10.000Z',
    records: [
      {
        type: 'observation',
        schema: 1,
        gatewayId: 'gw-a',
        firstSeen: '2026-01-01T00:00:01.000Z',
        lastSeen: '2026-01-01T00:00:02.000Z',
        count: 1,
        clientIp: '10.0.0.6',
        network: 'lab',
        mode: 'inspect',
        capture: 'transparent',
        host: 'sts.us-east-1.amazonaws.com',
        port: 443,
        aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
        accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
        action: 'GetCallerIdentity',
        bytesUp: 1,
        bytesDown: 1,
        outcome: 'ok',
      },
    ],
  };
}
