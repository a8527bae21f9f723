/**
 * The DetectorStore contract, written once and run against every backend:
 * SQLite on real files in a temporary directory, the in-memory store replay
 * uses, and PostgreSQL (a schema of its own per test). A backend is one line in BACKENDS; what one does and the
 * other does not is a bug in one of them.
 *
 * Every operation answers with a promise; transactions run one at a time
 * and roll back when their callback rejects.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Heartbeat, Observation, TelemetryBatch } from '../../../protocol/telemetry.js';
import { MemoryStore } from '../../../detector/store/memory-store.js';
import { openStore } from '../../../detector/store/open-store.js';
import type { DetectorStore, StoredDecision, StoredEvent, StoreTx } from '../../../detector/store/store.js';
import { createTestSchema, postgresTestsRun, type TestSchema } from '../../helpers/postgres.js';

interface Backend {
  name: string;
  open(dir: string): Promise<DetectorStore>;
  /** Releases what `open` made besides the store (a PostgreSQL schema). */
  cleanup?(): Promise<void>;
}

let schema: TestSchema | null = null;
const BACKENDS: Backend[] = [
  { name: 'SqliteStore', open: (dir) => openStore({ path: join(dir, 'store', 'detector.db') }, { createDirectory: true }) },
  { name: 'MemoryStore', open: () => Promise.resolve(new MemoryStore()) },
  ...(postgresTestsRun(import.meta.filename)
    ? [
        {
          name: 'PostgresStore',
          open: async () => {
            // A schema per test: each starts from an empty store, as the others do.
            schema = await createTestSchema(import.meta.filename);
            return openStore({ path: '', postgres: schema.config() });
          },
          cleanup: async () => {
            await schema?.drop();
            schema = null;
          },
        },
      ]
    : []),
];

