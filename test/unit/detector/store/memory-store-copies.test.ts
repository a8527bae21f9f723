/**
 * The engine over the in-memory store, as replay runs it (values kept as
 * handed over: the slice's kept copy and the store's row are one object) and
 * as tests do (values copied): a later copy of an event is judged against the
 * fingerprint of the first copy's fields, within its slice and after the
 * commit.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { replayPipeline } from '../../../../detector/replay/replay.js';
import { normalizeRecord } from '../../../../detector/cloudtrail/parse.js';
import { eventFingerprint } from '../../../../detector/correlate/event-identity.js';
import type { DecisionPipeline } from '../../../../detector/engine/pipeline.js';
import { MemoryStore } from '../../../../detector/store/memory-store.js';
import { EXTERNAL_IP, cloudTrailRecord, pipelineConfig } from '../../../helpers/detector.js';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const KEY = 'ASIAMEMORYCOPIESAAA1';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-memory-copies-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function pipelineOver(store: MemoryStore): Promise<DecisionPipeline> {
  return replayPipeline(await pipelineConfig(dir), store, { now: () => T0 + 60_000 });
}

const record = (eventId: string, sourceIp = EXTERNAL_IP) => cloudTrailRecord({ key: KEY, sourceIp, time: T0, eventId });

function fingerprintOf(raw: unknown): string {
  const n = normalizeRecord(raw);
  if (n.kind !== 'event') throw new Error(n.reason);
  return eventFingerprint(n.event);
}

describe.each([
  { name: 'values kept as handed over (replay)', options: { copyValues: false, decisions: 'without-detail' as const } },
  { name: 'values copied', options: {} },
])('the engine over a MemoryStore, $name', ({ options }) => {
  it('keeps the fingerprint of the event fields, and judges later copies against it', async () => {
    const store = new MemoryStore(options);
    const pipeline = await pipelineOver(store);
    const a = record('evt-a');
    const changed = record('evt-a', '198.51.100.201');
    // In one slice: the second and third copies are judged against the first, not yet committed.
    expect(await pipeline.cloudtrail.processBatch([a, structuredClone(a), changed], 'trail')).toEqual(['decided', 'duplicate', 'conflict']);
    expect((await store.keptCopy('evt-a'))?.fingerprint).toBe(fingerprintOf(a));
    // After the commit, one slice each.
    const b = record('evt-b');
    expect(await pipeline.cloudtrail.processRecord(b, 'trail')).toBe('decided');
    expect(await pipeline.cloudtrail.processRecord(structuredClone(b), 'trail')).toBe('duplicate');
    expect(await pipeline.cloudtrail.processRecord(record('evt-b', '198.51.100.201'), 'trail')).toBe('conflict');
    expect((await store.keptCopy('evt-b'))?.fingerprint).toBe(fingerprintOf(b));
    const [conflict] = await store.listEventConflicts({ sinceMs: 0, limit: 10 });
    expect(conflict).toMatchObject({ eventId: 'evt-b', resolution: 'rejected' });
    await pipeline.close();
  });

  it('a pushed copy superseded by the trail copy: the trail copy is kept, with its own fingerprint', async () => {
    const store = new MemoryStore(options);
    const pipeline = await pipelineOver(store);
    const pushed = record('evt-c', '198.51.100.201');
    const trail = record('evt-c');
    expect(await pipeline.cloudtrail.processRecord(pushed, 'pushed')).toBe('decided');
    expect(await pipeline.cloudtrail.processRecord(trail, 'trail')).toBe('decided');
    expect(await store.keptCopy('evt-c')).toMatchObject({ origin: 'trail', fingerprint: fingerprintOf(trail) });
    const [conflict] = await store.listEventConflicts({ sinceMs: 0, limit: 10 });
    expect(conflict).toMatchObject({ eventId: 'evt-c', resolution: 'superseded' });
    await pipeline.close();
  });
});
