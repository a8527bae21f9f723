/**
 * The rows of a request-rate scenario (many small requests per run, such as
 * keep-alive or a new connection per request): requests/s with CPU and
 * errors, median latency, and the proxy's CPU per request.
 */
import type { RunResult } from '../load/jobs.js';
import { acquirePeers, allPeerNames, cpuOf, errorNote, interleave, proxyCpuPer, type PeerSeries } from './measure.js';
import type { PeerName, RunningPeer } from './peers.js';
import type { Row } from './results.js';
import type { BenchContext, Preset, Scenario } from './scenario.js';
import { median } from './stats.js';

/** What a request-rate scenario records for a peer that cannot run: its requests/s row, skipped. */
function requestRateSkipRows(scenario: string): (peer: PeerName, reason: string) => Row[] {
  return (peer, reason) => [{ scenario, metric: 'requests/s', unit: 'req/s', better: 'higher', peer, value: null, skipped: reason }];
}

/** Per series: requests/s, p50 latency, p99 latency with `p99`, and (with a proxy process) its CPU per request. */
function recordRequestRate(ctx: BenchContext, scenario: string, series: readonly PeerSeries[], opts: { p99: boolean }): void {
  for (const s of series) {
    const rps = s.runs.map((r) => r.result.count / (r.result.wallMs / 1000));
    const base = { scenario, peer: s.peer.name };
    ctx.record({
      ...base,
      metric: 'requests/s',
      unit: 'req/s',
      better: 'higher',
      value: median(rps),
      runs: rps,
      ...cpuOf(s),
      note: errorNote(s),
    });
    ctx.record({ ...base, metric: 'p50 latency', unit: 'ms', better: 'lower', value: median(s.runs.map((r) => r.result.p50Ms ?? NaN)) });
    if (opts.p99)
      ctx.record({ ...base, metric: 'p99 latency', unit: 'ms', better: 'lower', value: median(s.runs.map((r) => r.result.p99Ms ?? NaN)) });
    const cpu = proxyCpuPer(s, (r) => r.result.count);
    if (s.peer.pid)
      ctx.record({
        ...base,
        metric: 'proxy CPU per request',
        unit: 'µs',
        better: 'lower',
        value: cpu.value,
        runs: cpu.runs,
        note: 'proxy process + helpers; robust when the machine is shared',
      });
  }
}

/** A request-rate scenario: what differs between them is the load job and which latency rows they keep. */
export interface RequestRateSpec {
  name: string;
  order: number;
  title: string;
  p99: boolean;
  /** The unmeasured warm-up run's length, from the preset. */
  warmMs: (p: Preset) => number;
  /** The peers it measures (default: every peer). */
  peers?: readonly PeerName[];
  /** One run of the load against a peer. */
  load: (ctx: BenchContext, peer: RunningPeer, window: { warmupMs: number; durationMs: number }) => Promise<RunResult>;
}

/** Every peer that can run, `runs` interleaved measured runs after one warm run each, recorded as request-rate rows. */
export function requestRateScenario(spec: RequestRateSpec): Scenario {
  return {
    name: spec.name,
    order: spec.order,
    title: spec.title,
    async run(ctx) {
      const p = ctx.preset;
      const peers = await acquirePeers(ctx, spec.peers ?? allPeerNames(), requestRateSkipRows(spec.name));
      const series = await interleave(
        ctx,
        peers,
        p.runs,
        (peer) => spec.load(ctx, peer, { warmupMs: p.warmupMs, durationMs: p.durationMs }),
        (peer) => spec.load(ctx, peer, { warmupMs: 0, durationMs: spec.warmMs(p) }),
      );
      recordRequestRate(ctx, spec.name, series, { p99: spec.p99 });
    },
  };
}
