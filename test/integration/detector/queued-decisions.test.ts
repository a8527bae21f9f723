/**
 * In a batch decided without savepoints, a new event whose decision is final
 * and builds no finding is queued and written with the slice's others in one
 * store call (recordDecided), before any other write and before the commit.
 * Over the suite's store (a real SQLite file, or PostgreSQL), the same records
 * decided that way and one transaction each leave the same rows and tell the
 * same decisions in the same order: repeats, conflicts and decisions that
 * build findings among the queued ones, and a decision kept already (not
 * stored again, not told).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RecordOutcome } from '../../../detector/engine/correlation-engine.js';
import { replayPipeline } from '../../../detector/replay/replay.js';
import type { DecidedEvent, DetectorStore, StoredDecision, StoreTx } from '../../../detector/store/store.js';
import { EXTERNAL_IP, INSIDE_AWS_IP, cloudTrailRecord, openSuiteStore, pipelineConfig, type JsonDoc } from '../../helpers/detector.js';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const NOW = T0 + 60_000;
const KEYS = ['ASIAQUEUEDKEYAAAAAA1', 'ASIAQUEUEDKEYAAAAAA2', 'ASIAQUEUEDKEYAAAAAA3'];

let dir: string;
const opened: { close(): Promise<void> }[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-queued-'));
});

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  outcomes: RecordOutcome[];
  told: string[];
  store: DetectorStore;
  /** The number of events of each recordDecided call made. */
  written: number[];
}

/** The store, with the length of every recordDecided call made through a transaction's handle noted in `written`. */
function noting(store: DetectorStore, written: number[]): DetectorStore {
  const bound = (target: object, p: string | symbol): unknown => {
    const v: unknown = Reflect.get(target, p);
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  };
  return new Proxy(store, {
    get(target, p) {
      if (p !== 'withTransaction') return bound(target, p);
      return (fn: (tx: StoreTx) => Promise<unknown>) =>
        target.withTransaction((tx) =>
          fn(
            new Proxy(tx, {
              get(t, q) {
                if (q !== 'recordDecided') return bound(t, q);
                return (items: readonly DecidedEvent[]) => {
                  written.push(items.length);
                  return t.recordDecided(items);
                };
              },
            }),
          ),
        );
    },
  });
}

/** Decides `records` over a fresh store of the suite: as one batch, or one batch per record (each its own transaction). */
async function decideAll(
  name: string,
  records: readonly JsonDoc[],
  together: boolean,
  findings: boolean,
  before?: (store: DetectorStore) => Promise<void>,
): Promise<Run> {
  const sub = join(dir, name);
  await mkdir(sub, { recursive: true });
  const { store: openedStore, close } = await openSuiteStore(sub);
  opened.push({ close });
  const written: number[] = [];
  const store = noting(openedStore, written);
  await before?.(store);
  const told: string[] = [];
  const pipeline = await replayPipeline(await pipelineConfig(sub), store, {
    now: () => NOW,
    findings,
    decided: (d) => told.push(`${d.eventId} ${d.disposition}/${d.rule}`),
  });
  try {
    const outcomes: RecordOutcome[] = [];
    if (together) outcomes.push(...(await pipeline.cloudtrail.processBatch(records, 'trail')));
    else for (const r of records) outcomes.push(await pipeline.cloudtrail.processRecord(r, 'trail'));
    return { outcomes, told, store, written };
  } finally {
    await pipeline.close();
  }
}

async function rows(store: DetectorStore, ids: readonly string[]) {
  const decisions = (await store.listDecisions({ sinceMs: 0, disposition: null, limit: 100 }))
    .map((d: StoredDecision) => ({ ...d }))
    .sort((a, b) => a.subjectId.localeCompare(b.subjectId));
  const kept = await store.keptCopies(ids);
  const conflicts = await store.listEventConflicts({ sinceMs: 0, limit: 100 });
  return { decisions, kept, conflicts: conflicts.map((c) => ({ ...c, detectedMs: 0 })) };
}

/** A new event, a repeat of it, a copy of it that differs (a conflict), an event from inside AWS, and more. */
function corpus(): JsonDoc[] {
  const a = cloudTrailRecord({ key: KEYS[0]!, sourceIp: EXTERNAL_IP, time: T0, eventId: 'evt-q-a' });
  const differing = { ...structuredClone(a), eventName: 'GetSessionToken' };
  return [
    a,
    cloudTrailRecord({ key: KEYS[1]!, sourceIp: INSIDE_AWS_IP, time: T0 + 1_000, eventId: 'evt-q-b' }),
    differing,
    structuredClone(a),
    cloudTrailRecord({ key: KEYS[2]!, sourceIp: EXTERNAL_IP, time: T0 + 2_000, eventId: 'evt-q-c' }),
    cloudTrailRecord({ key: KEYS[0]!, sourceIp: EXTERNAL_IP, time: T0 + 3_000, eventId: 'evt-q-d' }),
  ];
}

const IDS = ['evt-q-a', 'evt-q-b', 'evt-q-c', 'evt-q-d'];

describe('new events decided for good are written per slice', () => {
  for (const findings of [false, true])
    it(`leave the rows and tell the decisions as one transaction per record does (findings ${findings ? 'built' : 'not built'})`, async () => {
      const records = corpus();
      const together = await decideAll('together', records, true, findings);
      const apart = await decideAll('apart', records, false, findings);
      expect(together.outcomes).toEqual(['decided', 'decided', 'conflict', 'duplicate', 'decided', 'decided']);
      expect(together.outcomes).toEqual(apart.outcomes);
      expect(together.told).toEqual(apart.told);
      expect(together.told.map((t) => t.split(' ')[0])).toEqual(IDS);
      expect(await rows(together.store, IDS)).toEqual(await rows(apart.store, IDS));
      // Queued: every new event's decision without findings built, only the one that builds none with.
      const findingsTold = together.told.filter((t) => t.includes(' finding/')).length;
      expect(findingsTold).toBeGreaterThan(0);
      expect(together.written.reduce((a, b) => a + b, 0)).toBe(findings ? IDS.length - findingsTold : IDS.length);
      expect(apart.written).toEqual([]);
    });

  it('a decision kept already for a new event is neither stored again nor told', async () => {
    const kept: StoredDecision = {
      kind: 'cloudtrail',
      subjectId: 'evt-q-c',
      timeMs: T0,
      decidedMs: T0,
      disposition: 'suppressed',
      rule: 'attested',
      accessKeyId: KEYS[2]!,
      sourceIp: EXTERNAL_IP,
      gatewayId: 'gw1',
      detail: { kept: 'before' },
    };
    const before = async (store: DetectorStore) => void (await store.saveDecision(kept));
    const together = await decideAll('kept-together', corpus(), true, false, before);
    const apart = await decideAll('kept-apart', corpus(), false, false, before);
    expect(together.outcomes).toEqual(apart.outcomes);
    expect(together.told).toEqual(apart.told);
    expect(together.told.some((t) => t.startsWith('evt-q-c '))).toBe(false);
    expect(await rows(together.store, IDS)).toEqual(await rows(apart.store, IDS));
    const [row] = (await together.store.listDecisions({ sinceMs: 0, disposition: 'suppressed', limit: 10 })).filter(
      (d) => d.subjectId === 'evt-q-c',
    );
    expect(row?.detail).toEqual({ kept: 'before' });
    expect(await together.store.keptCopy('evt-q-c')).not.toBeNull();
  });
});
