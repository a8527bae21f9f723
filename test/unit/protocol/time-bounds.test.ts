import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { recordTimeProblem, screenRecords, type TimeBounds } from '../../../protocol/time-bounds.js';
import { heartbeat, observation, MIN, SEC } from '../detector/scenario.js';

const NOW = Date.parse('2026-11-25T12:00:00.000Z');
const BOUNDS: TimeBounds = { nowMs: NOW, clockSkewMs: 5 * MIN, maxSpanMs: 10 * MIN };

function spanning(firstMs: number, lastMs: number) {
  return observation({ firstSeen: new Date(firstMs).toISOString(), lastSeen: new Date(lastMs).toISOString() });
}

describe('recordTimeProblem', () => {
  it('accepts an observation of a few seconds, ending now or within the clock skew ahead', () => {
    expect(recordTimeProblem(spanning(NOW - 10 * SEC, NOW), BOUNDS)).toBeNull();
    expect(recordTimeProblem(spanning(NOW, NOW + 5 * MIN), BOUNDS)).toBeNull();
    expect(recordTimeProblem(spanning(NOW, NOW), BOUNDS)).toBeNull();
    expect(recordTimeProblem(spanning(NOW - 10 * MIN, NOW), BOUNDS)).toBeNull();
  });

  it('rejects firstSeen after lastSeen', () => {
    expect(recordTimeProblem(spanning(NOW, NOW - 1), BOUNDS)).toBe('first_after_last');
  });

  it('rejects a lastSeen beyond now + clock skew', () => {
    expect(recordTimeProblem(spanning(NOW, NOW + 5 * MIN + 1), BOUNDS)).toBe('in_future');
    expect(recordTimeProblem(spanning(0, Date.parse('2099-01-01T00:00:00Z')), BOUNDS)).toBe('in_future');
  });

  it('rejects a span longer than the bound, however old', () => {
    expect(recordTimeProblem(spanning(NOW - 10 * MIN - 1, NOW), BOUNDS)).toBe('span_too_long');
    expect(recordTimeProblem(spanning(0, NOW), BOUNDS)).toBe('span_too_long');
  });

  it('rejects a heartbeat dated beyond now + clock skew, not an old one', () => {
    expect(recordTimeProblem(heartbeat('gw1', Date.parse('2099-01-01T00:00:00Z')), BOUNDS)).toBe('in_future');
    expect(recordTimeProblem(heartbeat('gw1', NOW + 5 * MIN + 1), BOUNDS)).toBe('in_future');
    expect(recordTimeProblem(heartbeat('gw1', NOW + 5 * MIN), BOUNDS)).toBeNull();
    expect(recordTimeProblem(heartbeat('gw1', 0), BOUNDS)).toBeNull();
  });

  it('an accepted observation always has first ≤ last ≤ now + skew and a span within the bound', () => {
    const t = fc.integer({ min: 0, max: 4_102_444_800_000 });
    fc.assert(
      fc.property(t, t, (a, b) => {
        if (recordTimeProblem(spanning(a, b), BOUNDS) !== null) return;
        expect(a).toBeLessThanOrEqual(b);
        expect(b).toBeLessThanOrEqual(NOW + BOUNDS.clockSkewMs);
        expect(b - a).toBeLessThanOrEqual(BOUNDS.maxSpanMs);
      }),
    );
  });
});

describe('screenRecords', () => {
  it('keeps the records within the bounds, in order, and counts the others by reason', () => {
    const ok1 = spanning(NOW - 5 * SEC, NOW);
    const ok2 = heartbeat('gw1', NOW);
    const s = screenRecords(
      [ok1, spanning(NOW, NOW - SEC), ok2, heartbeat('gw1', NOW + 6 * MIN), spanning(0, NOW), spanning(NOW, NOW + 6 * MIN)],
      BOUNDS,
    );
    expect(s.accepted).toEqual([ok1, ok2]);
    expect(s.rejected).toEqual({ first_after_last: 1, in_future: 2, span_too_long: 1 });
    expect(s.rejectedCount).toBe(4);
  });

  it('an empty batch stays empty', () => {
    expect(screenRecords([], BOUNDS)).toEqual({ accepted: [], rejected: {}, rejectedCount: 0 });
  });
});
