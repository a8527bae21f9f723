/**
 * A batch of CloudTrail records is decided in one transaction (when a record
 * fails, again with a savepoint per record), over a real SQLite file (or
 * the suite's store): a record that fails is undone alone
 * (no kept copy, no decision, no finding), the others commit, and what the
 * decisions tell the world (the sink, `decided`, the counters) is told only
 * for what committed, in the batch's order.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DecisionPipeline } from '../../../detector/engine/pipeline.js';
import { replayPipeline } from '../../../detector/replay/replay.js';
import { createDetectorMetrics, type DetectorMetrics } from '../../../detector/metrics/metrics.js';
import type { DetectorStore } from '../../../detector/store/store.js';
import { EXTERNAL_IP, cloudTrailRecord, openSuiteStore, pipelineConfig } from '../../helpers/detector.js';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const KEYS = ['ASIABATCHKEYAAAAAAA1', 'ASIABATCHKEYAAAAAAA2', 'ASIABATCHKEYAAAAAAA3', 'ASIABATCHKEYAAAAAAA4'];
/** The key whose finding cannot be written (the outbox hook refuses it). */
const FAILING_KEY = KEYS[1]!;

let dir: string;
let store: DetectorStore;
let closeStore: () => Promise<void>;
let pipeline: DecisionPipeline;
let metrics: DetectorMetrics;
const emitted: string[] = [];
const decided: string[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-batch-tx-'));
  const config = await pipelineConfig(dir);
  ({ store, close: closeStore } = await openSuiteStore(dir));
  metrics = createDetectorMetrics(new Registry(), { version: '0.0.0', nodeVersion: process.version });
  emitted.length = 0;
  decided.length = 0;
  pipeline = await replayPipeline(config, store, {
    sink: {
      emit: (finding) => {
        emitted.push(
          String((finding as { resource?: { accessKeyDetails?: { accessKeyId?: string } } }).resource?.accessKeyDetails?.accessKeyId),
        );
        return Promise.resolve();
      },
    },
    metrics,
    now: () => T0 + 60_000,
    findingChanged: async (tx, findingId) => {
      const finding = JSON.stringify(await tx.getFinding(findingId));
      if (finding.includes(FAILING_KEY)) throw new Error('the outbox refused this finding');
    },
    decided: (d) => decided.push(d.eventId),
  });
});

afterEach(async () => {
  await pipeline.close();
  await closeStore();
  await rm(dir, { recursive: true, force: true });
});

const record = (i: number) => cloudTrailRecord({ key: KEYS[i]!, sourceIp: EXTERNAL_IP, time: T0 + i * 1_000, eventId: `evt-batch-${i}` });

async function recordsCounted(outcome: string): Promise<number> {
  const { values } = await metrics.cloudtrailRecords.get();
  return values.filter((v) => v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
}

describe('a batch, one transaction, a savepoint per record', () => {
  it('a record that fails is undone alone; the others commit and are told, in order', async () => {
    const outcomes = await pipeline.cloudtrail.processBatch([0, 1, 2, 3].map(record), 'trail');
    expect(outcomes).toEqual(['decided', 'failed', 'decided', 'decided']);

    for (const i of [0, 2, 3]) {
      expect(await store.decisionOf('cloudtrail', `evt-batch-${i}`)).toBe('finding');
      expect(await store.keptCopy(`evt-batch-${i}`)).not.toBeNull();
    }
    // Nothing of the failed record stays: not even the copy that would make it a duplicate next time.
    expect(await store.decisionOf('cloudtrail', 'evt-batch-1')).toBeNull();
    expect(await store.keptCopy('evt-batch-1')).toBeNull();
    expect(await store.findingsForKey(FAILING_KEY, 0, T0 + 3_600_000)).toBe(0);

    expect(decided).toEqual(['evt-batch-0', 'evt-batch-2', 'evt-batch-3']);
    expect(emitted).toEqual([KEYS[0], KEYS[2], KEYS[3]]);
    expect(await recordsCounted('failed')).toBe(1);
    expect(await recordsCounted('decided')).toBe(3);
  });

  it('the same batch again: every committed record is a duplicate, and the failed one is decided as new', async () => {
    await pipeline.cloudtrail.processBatch([0, 1, 2, 3].map(record), 'trail');
    const again = await pipeline.cloudtrail.processBatch([0, 1, 2, 3].map(record), 'trail');
    // The refusal still holds, so it fails again: but it was tried as a new record, not skipped.
    expect(again).toEqual(['duplicate', 'failed', 'duplicate', 'duplicate']);
    expect(decided).toEqual(['evt-batch-0', 'evt-batch-2', 'evt-batch-3']);
  });

  it('one eventID twice in a batch: the second copy sees the first, uncommitted, as kept', async () => {
    const outcomes = await pipeline.cloudtrail.processBatch([record(0), record(0), record(2)], 'trail');
    expect(outcomes).toEqual(['decided', 'duplicate', 'decided']);
    expect(decided).toEqual(['evt-batch-0', 'evt-batch-2']);
  });
});
