/**
 * What telemetry shipping costs the proxy: two fresh tunnel-mode agents, one
 * shipping to the local receiver (flush every 1 s) and one without a
 * detector, under the same new-connection tunnel load. The CONNECT hosts
 * rotate over 1,000 S3 bucket names so each flush carries up to 1,000
 * distinct records (one per host), not one aggregated record.
 *
 * Method (see bench/README.md, "Shipping overhead"): both agents are first
 * warmed for the full warm time (a fresh process spends its first seconds in
 * the JIT), then paired rounds alternate their order — off→on, on→off, … —
 * so that a drift of the machine within a round favours neither side; the
 * cost is the median of the per-round ratios, with their spread in the note.
 */
import { startPeer, type RunningPeer } from '../lib/peers.js';
import { cpuOf, interleave, proxyCpuPer } from '../lib/measure.js';
import type { Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';

const NAME = 'shipping-overhead';
const HOSTS = Array.from({ length: 1000 }, (_, i) => `bench-${i}.s3.us-east-1.amazonaws.com:443`);

async function metric(peer: RunningPeer, name: string): Promise<number | null> {
  if (!peer.adminPort || peer.exited()) return null;
  const text = await fetch(`http://127.0.0.1:${peer.adminPort}/metrics`)
    .then((r) => r.text())
    .catch(() => '');
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/** The middle half of a set of percentages, as "a … b %". */
function spread(v: readonly number[]): string {
  if (v.length === 0) return '–';
  const s = [...v].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))] as number;
  return `${at(0.25).toFixed(1)} … ${at(0.75).toFixed(1)} %`;
}

const scenario: Scenario = {
  name: NAME,
  order: 70,
  title: 'tunnel requests/s with telemetry shipping on vs off (goal: < 5 % cost)',
  async run(ctx) {
    const on = await startPeer(ctx.peerEnv, 'ew-tunnel', { detectorUrl: ctx.receiver.url, flushInterval: '1s' });
    const off = await startPeer(ctx.peerEnv, 'ew-tunnel', { detectorUrl: null, flushInterval: '1s' });
    try {
      const before = await ctx.receiver.stats();
      const job = (durationMs: number) => (peer: RunningPeer) =>
        ctx.load.newconn({
          target: peer.target,
          hostHeader: peer.hostHeader,
          concurrency: ctx.preset.newconnConcurrency,
          warmupMs: ctx.preset.warmupMs,
          durationMs,
          authorities: HOSTS,
        });
      const series = await interleave(
        ctx,
        [
          { ...off, label: 'shipping off' },
          { ...on, label: 'shipping on' },
        ],
        ctx.preset.shippingRuns,
        job(ctx.preset.shippingDurationMs),
        job(ctx.preset.warmMs),
        { alternate: true },
      );
      await new Promise((r) => setTimeout(r, 1_500)); // the last flush
      for (const p of series.map((x) => x.peer)) {
        const ended = p.exited();
        if (ended) throw new Error(`${p.label ?? p.name} agent (pid ${p.pid}) ended during the runs (${ended}), not stopped by the bench`);
      }
      const after = await ctx.receiver.stats();
      const shipped = await metric(on, 'egress_witness_telemetry_records_total');
      for (const s of series) {
        const rps = s.runs.map((r) => r.result.count / (r.result.wallMs / 1000));
        const cpu = proxyCpuPer(s, (r) => r.result.count);
        ctx.record({
          scenario: NAME,
          metric: 'tunnel requests/s',
          unit: 'req/s',
          better: 'higher',
          peer: null,
          subject: s.peer.label ?? '',
          value: median(rps),
          runs: rps,
          ...cpuOf(s),
          note:
            s.peer.label === 'shipping on'
              ? `${after.batches - before.batches} batches, ${shipped ?? '?'} records acknowledged`
              : 'aggregator only, no sink',
        });
        ctx.record({
          scenario: NAME,
          metric: 'proxy CPU per tunnel',
          unit: 'µs',
          better: 'lower',
          peer: null,
          subject: s.peer.label ?? '',
          value: cpu.value,
          runs: cpu.runs,
        });
      }
      // Each round's "on" against the same round's "off" (the order alternating), then the median, so that
      // load from elsewhere on the machine (it drifts over seconds) mostly cancels out.
      const [offRuns, onRuns] = [series[0]?.runs ?? [], series[1]?.runs ?? []];
      const paired = (pick: (r: (typeof offRuns)[number]) => number | null): number[] =>
        onRuns
          .map((r, i) => {
            const a = pick(r);
            const b = offRuns[i] ? pick(offRuns[i]) : null;
            return a !== null && b !== null && b > 0 ? a / b : NaN;
          })
          .filter(Number.isFinite);
      const rateRatios = paired((r) => r.result.count / r.result.wallMs);
      const cpuRatios = paired((r) => (r.proxyCpuMs !== null && r.result.count > 0 ? r.proxyCpuMs / r.result.count : null));
      const rateRatio = median(rateRatios);
      const cpuRatio = median(cpuRatios);
      ctx.record({
        scenario: NAME,
        metric: 'shipping cost',
        unit: '%',
        better: 'lower',
        peer: null,
        subject: 'ew tunnel',
        value: rateRatio === null ? null : 100 * (1 - rateRatio),
        runs: rateRatios.map((x) => 100 * (1 - x)),
        note: `tunnel rate lost with shipping on: median of ${rateRatios.length} paired rounds, order alternating (middle half ${spread(rateRatios.map((x) => 100 * (1 - x)))})`,
      });
      ctx.record({
        scenario: NAME,
        metric: 'shipping CPU cost',
        unit: '%',
        better: 'lower',
        peer: null,
        subject: 'ew tunnel',
        value: cpuRatio === null ? null : 100 * (cpuRatio - 1),
        runs: cpuRatios.map((x) => 100 * (x - 1)),
        note: `extra proxy CPU per tunnel with shipping on: median of ${cpuRatios.length} paired rounds (middle half ${spread(cpuRatios.map((x) => 100 * (x - 1)))})`,
      });
    } finally {
      await Promise.allSettled([on.stop(), off.stop()]);
    }
  },
};

export default scenario;
