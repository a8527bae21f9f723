/**
 * The store's side of event identity: one kept copy per event ID, replaced
 * only on purpose, conflicts kept once per dropped copy, and a kept copy that
 * outlives store.retention counted from its arrival (a pushed copy dated long
 * ago must still be there when the trail's copy comes).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../../detector/store/sqlite-store.js';
import type { StoredEvent } from '../../../../detector/store/store.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-11-27T12:00:00Z');

let dir: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-event-copies-'));
  store = new SqliteStore(join(dir, 'detector.db'));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function copy(over: Partial<StoredEvent> = {}): StoredEvent {
  return {
    eventId: 'e-1',
    accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
    sourceIp: 'AWS Internal',
    eventTimeMs: NOW - HOUR,
    vpcEndpointId: null,
    origin: 'pushed',
    fingerprint: 'fp-pushed',
    seenMs: NOW,
    summary: { origin: 'pushed', sourceIPAddress: 'AWS Internal' },
    ...over,
  };
}

describe('kept copies of events', () => {
  it('keeps the first copy of an ID, and replaces it only when told to', async () => {
    expect(await store.recordEvent(copy())).toBe(true);
    expect(await store.recordEvent(copy({ origin: 'trail', fingerprint: 'fp-trail' }))).toBe(false);
    expect(await store.keptCopy('e-1')).toEqual({
      origin: 'pushed',
      fingerprint: 'fp-pushed',
      summary: { origin: 'pushed', sourceIPAddress: 'AWS Internal' },
    });
    await store.replaceEvent(copy({ origin: 'trail', fingerprint: 'fp-trail', sourceIp: '198.51.100.200', summary: { origin: 'trail' } }));
    expect(await store.keptCopy('e-1')).toMatchObject({ origin: 'trail', fingerprint: 'fp-trail' });
    expect((await store.cloudTrailUses('ASIAY34FZKBOKMUTVV7A', 0, NOW)).map((u) => u.sourceIPAddress)).toEqual(['198.51.100.200']);
    expect(await store.keptCopy('e-2')).toBeNull();
  });

  it('a copy dated long ago stays for store.retention after it arrived, then goes', async () => {
    await store.recordEvent(copy({ eventTimeMs: 0, seenMs: NOW }));
    expect((await store.prune(NOW - 8 * HOUR)).events).toBe(0);
    expect(await store.keptCopy('e-1')).not.toBeNull();
    expect((await store.prune(NOW + 1)).events).toBe(1);
    expect(await store.keptCopy('e-1')).toBeNull();
  });

  it('records a conflict once per dropped copy, newest first', async () => {
    const c = (detectedMs: number) => ({
      eventId: 'e-1',
      detectedMs,
      resolution: 'rejected' as const,
      kept: { origin: 'trail' },
      dropped: { origin: 'pushed' },
      supersededDecision: null,
    });
    expect(await store.recordEventConflict(c(NOW), 'fp-a')).toBe(true);
    expect(await store.recordEventConflict(c(NOW + 1), 'fp-a')).toBe(false);
    expect(
      await store.recordEventConflict(
        { ...c(NOW + 2), resolution: 'superseded', supersededDecision: { disposition: 'ignored', rule: 'aws-internal' } },
        'fp-b',
      ),
    ).toBe(true);
    expect(await store.listEventConflicts({ sinceMs: 0, limit: 10 })).toEqual([
      { ...c(NOW + 2), resolution: 'superseded', supersededDecision: { disposition: 'ignored', rule: 'aws-internal' } },
      c(NOW),
    ]);
  });

  it('takes a decision out and says what it was', async () => {
    await store.saveDecision({
      kind: 'cloudtrail',
      subjectId: 'e-1',
      timeMs: NOW,
      decidedMs: NOW,
      disposition: 'ignored',
      rule: 'aws-internal',
      accessKeyId: null,
      sourceIp: 'AWS Internal',
      gatewayId: null,
      detail: {},
    });
    expect(await store.takeDecision('cloudtrail', 'e-1')).toEqual({ disposition: 'ignored', rule: 'aws-internal' });
    expect(await store.decisionOf('cloudtrail', 'e-1')).toBeNull();
    expect(await store.takeDecision('cloudtrail', 'e-1')).toBeNull();
  });
});