/** Until `ready` holds (at most 5 s), then a few more turns of the event loop for anything queued behind it. */
async function settle(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ready(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

const T0 = Date.parse('2026-11-27T12:00:00Z');
const MIN = 60_000;
const KEY = 'ASIAY34FZKBOKMUTVV7A';
const KEY2 = 'ASIAQ2WERTYUIOPASDF3';
const iso = (ms: number) => new Date(ms).toISOString();

function observation(over: Partial<Observation> & { at?: number; until?: number } = {}): Observation {
  const { at = T0, until = (over.at ?? T0) + 2_000, ...rest } = over;
  return {
    type: 'observation',
    schema: 1,
    gatewayId: 'gw-a',
    firstSeen: iso(at),
    lastSeen: iso(until),
    count: 1,
    clientIp: '10.20.3.4',
    network: 'vpc-prod',
    mode: 'inspect',
    host: 'sts.us-east-1.amazonaws.com',
    port: 443,
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    accessKeyId: KEY,
    action: 'GetCallerIdentity',
    bytesUp: 100,
    bytesDown: 200,
    outcome: 'ok',
    ...rest,
  };
}

function heartbeat(at: number): Heartbeat {
  return {
    type: 'heartbeat',
    schema: 1,
    gatewayId: 'gw-a',
    time: iso(at),
    agentVersion: 'test',
    startedAt: iso(T0 - 60 * MIN),
    uptimeSeconds: 60,
    counts: {},
    spool: { batches: 0, bytes: 0 },
  };
}

function batch(batchId: string, records: TelemetryBatch['records'], sequence = 0): TelemetryBatch {
  return {
    schemaVersion: 1,
    batchId,
    gatewayId: 'gw-a',
    agent: { version: 'test', startedAt: iso(T0 - 60 * MIN) },
    sequence,
    egressCidrs: ['203.0.113.0/28'],
    sentAt: iso(T0),
    records,
  };
}

function storedEvent(over: Partial<StoredEvent> = {}): StoredEvent {
  return {
    eventId: 'e-1',
    accessKeyId: KEY,
    sourceIp: '198.51.100.7',
    eventTimeMs: T0,
    vpcEndpointId: null,
    origin: 'pushed',
    fingerprint: 'fp-pushed',
    seenMs: T0,
    summary: { origin: 'pushed', sourceIPAddress: '198.51.100.7' },
    ...over,
  };
}

function decision(over: Partial<StoredDecision> = {}): StoredDecision {
  return {
    kind: 'cloudtrail',
    subjectId: 'e-1',
    timeMs: T0,
    decidedMs: T0 + 1_000,
    disposition: 'finding',
    rule: 'external',
    accessKeyId: KEY,
    sourceIp: '198.51.100.7',
    gatewayId: null,
    detail: { reason: 'outside' },
    ...over,
  };
}

describe.each(BACKENDS)('DetectorStore contract: $name', (backend) => {
  let dir: string;
  let store: DetectorStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ew-store-contract-'));
    store = await backend.open(dir);
  });

  afterEach(async () => {
    await store.close();
    await backend.cleanup?.();
    await rm(dir, { recursive: true, force: true });
  });

  describe('telemetry', () => {
    it('stores a batch once per (gateway, batchId): the same id from another gateway is stored too', async () => {
      expect(await store.ingestBatch('gw-a', batch('batch-0001', [observation(), heartbeat(T0)]), T0)).toEqual({
        kind: 'stored',
        records: 2,
      });
      expect(await store.ingestBatch('gw-a', batch('batch-0001', [observation({ accessKeyId: KEY2 })]), T0)).toEqual({
        kind: 'duplicate',
      });
      expect(await store.keySightings(KEY2, T0 - MIN, T0 + MIN)).toEqual([]);
      expect(await store.ingestBatch('gw-b', batch('batch-0001', [observation({ accessKeyId: KEY2 })]), T0)).toEqual({
        kind: 'stored',
        records: 1,
      });
      const seen = await store.keySightings(KEY2, T0 - MIN, T0 + MIN);
      expect(seen.map((s) => s.gatewayId)).toEqual(['gw-b']);
    });

    it('the authenticated gateway is the one stored, whatever the record says', async () => {
      await store.ingestBatch('gw-b', batch('batch-0001', [observation({ gatewayId: 'gw-a' })]), T0);
      expect((await store.keySightings(KEY, T0, T0)).map((s) => s.gatewayId)).toEqual(['gw-b']);
    });

    it('reads a sighting back as it was sent', async () => {
      await store.ingestBatch(
        'gw-a',
        batch('batch-0001', [observation({ at: T0, until: T0 + 5_000, count: 4, capture: 'transparent', network: null })]),
        T0,
      );
      expect(await store.keySightings(KEY, T0, T0)).toEqual([
        {
          gatewayId: 'gw-a',
          clientIp: '10.20.3.4',
          network: null,
          firstSeenMs: T0,
          lastSeenMs: T0 + 5_000,
          count: 4,
          host: 'sts.us-east-1.amazonaws.com',
          service: 'sts',
          region: 'us-east-1',
          action: 'GetCallerIdentity',
          accessKeyId: KEY,
          mode: 'inspect',
          capture: 'transparent',
          outcome: 'ok',
        },
      ]);
    });

    it('key sightings: a span overlapping the range counts, inclusive at both ends', async () => {
      await store.ingestBatch('gw-a', batch('batch-0001', [observation({ at: T0, until: T0 + 10 * MIN })]), T0);
      expect(await store.keySightings(KEY, T0 + 5 * MIN, T0 + 6 * MIN)).toHaveLength(1);
      expect(await store.keySightings(KEY, T0 + 10 * MIN, T0 + 11 * MIN)).toHaveLength(1);
      expect(await store.keySightings(KEY, T0 - MIN, T0)).toHaveLength(1);
      expect(await store.keySightings(KEY, T0 + 10 * MIN + 1, T0 + 11 * MIN)).toEqual([]);
      expect(await store.keySightings(KEY, T0 - MIN, T0 - 1)).toEqual([]);
      expect(await store.keySightings(KEY2, T0, T0 + MIN)).toEqual([]);
    });

    it('endpoint sightings match gateway, service and region exactly (null region: global)', async () => {
      await store.ingestBatch(
        'gw-a',
        batch('batch-0001', [
          observation({ mode: 'tunnel', accessKeyId: null }),
          observation({ host: 'iam.amazonaws.com', aws: { service: 'iam', region: null, partition: 'aws' }, accessKeyId: null }),
        ]),
        T0,
      );
      expect(await store.endpointSightings('gw-a', 'sts', 'us-east-1', T0, T0)).toHaveLength(1);
      expect(await store.endpointSightings('gw-a', 'sts', null, T0, T0)).toEqual([]);
      expect(await store.endpointSightings('gw-a', 'iam', null, T0, T0)).toHaveLength(1);
      expect(await store.endpointSightings('gw-a', 'iam', 'us-east-1', T0, T0)).toEqual([]);
      expect(await store.endpointSightings('gw-b', 'sts', 'us-east-1', T0, T0)).toEqual([]);
      expect(await store.endpointSightings('gw-a', 'sts', 'us-east-1', T0 + MIN, T0 + 2 * MIN)).toEqual([]);
    });

    it('only calls that reached the endpoint attest; a refused one shows the gateway alive', async () => {
      await store.ingestBatch('gw-a', batch('batch-0001', [observation({ outcome: 'denied' }), observation({ outcome: 'dns_error' })]), T0);
      expect(await store.keySightings(KEY, T0 - MIN, T0 + MIN)).toEqual([]);
      expect(await store.endpointSightings('gw-a', 'sts', 'us-east-1', T0 - MIN, T0 + MIN)).toEqual([]);
      expect(await store.heartbeatNear('gw-a', T0 - MIN, T0 + MIN)).toBe(true);
      for (const outcome of ['ok', 'client_error', 'upstream_error', 'idle_timeout', 'drained'] as const) {
        await store.ingestBatch('gw-a', batch(`batch-${outcome}`, [observation({ outcome, accessKeyId: KEY2, action: outcome })]), T0);
      }
      expect((await store.keySightings(KEY2, T0, T0)).map((s) => s.action).sort()).toEqual(
        ['client_error', 'drained', 'idle_timeout', 'ok', 'upstream_error'].sort(),
      );
    });

    it('a gateway is alive near a heartbeat or an observation, and silent elsewhere', async () => {
      await store.ingestBatch('gw-a', batch('batch-0001', [heartbeat(T0)]), T0);
      await store.ingestBatch('gw-b', batch('batch-0002', [observation({ at: T0 + 10 * MIN, until: T0 + 11 * MIN })]), T0);
      expect(await store.heartbeatNear('gw-a', T0 - MIN, T0 + MIN)).toBe(true);
      expect(await store.heartbeatNear('gw-a', T0, T0)).toBe(true);
      expect(await store.heartbeatNear('gw-a', T0 + 5_000, T0 + MIN)).toBe(false);
      expect(await store.heartbeatNear('gw-a', T0 - MIN, T0 - 5_000)).toBe(false);
      expect(await store.heartbeatNear('gw-b', T0 + 10 * MIN + 30_000, T0 + 10 * MIN + 30_000)).toBe(true);
      expect(await store.heartbeatNear('gw-b', T0, T0 + 5 * MIN)).toBe(false);
      expect(await store.heartbeatNear('gw-c', T0 - MIN, T0 + MIN)).toBe(false);
    });

    it('the last heartbeat is the newest one not after the bound', async () => {
      expect(await store.lastHeartbeatMs('gw-a')).toBeNull();
      await store.ingestBatch('gw-a', batch('batch-0001', [heartbeat(T0), heartbeat(T0 + MIN), heartbeat(T0 + 60 * MIN)]), T0);
      expect(await store.lastHeartbeatMs('gw-a')).toBe(T0 + 60 * MIN);
      expect(await store.lastHeartbeatMs('gw-a', T0 + 30 * MIN)).toBe(T0 + MIN);
      expect(await store.lastHeartbeatMs('gw-a', T0 + MIN)).toBe(T0 + MIN);
      expect(await store.lastHeartbeatMs('gw-a', T0 - 1)).toBeNull();
      expect(await store.lastHeartbeatMs('gw-b')).toBeNull();
    });
  });

  describe('CloudTrail files', () => {
    it('a file is processed once per (size, mtime); attempts count until it is done', async () => {
      expect(await store.fileProcessed('/ct/a.json.gz', 10, 1_000.7)).toBe(false);
      expect(await store.fileAttempt('/ct/a.json.gz', 10, 1_000.7, T0)).toBe(1);
      expect(await store.fileAttempt('/ct/a.json.gz', 10, 1_000.2, T0)).toBe(2);
      expect(await store.fileProcessed('/ct/a.json.gz', 10, 1_000)).toBe(false);
      await store.markFileProcessed('/ct/a.json.gz', 10, 1_000.7, 5, 0, T0);
      expect(await store.fileProcessed('/ct/a.json.gz', 10, 1_000)).toBe(true);
      expect(await store.fileProcessed('/ct/a.json.gz', 11, 1_000)).toBe(false);
      expect(await store.fileAttempt('/ct/a.json.gz', 11, 2_000, T0)).toBe(1);
      expect(await store.fileProcessed('/ct/a.json.gz', 11, 2_000)).toBe(false);
      await store.markFileProcessed('/ct/a.json.gz', 11, 2_000, 0, 0, T0, 'not gzip');
      expect(await store.fileProcessed('/ct/a.json.gz', 11, 2_000)).toBe(true);
    });
  });

  describe('events', () => {
    it('keeps the first copy of an ID, replaces it on purpose, and vouches for it', async () => {
      expect(await store.keptCopy('e-1')).toBeNull();
      expect(await store.recordEvent(storedEvent())).toBe(true);
      expect(await store.recordEvent(storedEvent({ origin: 'trail', fingerprint: 'fp-trail' }))).toBe(false);
      expect(await store.keptCopy('e-1')).toEqual({
        origin: 'pushed',
        fingerprint: 'fp-pushed',
        summary: { origin: 'pushed', sourceIPAddress: '198.51.100.7' },
      });
      await store.vouchForEvent('e-1', 'trail', 'fp-pushed', { origin: 'trail' });
      expect(await store.keptCopy('e-1')).toEqual({ origin: 'trail', fingerprint: 'fp-pushed', summary: { origin: 'trail' } });
      await store.replaceEvent(storedEvent({ origin: 'trail', fingerprint: 'fp-2', sourceIp: '203.0.113.5', accessKeyId: KEY2 }));
      expect(await store.keptCopy('e-1')).toMatchObject({ origin: 'trail', fingerprint: 'fp-2' });
      expect(await store.cloudTrailUses(KEY, T0 - MIN, T0 + MIN)).toEqual([]);
      expect(await store.cloudTrailUses(KEY2, T0 - MIN, T0 + MIN)).toEqual([
        { eventId: 'e-1', eventTime: iso(T0), sourceIPAddress: '203.0.113.5', vpcEndpointId: null },
      ]);
    });

    it('vouching for an unknown event changes nothing', async () => {
      await store.vouchForEvent('e-9', 'trail', 'fp', {});
      expect(await store.keptCopy('e-9')).toBeNull();
    });

    it('kept copies of many IDs in one read: in the order asked, null where none is kept, a repeat answered twice', async () => {
      expect(await store.keptCopies([])).toEqual([]);
      await store.recordEvent(storedEvent());
      await store.recordEvent(storedEvent({ eventId: 'e-2', origin: 'trail', fingerprint: 'fp-2', summary: { origin: 'trail' } }));
      const kept = await store.keptCopies(['e-2', 'e-9', 'e-1', 'e-2']);
      expect(kept).toEqual([
        { origin: 'trail', fingerprint: 'fp-2', summary: { origin: 'trail' } },
        null,
        { origin: 'pushed', fingerprint: 'fp-pushed', summary: { origin: 'pushed', sourceIPAddress: '198.51.100.7' } },
        { origin: 'trail', fingerprint: 'fp-2', summary: { origin: 'trail' } },
      ]);
      // Each answer its own copy, and what a transaction wrote before is what it reads.
      (kept[0]!.summary as Record<string, unknown>).origin = 'changed';
      expect((await store.keptCopies(['e-2']))[0]?.summary).toEqual({ origin: 'trail' });
      await store.withTransaction(async (tx) => {
        await tx.vouchForEvent('e-1', 'trail', 'fp-pushed', { origin: 'trail' });
        await tx.recordEvent(storedEvent({ eventId: 'e-3' }));
        expect((await tx.keptCopies(['e-1', 'e-3'])).map((k) => k?.origin)).toEqual(['trail', 'pushed']);
      });
    });

    it('a copy returned is a copy: changing it changes nothing stored', async () => {
      const e = storedEvent();
      await store.recordEvent(e);
      e.summary.sourceIPAddress = 'changed';
      const kept = await store.keptCopy('e-1');
      (kept!.summary as Record<string, unknown>).origin = 'changed';
      expect((await store.keptCopy('e-1'))?.summary).toEqual({ origin: 'pushed', sourceIPAddress: '198.51.100.7' });
    });

    it('CloudTrail uses of a key, by event time (inclusive), oldest first', async () => {
      await store.recordEvent(storedEvent({ eventId: 'e-2', eventTimeMs: T0 + 2 * MIN, vpcEndpointId: 'vpce-1' }));
      await store.recordEvent(storedEvent({ eventId: 'e-1', eventTimeMs: T0 }));
      await store.recordEvent(storedEvent({ eventId: 'e-3', eventTimeMs: T0 + 10 * MIN }));
      expect((await store.cloudTrailUses(KEY, T0, T0 + 2 * MIN)).map((u) => [u.eventId, u.vpcEndpointId])).toEqual([
        ['e-1', null],
        ['e-2', 'vpce-1'],
      ]);
    });

    it("a key's uses follow what committed: writes seen inside their transaction, gone when it or their savepoint rolls back", async () => {
      const uses = async (reader: Pick<StoreTx, 'cloudTrailUses'> = store) =>
        (await reader.cloudTrailUses(KEY, T0 - MIN, T0 + 10 * MIN)).map((u) => u.eventId);
      // No use asked for before: a store that indexes uses when first asked does so inside the transaction.
      await store.recordEvent(storedEvent({ eventId: 'e-1', eventTimeMs: T0 }));
      await expect(
        store.withTransaction(async (tx) => {
          await tx.recordEvent(storedEvent({ eventId: 'e-2', eventTimeMs: T0 + MIN }));
          expect(await uses(tx)).toEqual(['e-1', 'e-2']);
          await tx.recordEvent(storedEvent({ eventId: 'e-3', eventTimeMs: T0 + 2 * MIN }));
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      // Nor between the transactions: the next one asks first inside its savepoint.
      await store.withTransaction(async (tx) => {
        await tx.recordEvent(storedEvent({ eventId: 'e-4', eventTimeMs: T0 + 3 * MIN }));
        await expect(
          tx.savepoint(async (part) => {
            await part.recordEvent(storedEvent({ eventId: 'e-5', eventTimeMs: T0 + 4 * MIN }));
            expect(await uses(part)).toEqual(['e-1', 'e-4', 'e-5']);
            throw new Error('part rolled back');
          }),
        ).rejects.toThrow('part rolled back');
        await tx.recordDecided([
          { event: storedEvent({ eventId: 'e-6', eventTimeMs: T0 + 5 * MIN }), decision: decision({ subjectId: 'e-6' }) },
        ]);
        expect(await uses(tx)).toEqual(['e-1', 'e-4', 'e-6']);
      });
      expect(await uses()).toEqual(['e-1', 'e-4', 'e-6']);
      await store.withTransaction(async (tx) => {
        await tx.replaceEvent(storedEvent({ eventId: 'e-4', eventTimeMs: T0 + 6 * MIN, origin: 'trail', fingerprint: 'fp-trail' }));
      });
      expect(await uses()).toEqual(['e-1', 'e-6', 'e-4']);
    });

    it('a conflict is recorded once per dropped copy, newest first', async () => {
      const c = (eventId: string, detectedMs: number) => ({
        eventId,
        detectedMs,
        resolution: 'rejected' as const,
        kept: { origin: 'trail' },
        dropped: { origin: 'pushed' },
        supersededDecision: null,
      });
      expect(await store.recordEventConflict(c('e-1', T0), 'fp-a')).toBe(true);
      expect(await store.recordEventConflict(c('e-1', T0 + 1), 'fp-a')).toBe(false);
      expect(await store.recordEventConflict(c('e-1', T0 + 2), 'fp-b')).toBe(true);
      expect(
        await store.recordEventConflict(
          { ...c('e-2', T0 + 2), resolution: 'superseded', supersededDecision: { disposition: 'finding', rule: 'external' } },
          'fp-a',
        ),
      ).toBe(true);
      const all = await store.listEventConflicts({ sinceMs: 0, limit: 10 });
      expect(all.map((x) => [x.eventId, x.detectedMs])).toEqual([
        ['e-2', T0 + 2],
        ['e-1', T0 + 2],
        ['e-1', T0],
      ]);
      expect(all[0]).toEqual({
        eventId: 'e-2',
        detectedMs: T0 + 2,
        resolution: 'superseded',
        kept: { origin: 'trail' },
        dropped: { origin: 'pushed' },
        supersededDecision: { disposition: 'finding', rule: 'external' },
      });
      expect(await store.listEventConflicts({ sinceMs: T0 + 1, limit: 1 })).toHaveLength(1);
    });
  });

  describe('pending', () => {
    it('due by time, earliest first, limited; adding again replaces the row', async () => {
      await store.addPending({ eventId: 'e-2', eventTimeMs: T0, dueMs: T0 + 2 * MIN, raw: { n: 2 } });
      await store.addPending({ eventId: 'e-1', eventTimeMs: T0, dueMs: T0 + MIN, raw: { n: 1 } });
      await store.addPending({ eventId: 'e-3', eventTimeMs: T0, dueMs: T0 + 9 * MIN, raw: { n: 3 } });
      expect(await store.pendingCount()).toBe(3);
      expect(await store.duePending(T0 + 2 * MIN, 10)).toEqual([
        { eventId: 'e-1', eventTimeMs: T0, dueMs: T0 + MIN, raw: { n: 1 } },
        { eventId: 'e-2', eventTimeMs: T0, dueMs: T0 + 2 * MIN, raw: { n: 2 } },
      ]);
      expect(await store.duePending(T0 + 2 * MIN, 1)).toHaveLength(1);
      await store.addPending({ eventId: 'e-1', eventTimeMs: T0 + 1, dueMs: T0 + 5 * MIN, raw: { n: 11 } });
      expect(await store.pendingCount()).toBe(3);
      expect((await store.duePending(T0 + 5 * MIN, 10)).map((p) => p.eventId)).toEqual(['e-2', 'e-1']);
      expect((await store.duePending(T0 + 5 * MIN, 10))[1]).toEqual({
        eventId: 'e-1',
        eventTimeMs: T0 + 1,
        dueMs: T0 + 5 * MIN,
        raw: { n: 11 },
      });
      await store.removePending('e-1');
      await store.removePending('e-unknown');
      expect(await store.pendingCount()).toBe(2);
    });
  });

  describe('decisions', () => {
    it('saved once per (kind, subject); taken back with what it was', async () => {
      expect(await store.saveDecision(decision())).toBe(true);
      expect(await store.saveDecision(decision({ disposition: 'suppressed', rule: 'attested' }))).toBe(false);
      expect(await store.saveDecision(decision({ kind: 'guardduty', disposition: 'archive', rule: 'attested' }))).toBe(true);
      expect(await store.decisionOf('cloudtrail', 'e-1')).toBe('finding');
      expect(await store.decisionOf('guardduty', 'e-1')).toBe('archive');
      expect(await store.decisionOf('cloudtrail', 'e-2')).toBeNull();
      expect(await store.takeDecision('cloudtrail', 'e-1')).toEqual({ disposition: 'finding', rule: 'external' });
      expect(await store.takeDecision('cloudtrail', 'e-1')).toBeNull();
      expect(await store.decisionOf('cloudtrail', 'e-1')).toBeNull();
      expect(await store.saveDecision(decision({ disposition: 'suppressed', rule: 'attested' }))).toBe(true);
      expect(await store.decisionOf('cloudtrail', 'e-1')).toBe('suppressed');
    });

    it('new events and their decisions in one call: written in order, false where a decision was kept already', async () => {
      expect(await store.saveDecision(decision({ subjectId: 'e-2', rule: 'kept-before', decidedMs: T0 }))).toBe(true);
      const items = ['e-1', 'e-2', 'e-3'].map((id, n) => ({
        event: storedEvent({ eventId: id, eventTimeMs: T0 + n }),
        decision: decision({ subjectId: id, timeMs: T0 + n, decidedMs: T0 + 10 + n }),
      }));
      expect(await store.withTransaction((tx) => tx.recordDecided(items))).toEqual([true, false, true]);
      for (const id of ['e-1', 'e-2', 'e-3']) expect(await store.keptCopy(id)).not.toBeNull();
      const listed = await store.listDecisions({ sinceMs: 0, disposition: null, limit: 10 });
      expect(listed.map((d) => [d.subjectId, d.rule])).toEqual([
        ['e-3', 'external'],
        ['e-1', 'external'],
        ['e-2', 'kept-before'],
      ]);
      expect(await store.withTransaction((tx) => tx.recordDecided([]))).toEqual([]);
      // One subject twice in one call: the first is stored, the second is not.
      const twice = { event: storedEvent({ eventId: 'e-4' }), decision: decision({ subjectId: 'e-4', decidedMs: T0 + 20 }) };
      expect(
        await store.withTransaction((tx) => tx.recordDecided([twice, { ...twice, decision: { ...twice.decision, rule: 'second' } }])),
      ).toEqual([true, false]);
      expect((await store.listDecisions({ sinceMs: T0 + 20, disposition: null, limit: 10 })).map((d) => d.rule)).toEqual(['external']);
      // Nulls in every column that takes one, and a detail that is not an object.
      const bare = {
        event: storedEvent({ eventId: 'e-5', accessKeyId: null, vpcEndpointId: 'vpce-5' }),
        decision: decision({ subjectId: 'e-5', accessKeyId: null, sourceIp: null, gatewayId: 'gw-a', detail: 'text', decidedMs: T0 + 30 }),
      };
      expect(await store.withTransaction((tx) => tx.recordDecided([bare]))).toEqual([true]);
      const [bareListed] = await store.listDecisions({ sinceMs: T0 + 30, disposition: null, limit: 10 });
      expect(bareListed).toEqual(bare.decision);
      expect((await store.keptCopy('e-5'))?.fingerprint).toBe('fp-pushed');
    });

    it('new events and their decisions written in one call are undone with their transaction', async () => {
      await expect(
        store.withTransaction(async (tx) => {
          await tx.recordDecided([{ event: storedEvent(), decision: decision() }]);
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await store.keptCopy('e-1')).toBeNull();
      expect(await store.decisionOf('cloudtrail', 'e-1')).toBeNull();
    });

    it('listed newest decided first, by disposition, since a time, limited', async () => {
      await store.saveDecision(decision({ subjectId: 'e-1', decidedMs: T0 + 1 }));
      await store.saveDecision(decision({ subjectId: 'e-2', decidedMs: T0 + 3, disposition: 'suppressed', rule: 'attested' }));
      await store.saveDecision(decision({ subjectId: 'e-3', decidedMs: T0 + 3 }));
      await store.saveDecision(decision({ subjectId: 'e-4', decidedMs: T0 - 5 }));
      expect((await store.listDecisions({ sinceMs: T0, disposition: null, limit: 10 })).map((d) => d.subjectId)).toEqual([
        'e-3',
        'e-2',
        'e-1',
      ]);
      expect((await store.listDecisions({ sinceMs: T0, disposition: 'finding', limit: 10 })).map((d) => d.subjectId)).toEqual([
        'e-3',
        'e-1',
      ]);
      expect(await store.listDecisions({ sinceMs: 0, disposition: null, limit: 2 })).toHaveLength(2);
      expect((await store.listDecisions({ sinceMs: T0, disposition: 'suppressed', limit: 10 }))[0]).toEqual(
        decision({ subjectId: 'e-2', decidedMs: T0 + 3, disposition: 'suppressed', rule: 'attested' }),
      );
    });

    it("counts the detector's own findings for a key by event time", async () => {
      await store.saveDecision(decision({ subjectId: 'e-1', timeMs: T0 }));
      await store.saveDecision(decision({ subjectId: 'e-2', timeMs: T0 + MIN }));
      await store.saveDecision(decision({ subjectId: 'e-3', timeMs: T0, disposition: 'suppressed' }));
      await store.saveDecision(decision({ subjectId: 'e-4', timeMs: T0, accessKeyId: KEY2 }));
      await store.saveDecision(decision({ kind: 'guardduty', subjectId: 'e-5', timeMs: T0 }));
      expect(await store.findingsForKey(KEY, T0, T0 + MIN)).toBe(2);
      expect(await store.findingsForKey(KEY, T0 + 1, T0 + MIN)).toBe(1);
      expect(await store.findingsForKey(KEY2, T0 - MIN, T0 + MIN)).toBe(1);
    });
  });

  describe('findings and GuardDuty', () => {
    it('a finding is stored by id and read back as a copy', async () => {
      expect(await store.getFinding('f-1')).toBeNull();
      const f = { id: 'f-1', count: 1 };
      await store.putFinding('f-1', f, T0);
      f.count = 99;
      expect(await store.getFinding('f-1')).toEqual({ id: 'f-1', count: 1 });
      await store.putFinding('f-1', { id: 'f-1', count: 2 }, T0 + 1);
      expect(await store.getFinding('f-1')).toEqual({ id: 'f-1', count: 2 });
    });

    it('GuardDuty findings archived are remembered', async () => {
      expect(await store.guardDutyArchived('gd-1')).toBe(false);
      await store.markGuardDutyArchived(['gd-1', 'gd-2'], T0);
      await store.markGuardDutyArchived(['gd-1'], T0 + 1);
      expect(await store.guardDutyArchived('gd-1')).toBe(true);
      expect(await store.guardDutyArchived('gd-2')).toBe(true);
      expect(await store.guardDutyArchived('gd-3')).toBe(false);
    });
  });

  describe('outbox', () => {
    const SINK = 'securityhub';

    it('queues per sink, due in order, limited', async () => {
      await store.enqueueDelivery(SINK, 'f1', 1_000);
      await store.enqueueDelivery(SINK, 'f2', 2_000);
      await store.enqueueDelivery('other', 'f1', 1_000);
      expect((await store.dueDeliveries(SINK, 1_500, 10)).map((d) => d.itemId)).toEqual(['f1']);
      expect(await store.dueDeliveries(SINK, 5_000, 10)).toEqual([
        { itemId: 'f1', version: 1, attempts: 0, enqueuedMs: 1_000 },
        { itemId: 'f2', version: 1, attempts: 0, enqueuedMs: 2_000 },
      ]);
      expect(await store.dueDeliveries(SINK, 5_000, 1)).toHaveLength(1);
      expect(await store.deliveryBacklog(SINK)).toEqual({ pending: 2, failed: 0, oldestPendingMs: 1_000 });
      expect(await store.nextDeliveryMs(SINK)).toBe(1_000);
      expect(await store.nextDeliveryMs('none')).toBeNull();
      expect(await store.deliveryBacklog('none')).toEqual({ pending: 0, failed: 0, oldestPendingMs: null });
    });

    it('an update while undelivered is a new version of the same row, due at once, as old as the first change', async () => {
      await store.enqueueDelivery(SINK, 'f1', 1_000);
      const [v1] = await store.dueDeliveries(SINK, 1_000, 10);
      await store.retryDelivery(SINK, 'f1', v1!.version, 1, 60_000, 'ECONNREFUSED');
      expect(await store.dueDeliveries(SINK, 2_000, 10)).toEqual([]);
      expect(await store.nextDeliveryMs(SINK)).toBe(60_000);
      await store.enqueueDelivery(SINK, 'f1', 3_000);
      expect(await store.dueDeliveries(SINK, 3_000, 10)).toEqual([{ itemId: 'f1', version: 2, attempts: 1, enqueuedMs: 1_000 }]);
    });

    it('ack of an older version keeps the newer one with a clean slate; ack of the current one removes it', async () => {
      await store.enqueueDelivery(SINK, 'f1', 1_000);
      await store.retryDelivery(SINK, 'f1', 1, 3, 1_000, 'timeout');
      await store.enqueueDelivery(SINK, 'f1', 2_000);
      await store.ackDelivery(SINK, 'f1', 1);
      expect(await store.dueDeliveries(SINK, 2_000, 10)).toEqual([{ itemId: 'f1', version: 2, attempts: 0, enqueuedMs: 1_000 }]);
      await store.ackDelivery(SINK, 'f1', 2);
      expect(await store.dueDeliveries(SINK, 9_000, 10)).toEqual([]);
      expect(await store.deliveryBacklog(SINK)).toEqual({ pending: 0, failed: 0, oldestPendingMs: null });
    });

    it('a retry of an older version leaves the newer one due at once', async () => {
      await store.enqueueDelivery(SINK, 'f1', 1_000);
      await store.enqueueDelivery(SINK, 'f1', 2_000);
      await store.retryDelivery(SINK, 'f1', 1, 1, 90_000, 'ECONNRESET');
      expect(await store.dueDeliveries(SINK, 2_000, 10)).toEqual([{ itemId: 'f1', version: 2, attempts: 0, enqueuedMs: 1_000 }]);
    });

    it('a failed delivery is parked until the item changes, then starts afresh', async () => {
      await store.enqueueDelivery(SINK, 'f1', 1_000);
      await store.failDelivery(SINK, 'f1', 1, 4, 'InvalidInput');
      expect(await store.dueDeliveries(SINK, 9_000, 10)).toEqual([]);
      expect(await store.deliveryBacklog(SINK)).toEqual({ pending: 0, failed: 1, oldestPendingMs: null });
      expect(await store.nextDeliveryMs(SINK)).toBeNull();
      await store.failDelivery(SINK, 'f1', 7, 5, 'stale version: ignored');
      await store.enqueueDelivery(SINK, 'f1', 5_000);
      expect(await store.dueDeliveries(SINK, 5_000, 10)).toEqual([{ itemId: 'f1', version: 2, attempts: 0, enqueuedMs: 5_000 }]);
      expect(await store.deliveryBacklog(SINK)).toEqual({ pending: 1, failed: 0, oldestPendingMs: 5_000 });
    });
  });

  describe('finding occurrences', () => {
    it('kept once per event, rechecked least recently checked first, counted per finding', async () => {
      await store.addFindingOccurrence({ eventId: 'e-1', findingId: 'f-1', eventTimeMs: T0, event: { n: 1 } }, T0);
      await store.addFindingOccurrence({ eventId: 'e-2', findingId: 'f-1', eventTimeMs: T0 + MIN, event: { n: 2 } }, T0 + 1);
      await store.addFindingOccurrence({ eventId: 'e-3', findingId: 'f-2', eventTimeMs: T0 - 60 * MIN, event: { n: 3 } }, T0 + 2);
      await store.addFindingOccurrence({ eventId: 'e-1', findingId: 'f-9', eventTimeMs: T0, event: { n: 9 } }, T0 + 3);
      expect(await store.occurrenceCounts('f-1')).toEqual({ stored: 2, unresolved: 2 });
      expect(await store.occurrenceCounts('f-9')).toEqual({ stored: 0, unresolved: 0 });
      expect(await store.occurrencesToRecheck(T0 - MIN, 10)).toEqual([
        { eventId: 'e-1', findingId: 'f-1', eventTimeMs: T0, event: { n: 1 } },
        { eventId: 'e-2', findingId: 'f-1', eventTimeMs: T0 + MIN, event: { n: 2 } },
      ]);
      await store.markOccurrenceChecked('e-1', T0 + 10, false);
      expect((await store.occurrencesToRecheck(T0 - 120 * MIN, 10)).map((o) => o.eventId)).toEqual(['e-2', 'e-3', 'e-1']);
      await store.markOccurrenceChecked('e-2', T0 + 11, true);
      expect(await store.occurrenceCounts('f-1')).toEqual({ stored: 2, unresolved: 1 });
      expect((await store.occurrencesToRecheck(T0 - 120 * MIN, 1)).map((o) => o.eventId)).toEqual(['e-3']);
      expect((await store.occurrencesToRecheck(T0 - 120 * MIN, 10)).map((o) => o.eventId)).toEqual(['e-3', 'e-1']);
    });
  });

  describe('prune', () => {
    it('forgets evidence, events, batches and occurrences older than the bound, and counts them', async () => {
      const old = T0 - 10 * 60 * MIN;
      await store.ingestBatch(
        'gw-a',
        batch('batch-old1', [observation({ at: old }), heartbeat(old), observation({ at: old, outcome: 'denied' })]),
        old,
      );
      await store.ingestBatch('gw-a', batch('batch-new1', [observation({ at: T0, accessKeyId: KEY2 }), heartbeat(T0)]), T0);
      await store.recordEvent(storedEvent({ eventId: 'e-old', eventTimeMs: old, seenMs: old }));
      await store.recordEvent(storedEvent({ eventId: 'e-late', eventTimeMs: old, seenMs: T0 }));
      await store.recordEvent(storedEvent({ eventId: 'e-new', eventTimeMs: T0, seenMs: T0 }));
      await store.addFindingOccurrence({ eventId: 'e-old', findingId: 'f-1', eventTimeMs: old, event: {} }, old);
      await store.addFindingOccurrence({ eventId: 'e-new', findingId: 'f-1', eventTimeMs: T0, event: {} }, T0);

      expect(await store.prune(T0 - 60 * MIN)).toEqual({ observations: 2, heartbeats: 1, events: 1 });
      expect(await store.keySightings(KEY, old - MIN, old + MIN)).toEqual([]);
      expect(await store.heartbeatNear('gw-a', old - MIN, old + MIN)).toBe(false);
      expect(await store.keySightings(KEY2, T0, T0)).toHaveLength(1);
      expect(await store.heartbeatNear('gw-a', T0 - MIN, T0 + MIN)).toBe(true);
      expect(await store.keptCopy('e-old')).toBeNull();
      expect(await store.keptCopy('e-late')).not.toBeNull();
      expect(await store.keptCopy('e-new')).not.toBeNull();
      expect((await store.cloudTrailUses(KEY, old - MIN, T0)).map((u) => u.eventId)).toEqual(['e-late', 'e-new']);
      expect(await store.occurrenceCounts('f-1')).toEqual({ stored: 1, unresolved: 1 });
      // A pruned batch id may come again: it is stored as new.
      expect(await store.ingestBatch('gw-a', batch('batch-old1', [heartbeat(T0)]), T0)).toEqual({ kind: 'stored', records: 1 });
      expect(await store.ingestBatch('gw-a', batch('batch-new1', [heartbeat(T0)]), T0)).toEqual({ kind: 'duplicate' });
    });
  });

  describe('transactions', () => {
    it('commit together', async () => {
      expect(
        await store.withTransaction(async (tx) => {
          await tx.recordEvent(storedEvent());
          await tx.saveDecision(decision());
          await tx.enqueueDelivery('sink', 'f-1', T0);
          return 'done';
        }),
      ).toBe('done');
      expect(await store.keptCopy('e-1')).not.toBeNull();
      expect(await store.decisionOf('cloudtrail', 'e-1')).toBe('finding');
      expect(await store.deliveryBacklog('sink')).toMatchObject({ pending: 1 });
    });

    it('roll back every write when the body throws', async () => {
      await store.recordEvent(storedEvent({ eventId: 'e-0' }));
      await store.addPending({ eventId: 'e-0', eventTimeMs: T0, dueMs: T0, raw: {} });
      await store.enqueueDelivery('sink', 'f-0', T0);
      await store.putFinding('f-0', { v: 1 }, T0);
      const body = async (tx: StoreTx) => {
        await tx.recordEvent(storedEvent());
        await tx.replaceEvent(storedEvent({ eventId: 'e-0', fingerprint: 'fp-replaced', accessKeyId: KEY2 }));
        await tx.saveDecision(decision());
        await tx.removePending('e-0');
        await tx.addPending({ eventId: 'e-1', eventTimeMs: T0, dueMs: T0, raw: {} });
        await tx.putFinding('f-0', { v: 2 }, T0);
        await tx.putFinding('f-1', { v: 1 }, T0);
        await tx.enqueueDelivery('sink', 'f-0', T0 + 1);
        await tx.enqueueDelivery('sink', 'f-1', T0 + 1);
        await tx.recordEventConflict(
          { eventId: 'e-0', detectedMs: T0, resolution: 'rejected', kept: {}, dropped: {}, supersededDecision: null },
          'fp',
        );
        await tx.addFindingOccurrence({ eventId: 'e-1', findingId: 'f-1', eventTimeMs: T0, event: {} }, T0);
        await tx.markGuardDutyArchived(['gd-1'], T0);
        // What the transaction wrote, it reads back before it ends.
        expect(await tx.getFinding('f-0')).toEqual({ v: 2 });
        throw new Error('boom');
      };
      await expect(store.withTransaction(body)).rejects.toThrow('boom');
      expect(await store.keptCopy('e-1')).toBeNull();
      expect(await store.keptCopy('e-0')).toMatchObject({ fingerprint: 'fp-pushed' });
      expect((await store.cloudTrailUses(KEY, T0, T0)).map((u) => u.eventId)).toEqual(['e-0']);
      expect(await store.cloudTrailUses(KEY2, T0, T0)).toEqual([]);
      expect(await store.decisionOf('cloudtrail', 'e-1')).toBeNull();
      expect(await store.pendingCount()).toBe(1);
      expect((await store.duePending(T0, 10)).map((p) => p.eventId)).toEqual(['e-0']);
      expect(await store.getFinding('f-0')).toEqual({ v: 1 });
      expect(await store.getFinding('f-1')).toBeNull();
      expect(await store.dueDeliveries('sink', T0 + 5, 10)).toEqual([{ itemId: 'f-0', version: 1, attempts: 0, enqueuedMs: T0 }]);
      expect(await store.listEventConflicts({ sinceMs: 0, limit: 10 })).toEqual([]);
      expect(await store.occurrenceCounts('f-1')).toEqual({ stored: 0, unresolved: 0 });
      expect(await store.guardDutyArchived('gd-1')).toBe(false);
    });

    it('two transactions never interleave: the second begins after the first ended', async () => {
      const steps: string[] = [];
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const first = store.withTransaction(async (tx) => {
        steps.push('first begins');
        await tx.putFinding('f-1', { by: 'first' }, T0);
        await gate;
        steps.push('first ends');
        throw new Error('first fails');
      });
      const second = store.withTransaction(async (tx) => {
        steps.push('second begins');
        const seen = await tx.getFinding('f-1');
        await tx.putFinding('f-2', { saw: seen }, T0);
        steps.push('second ends');
      });
      // Let the first begin (a networked store answers BEGIN over a socket) and every queued step run:
      // the second must still be waiting for the first.
      await settle(() => steps.length > 0);
      expect(steps).toEqual(['first begins']);
      release();
      await expect(first).rejects.toThrow('first fails');
      await second;
      expect(steps).toEqual(['first begins', 'first ends', 'second begins', 'second ends']);
      // The second did not see the first's rolled-back write.
      expect(await store.getFinding('f-2')).toEqual({ saw: null });
      expect(await store.getFinding('f-1')).toBeNull();
    });

    it('an operation outside a transaction waits for the open one, and is not rolled back with it', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const failing = store.withTransaction(async (tx) => {
        await tx.putFinding('f-1', { v: 'rolled back' }, T0);
        await gate;
        throw new Error('boom');
      });
      const outside = store.ingestBatch('gw-a', batch('batch-0001', [observation()]), T0);
      const read = store.getFinding('f-1');
      for (let i = 0; i < 20; i++) await Promise.resolve();
      release();
      await expect(failing).rejects.toThrow('boom');
      expect(await outside).toEqual({ kind: 'stored', records: 1 });
      expect(await read).toBeNull();
      expect(await store.keySightings(KEY, T0, T0)).toHaveLength(1);
    });

    it('a savepoint that fails undoes only its own writes; the transaction goes on and commits the rest', async () => {
      await store.putFinding('f-0', { v: 1 }, T0);
      const seen = await store.withTransaction(async (tx) => {
        await tx.recordEvent(storedEvent({ eventId: 'e-0' }));
        expect(
          await tx.savepoint(async (part) => {
            await part.saveDecision(decision({ subjectId: 'e-0' }));
            return 'kept';
          }),
        ).toBe('kept');
        await expect(
          tx.savepoint(async (part) => {
            await part.recordEvent(storedEvent({ eventId: 'e-1' }));
            await part.putFinding('f-0', { v: 2 }, T0);
            await part.addPending({ eventId: 'e-1', eventTimeMs: T0, dueMs: T0, raw: {} });
            await part.enqueueDelivery('sink', 'f-0', T0);
            expect(await part.getFinding('f-0')).toEqual({ v: 2 });
            throw new Error('this record fails');
          }),
        ).rejects.toThrow('this record fails');
        // After the failed part, the transaction sees its state from before that part began.
        const finding = await tx.getFinding('f-0');
        await tx.recordEvent(storedEvent({ eventId: 'e-2' }));
        return finding;
      });
      expect(seen).toEqual({ v: 1 });
      expect(await store.keptCopy('e-0')).not.toBeNull();
      expect(await store.decisionOf('cloudtrail', 'e-0')).toBe('finding');
      expect(await store.keptCopy('e-1')).toBeNull();
      expect(await store.keptCopy('e-2')).not.toBeNull();
      expect(await store.getFinding('f-0')).toEqual({ v: 1 });
      expect(await store.pendingCount()).toBe(0);
      expect(await store.deliveryBacklog('sink')).toMatchObject({ pending: 0 });
    });

    it('savepoints nest: an inner failure keeps the outer part; the transaction failing undoes every part', async () => {
      await store.withTransaction(async (tx) => {
        await tx.savepoint(async (outer) => {
          await outer.putFinding('f-outer', { v: 1 }, T0);
          await expect(
            outer.savepoint(async (inner) => {
              await inner.putFinding('f-inner', { v: 1 }, T0);
              throw new Error('inner fails');
            }),
          ).rejects.toThrow('inner fails');
          await outer.savepoint(async (inner) => inner.putFinding('f-inner-2', { v: 1 }, T0));
        });
      });
      expect(await store.getFinding('f-outer')).toEqual({ v: 1 });
      expect(await store.getFinding('f-inner')).toBeNull();
      expect(await store.getFinding('f-inner-2')).toEqual({ v: 1 });

      await expect(
        store.withTransaction(async (tx) => {
          await tx.savepoint(async (part) => part.putFinding('f-late', { v: 1 }, T0));
          throw new Error('the transaction fails');
        }),
      ).rejects.toThrow('the transaction fails');
      expect(await store.getFinding('f-late')).toBeNull();
    });

    it('two savepoints of one transaction open at once are refused, and the transaction with them', async () => {
      await expect(
        store.withTransaction(async (tx) => {
          let release!: () => void;
          const gate = new Promise<void>((resolve) => (release = resolve));
          const first = tx.savepoint(async (part) => {
            await part.putFinding('f-1', {}, T0);
            await gate;
          });
          const second = tx.savepoint(async (part) => part.putFinding('f-2', {}, T0));
          release();
          await Promise.allSettled([first, second]);
          await first;
        }),
      ).rejects.toThrow(/one at a time/);
      expect(await store.getFinding('f-1')).toBeNull();
      expect(await store.getFinding('f-2')).toBeNull();
    });

    it('after-commit hooks run once the commit is visible, in order; a rollback or an undone savepoint drops its own', async () => {
      const ran: string[] = [];
      // A hook reads through the store itself: the commit is visible to it.
      const seen: unknown[] = [];
      await store.withTransaction(async (tx) => {
        await tx.putFinding('f-hook', { v: 1 }, T0);
        tx.afterCommit(() => ran.push('first'));
        await expect(
          tx.savepoint((part) => {
            part.afterCommit(() => ran.push('undone'));
            return Promise.reject(new Error('this part fails'));
          }),
        ).rejects.toThrow('this part fails');
        await tx.savepoint((part) => Promise.resolve(part.afterCommit(() => ran.push('kept part'))));
        tx.afterCommit(() => void store.getFinding('f-hook').then((f) => seen.push(f)));
        expect(ran).toEqual([]);
      });
      expect(ran).toEqual(['first', 'kept part']);
      await expect.poll(() => seen).toEqual([{ v: 1 }]);

      await expect(
        store.withTransaction((tx) => {
          tx.afterCommit(() => ran.push('rolled back'));
          return Promise.reject(new Error('the whole transaction fails'));
        }),
      ).rejects.toThrow('the whole transaction fails');
      expect(ran).toEqual(['first', 'kept part']);
    });

    it('a hook that throws is reported as such, after the commit, and the hooks after it still run', async () => {
      const ran: string[] = [];
      await expect(
        store.withTransaction(async (tx) => {
          await tx.putFinding('f-committed', { v: 1 }, T0);
          tx.afterCommit(() => {
            throw new Error('hook broke');
          });
          tx.afterCommit(() => ran.push('after it'));
        }),
      ).rejects.toThrow(/committed, but a hook .* failed: hook broke/);
      expect(ran).toEqual(['after it']);
      expect(await store.getFinding('f-committed')).toEqual({ v: 1 });
    });

    it('a handle used after its transaction ended is refused', async () => {
      let kept: StoreTx | null = null;
      await store.withTransaction(async (tx) => {
        kept = tx;
        await tx.pendingCount();
      });
      await expect(kept!.putFinding('f-1', {}, T0)).rejects.toThrow(/transaction already ended/);
      expect(() => kept!.afterCommit(() => undefined)).toThrow(/transaction already ended/);
      expect(await store.getFinding('f-1')).toBeNull();
    });
  });

  describe('evidence snapshot', () => {
    it('answers what it was asked for, as the store does, in one read', async () => {
      await store.ingestBatch(
        'gw-a',
        batch('batch-0001', [
          observation({ at: T0 }),
          observation({ at: T0 + MIN, accessKeyId: KEY2 }),
          observation({ at: T0, mode: 'tunnel', accessKeyId: null }),
          observation({ at: T0, accessKeyId: KEY2, outcome: 'denied' }),
          heartbeat(T0 + 2 * MIN),
        ]),
        T0,
      );
      const snap = await store.evidenceSnapshot({
        keys: [
          { accessKeyId: KEY, fromMs: T0 - MIN, toMs: T0 + MIN },
          { accessKeyId: KEY2, fromMs: T0 - MIN, toMs: T0 + 2 * MIN },
        ],
        endpoints: [{ gatewayId: 'gw-a', service: 'sts', region: 'us-east-1', fromMs: T0 - MIN, toMs: T0 + MIN }],
        liveness: [{ gatewayId: 'gw-a', fromMs: T0 - 5 * MIN, toMs: T0 + 5 * MIN }],
      });
      expect(snap.keySightings(KEY, T0 - MIN, T0 + MIN)).toEqual(await store.keySightings(KEY, T0 - MIN, T0 + MIN));
      expect(snap.keySightings(KEY2, T0 - MIN, T0 + 2 * MIN).map((s) => s.outcome)).toEqual(['ok']);
      expect(snap.endpointSightings('gw-a', 'sts', 'us-east-1', T0 - MIN, T0 + MIN)).toHaveLength(3);
      expect(snap.heartbeatNear('gw-a', T0 + 2 * MIN, T0 + 2 * MIN)).toBe(true);
      expect(snap.heartbeatNear('gw-a', T0 + 3 * MIN, T0 + 4 * MIN)).toBe(false);
    });
  });
});
