import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseArgs } from '../../../bench/lib/args.js';
import { compareRuns, formatComparison, halfRange, readResults, SINGLE_RUN_NOISE } from '../../../bench/lib/compare.js';
import { evaluateTargets, REPLAY_GOAL, SQS_SUBJECT, type Row } from '../../../bench/lib/results.js';
import type { PeerName } from '../../../bench/lib/peers.js';

const row = (
  scenario: string,
  metric: string,
  peer: PeerName | null,
  runs: number[],
  better: Row['better'] = 'higher',
  subject?: string,
): Row => {
  const sorted = [...runs].sort((a, b) => a - b);
  return {
    scenario,
    metric,
    unit: 'x',
    better,
    peer,
    ...(subject === undefined ? {} : { subject }),
    value: sorted[Math.floor(sorted.length / 2)] ?? null,
    runs,
  };
};

describe('comparing a run with an earlier one', () => {
  it('reads a peer figure as its ratio to the in-run reference, so a machine twice as slow is not a regression', () => {
    const before = [row('bulk', 'throughput', 'ew-tunnel', [500, 500, 500]), row('bulk', 'throughput', 'squid', [600, 600, 600])];
    const after = [row('bulk', 'throughput', 'ew-tunnel', [250, 250, 250]), row('bulk', 'throughput', 'squid', [300, 300, 300])];
    const c = compareRuns(before, after).find((x) => x.system === 'ew-tunnel');
    expect(c).toMatchObject({ basis: '÷ squid', verdict: 'same', change: 0 });
    // Squid itself has no reference in these rows: compared as it is, and it halved.
    expect(compareRuns(before, after).find((x) => x.system === 'squid')).toMatchObject({ basis: 'value', verdict: 'worse' });
  });

  it('flags a figure worse beyond the noise of its runs, and not one within it', () => {
    const before = [
      row('small', 'proxy CPU per request', 'ew-tunnel', [30, 31, 32], 'lower'),
      row('small', 'proxy CPU per request', 'squid', [30, 30, 30], 'lower'),
    ];
    const worse = [
      row('small', 'proxy CPU per request', 'ew-tunnel', [40, 41, 42], 'lower'),
      row('small', 'proxy CPU per request', 'squid', [30, 30, 30], 'lower'),
    ];
    expect(compareRuns(before, worse)[0]).toMatchObject({ system: 'ew-tunnel', verdict: 'worse' });
    expect(compareRuns(before, worse)[0]!.change).toBeCloseTo(-(41 / 31 - 1), 6);
    const noisy = [
      row('small', 'proxy CPU per request', 'ew-tunnel', [20, 33, 46], 'lower'),
      row('small', 'proxy CPU per request', 'squid', [30, 30, 30], 'lower'),
    ];
    // 33 vs 31 is +6 %, and these runs spread ±39 %.
    expect(compareRuns(before, noisy)[0]).toMatchObject({ system: 'ew-tunnel', verdict: 'same', noiseMeasured: true });
  });

  it('judges a figure measured once against the assumed single-run noise, and says so', () => {
    const before = [row('detector-correlation', 'CloudTrail records correlated/s', null, [58_000], 'higher', 'detector replay')];
    const after = [row('detector-correlation', 'CloudTrail records correlated/s', null, [7_500], 'higher', 'detector replay')];
    const [c] = compareRuns(before, after);
    expect(c).toMatchObject({ basis: 'value', verdict: 'worse', noise: SINGLE_RUN_NOISE, noiseMeasured: false });
    expect(formatComparison('old.json', compareRuns(before, after))).toMatch(
      /1 worse beyond the noise[\s\S]*detector replay \(value\): 58000 → 7500, -87\.1 % \(noise ±10\.0 %, assumed\)/,
    );
  });

  it('leaves out figures that are in one run only or were skipped', () => {
    const skipped: Row = { ...row('bulk', 'throughput', 'squid', [1]), value: null, skipped: 'not installed' };
    expect(compareRuns([row('a', 'm', null, [1], 'higher', 's')], [row('b', 'm', null, [1], 'higher', 's'), skipped])).toEqual([]);
  });

  it('half range is null for one measurement', () => {
    expect(halfRange(row('a', 'm', null, [5]))).toBeNull();
    expect(halfRange(row('a', 'm', null, [8, 10, 12]))).toBeCloseTo(0.2, 9);
  });
});

describe('reading a baseline file', () => {
  let dir: string | undefined;
  afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('takes a results file and refuses anything else with the path in the message', () => {
    const d = mkdtempSync(join(tmpdir(), 'ew-bench-'));
    dir = d;
    const good = join(d, 'good.json');
    writeFileSync(good, JSON.stringify({ kind: 'egress-witness-bench', machine: { date: '2026-12-01T00:00:00Z' }, rows: [] }));
    expect(readResults(good)).toEqual({ rows: [], date: '2026-12-01T00:00:00Z' });
    const bad = join(d, 'bad.json');
    writeFileSync(bad, '{"rows": 3}');
    expect(() => readResults(bad)).toThrow(/bad\.json: not a results file/);
    writeFileSync(bad, '{');
    expect(() => readResults(bad)).toThrow(/bad\.json: .*JSON/);
    expect(() => readResults(join(d, 'missing.json'))).toThrow(/missing\.json: ENOENT/);
  });

  it('--baseline is an option of the bench', () => {
    expect(parseArgs(['--baseline', 'x.json']).baseline).toBe('x.json');
    expect(parseArgs([]).baseline).toBeNull();
  });
});

describe('the goals checked at the end of a run', () => {
  const byId = (rows: Row[]) => new Map(evaluateTargets(rows).map((t) => [t.id, t]));

  it('CPU goals are ratios to the peer in the same run, met at or under the factor', () => {
    const t = byId([
      row('bulk', 'proxy CPU per MB', 'ew-tunnel', [1.5], 'lower'),
      row('bulk', 'proxy CPU per MB', 'squid', [1], 'lower'),
      row('new-connection', 'proxy CPU per request', 'ew-tunnel', [401], 'lower'),
      row('new-connection', 'proxy CPU per request', 'squid', [400], 'lower'),
    ]);
    expect(t.get('tunnel-bulk-cpu')).toMatchObject({ met: true, detail: expect.stringContaining('×1.50') });
    expect(t.get('tunnel-newconn-cpu')).toMatchObject({ met: false });
    expect(t.get('inspect-keepalive-cpu')).toMatchObject({ met: null, detail: 'not measured in this run' });
  });

  it('the detector rates are held to absolute goals', () => {
    const t = byId([
      row('detector-correlation', 'CloudTrail records correlated/s', null, [REPLAY_GOAL], 'higher', 'detector replay'),
      row('detector-binding', 'CloudTrail records correlated/s', null, [REPLAY_GOAL - 1], 'higher', 'detector replay --inventory'),
      row('detector-sqs', 'CloudTrail records decided/s', null, [100_000], 'higher', 'detector cloudtrail.watch_dir'),
      row('detector-sqs', 'CloudTrail records decided/s', null, [REPLAY_GOAL / 10], 'higher', SQS_SUBJECT),
    ]);
    expect(t.get('replay-rate')?.met).toBe(true);
    expect(t.get('replay-binding-rate')?.met).toBe(false);
    expect(t.get('sqs-rate')).toMatchObject({ met: true, detail: expect.stringContaining(SQS_SUBJECT) });
  });
});
