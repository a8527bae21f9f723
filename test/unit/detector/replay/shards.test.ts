/** replay --jobs: which worker decides a record, how many workers, and the lines merged back in order. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_AUTO_JOBS, MAX_JOBS, mergeLines, replayJobs, shardOf, toldInBatch } from '../../../../detector/replay/shards.js';

describe('shardOf', () => {
  it('sends every copy of an event to the same worker, whatever else the copies hold', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.integer({ min: 1, max: MAX_JOBS }), fc.anything(), (id, jobs, other) => {
        const a = shardOf({ eventID: id, sourceIPAddress: '198.51.100.7' }, jobs);
        expect(shardOf({ eventID: id, sourceIPAddress: '203.0.113.10', other }, jobs)).toBe(a);
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThan(jobs);
      }),
    );
  });

  it('spreads event IDs over the workers', () => {
    const per = [0, 0, 0];
    for (let i = 0; i < 30_000; i++) per[shardOf({ eventID: `e5d4c3b2-${i}` }, 3)]!++;
    for (const n of per) expect(n).toBeGreaterThan(9_000);
  });

  it('a record without a string eventID (invalid anyway) goes to worker 0; one worker takes everything', () => {
    for (const raw of [null, 'text', 42, [], {}, { eventID: 7 }]) expect(shardOf(raw, 4)).toBe(0);
    expect(shardOf({ eventID: 'x' }, 1)).toBe(0);
  });
});

describe('replayJobs', () => {
  it('takes a number from 1 to the maximum, or auto (one per core, capped)', () => {
    expect(replayJobs('1', 8)).toEqual({ jobs: 1 });
    expect(replayJobs(String(MAX_JOBS), 2)).toEqual({ jobs: MAX_JOBS });
    expect(replayJobs('auto', 2)).toEqual({ jobs: 2 });
    expect(replayJobs('auto', 64)).toEqual({ jobs: MAX_AUTO_JOBS });
    expect(replayJobs('auto', 0)).toEqual({ jobs: 1 });
  });

  it('refuses anything else, saying what it takes', () => {
    for (const v of ['0', '-1', '1.5', 'two', '', String(MAX_JOBS + 1), '2 ']) {
      const r = replayJobs(v, 2);
      expect(r, v).toHaveProperty('error');
      expect((r as { error: string }).error).toContain(`from 1 to ${MAX_JOBS}, or auto`);
    }
  });
});

describe('mergeLines', () => {
  it('gives the lines of all workers in the order of their records, whatever the split', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat(100_000), { maxLength: 200 }),
        fc.array(fc.nat(3), { maxLength: 200 }),
        fc.integer({ min: 1, max: 4 }),
        (records, owners, jobs) => {
          const sorted = [...records].sort((a, b) => a - b);
          const parts = Array.from({ length: jobs }, () => [] as number[]);
          sorted.forEach((r, n) => parts[(owners[n] ?? 0) % jobs]!.push(r));
          const merged = mergeLines(parts.map((order) => ({ order }))).map(([w, n]) => parts[w]![n]!);
          expect(merged).toEqual(sorted);
        },
      ),
    );
  });

  it('orders held decisions by due time first, then by record, as one thread ends the grace period', () => {
    const parts = [
      { order: [4, 1], first: [100, 200] },
      { order: [0, 2, 3], first: [100, 100, 300] },
    ];
    expect(mergeLines(parts)).toEqual([
      [1, 0],
      [1, 1],
      [0, 0],
      [0, 1],
      [1, 2],
    ]);
    expect(mergeLines([])).toEqual([]);
    expect(mergeLines([{ order: [] }, { order: [] }])).toEqual([]);
  });
});

describe('toldInBatch', () => {
  it('decided and ignored records print as their batch commits; held, repeated, conflicting and invalid ones do not', () => {
    expect(toldInBatch('decided')).toBe(true);
    expect(toldInBatch('not-instance-credential')).toBe(true);
    for (const o of ['pending', 'duplicate', 'conflict', 'invalid', 'failed']) expect(toldInBatch(o)).toBe(false);
  });
});
