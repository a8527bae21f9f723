// A long tunnel's report windows: they partition its life and its bytes, whatever the report times.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReportWindow } from '../../../../agent/proxy/report-window.js';

describe('ReportWindow', () => {
  it('is due only once the current window is the interval old, and each report opens the next window', () => {
    const w = new ReportWindow(1_000);
    expect(w.due(60_999, 60_000)).toBe(false);
    expect(w.due(61_000, 60_000)).toBe(true);
    expect(w.take(61_000, 10, 20)).toEqual({ startedAt: 1_000, endedAt: 61_000, bytesUp: 10, bytesDown: 20 });
    expect(w.reported).toBe(1);
    expect(w.due(61_000, 60_000)).toBe(false);
    expect(w.take(70_000, 15, 20)).toEqual({ startedAt: 61_000, endedAt: 70_000, bytesUp: 5, bytesDown: 0 });
  });

  it('never reports negative bytes or a window ending before it starts', () => {
    const w = new ReportWindow(5_000);
    w.take(6_000, 100, 100);
    expect(w.take(5_500, 50, 40)).toEqual({ startedAt: 6_000, endedAt: 6_000, bytesUp: 0, bytesDown: 0 });
    expect(w.take(7_000, 120, 130)).toEqual({ startedAt: 6_000, endedAt: 7_000, bytesUp: 20, bytesDown: 30 });
  });

  it('windows are contiguous, each byte is in exactly one, and together they cover the whole tunnel', () => {
    const step = fc.record({ dt: fc.integer({ min: 0, max: 200_000 }), up: fc.nat(1_000_000), down: fc.nat(1_000_000) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.array(step, { minLength: 1, maxLength: 50 }), (start, steps) => {
        const w = new ReportWindow(start);
        let now = start;
        let up = 0;
        let down = 0;
        const reports = [];
        for (const s of steps) {
          now += s.dt;
          up += s.up;
          down += s.down;
          reports.push(w.take(now, up, down));
        }
        expect(reports[0]?.startedAt).toBe(start);
        expect(reports.at(-1)?.endedAt).toBe(now);
        for (let i = 1; i < reports.length; i++) expect(reports[i]?.startedAt).toBe(reports[i - 1]?.endedAt);
        expect(reports.reduce((n, r) => n + r.bytesUp, 0)).toBe(up);
        expect(reports.reduce((n, r) => n + r.bytesDown, 0)).toBe(down);
        for (const r of reports) expect(r.endedAt - r.startedAt).toBeLessThanOrEqual(200_000);
      }),
    );
  });
});
