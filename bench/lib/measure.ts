/**
 * Interleaved measurement across peers: run 1 of every peer, then run 2 of
 * every peer, … so that drift of the machine (thermal, noisy neighbours)
 * spreads over all of them; the median run is reported.
 *
 * CPU counters (/proc) are read when the load generator opens and closes
 * its measured window (or around the whole job when it has none), for the
 * proxy with its helper processes, the fake server, the generator and the
 * rest of the machine. The proxy's CPU per request is the figure least
 * disturbed by other work on a shared machine.
 */
import type { RunResult } from '../load/jobs.js';
import type { PeerName, RunningPeer } from './peers.js';
import { PEERS } from './peers.js';
import { cpuMs, machineBusyMs, treeCpuMs } from './proc.js';
import type { Row } from './results.js';
import type { BenchContext } from './scenario.js';
import { median } from './stats.js';

export interface PeerRun {
  result: RunResult;
  /** Wall time the CPU figures below cover (the measured window, or the whole job). */
  spanMs: number;
  proxyCpuMs: number | null;
  serverCpuMs: number | null;
  /** CPU the rest of the machine used meanwhile (other sessions, tests): a noisy neighbour shows here. */
  otherCpuMs: number | null;
}

export interface PeerSeries {
  peer: RunningPeer;
  runs: PeerRun[];
}

interface Counters {
  t: number;
  proxy: number | null;
  server: number | null;
  load: number | null;
  self: NodeJS.CpuUsage;
  busy: number | null;
}

function read(ctx: BenchContext, peer: RunningPeer): Counters {
  return {
    t: performance.now(),
    proxy: peer.pid ? treeCpuMs(peer.pid) : null,
    server: cpuMs(ctx.fake.pid),
    load: cpuMs(ctx.load.pid),
    self: process.cpuUsage(),
    busy: machineBusyMs(),
  };
}

function between(a: Counters, b: Counters): Omit<PeerRun, 'result'> {
  const d = (x: number | null, y: number | null): number | null => (x !== null && y !== null ? y - x : null);
  const proxyCpuMs = d(a.proxy, b.proxy);
  const serverCpuMs = d(a.server, b.server);
  const self = (b.self.user + b.self.system - a.self.user - a.self.system) / 1000;
  const ours = (proxyCpuMs ?? 0) + (serverCpuMs ?? 0) + (d(a.load, b.load) ?? 0) + self;
  const busy = d(a.busy, b.busy);
  return { spanMs: b.t - a.t, proxyCpuMs, serverCpuMs, otherCpuMs: busy === null ? null : Math.max(0, busy - ours) };
}

/** The peers of `names` that can run, recording skipped rows for the others. */
export async function acquirePeers(
  ctx: BenchContext,
  names: readonly PeerName[],
  skipRows: (peer: PeerName, reason: string) => Row[],
): Promise<RunningPeer[]> {
  const out: RunningPeer[] = [];
  for (const name of names) {
    const p = await ctx.peers.get(name);
    if ('skipped' in p) {
      ctx.log(`  ${name}: skipped (${p.skipped})`);
      for (const row of skipRows(name, p.skipped)) ctx.record(row);
    } else out.push(p);
  }
  return out;
}

/** One job against one peer, with the CPU counters of its measured window. */
export async function measured(ctx: BenchContext, peer: RunningPeer, job: () => Promise<RunResult>): Promise<PeerRun> {
  let start: Counters | null = null;
  let end: Counters | null = null;
  ctx.load.onWindow = (phase) => {
    if (phase === 'window-start') start = read(ctx, peer);
    else end = read(ctx, peer);
  };
  const jobStart = read(ctx, peer);
  try {
    const result = await job();
    const jobEnd = read(ctx, peer);
    return { result, ...(start && end ? between(start, end) : between(jobStart, jobEnd)) };
  } finally {
    ctx.load.onWindow = null;
  }
}

/**
 * `runs` interleaved rounds of `job` over `peers`. `warm` runs once per peer
 * first, unmeasured: first mints, upstream pools and JIT are not what a
 * steady-state figure is about.
 */
export async function interleave(
  ctx: BenchContext,
  peers: readonly RunningPeer[],
  runs: number,
  job: (peer: RunningPeer) => Promise<RunResult>,
  warm?: (peer: RunningPeer) => Promise<RunResult>,
  opts: { alternate?: boolean } = {},
): Promise<PeerSeries[]> {
  const series = peers.map((peer) => ({ peer, runs: [] as PeerRun[] }));
  if (warm) {
    for (const peer of peers) {
      const r = await warm(peer);
      if (r.errors > 0) ctx.log(`  warm-up ${peer.name}: ${r.errors} errors (${r.firstError})`);
    }
  }
  for (let r = 0; r < runs; r++) {
    // alternate: every other round runs the peers in reverse order, so a drift of the machine within a round favours none.
    for (const s of opts.alternate === true && r % 2 === 1 ? [...series].reverse() : series) {
      if (s.peer.exited() && ctx.peers.owns(s.peer)) {
        // Killed from outside the bench: a shared peer is started again (a scenario's own is not).
        const again = await ctx.peers.get(s.peer.name);
        if (!('skipped' in again)) s.peer = again;
      }
      const run = await measured(ctx, s.peer, () => job(s.peer));
      s.runs.push(run);
      const err = run.result.errors > 0 ? ` errors=${run.result.errors} (${run.result.firstError})` : '';
      const cpu = (v: number | null): string => (v === null ? '–' : `${Math.round((100 * v) / run.spanMs)}%`);
      ctx.log(
        `  run ${r + 1}/${runs} ${(s.peer.label ?? s.peer.name).padEnd(10)} ${describe(run.result)}  cpu: proxy ${cpu(run.proxyCpuMs)} server ${cpu(run.serverCpuMs)} other ${cpu(run.otherCpuMs)}${err}`,
      );
    }
  }
  return series;
}

function describe(r: RunResult): string {
  if (r.bytes > 0) return `${(r.bytes / 1e6 / (r.wallMs / 1000)).toFixed(0)} MB/s`;
  return `${(r.count / (r.wallMs / 1000)).toFixed(0)}/s p50=${r.p50Ms?.toFixed(2) ?? '–'}ms p99=${r.p99Ms?.toFixed(2) ?? '–'}ms`;
}

export const allPeerNames = (): PeerName[] => PEERS.map((p) => p.name);

/** Median CPU over a series, % of one core: load generator, proxy (with helpers), fake server, rest of the machine. */
export function cpuOf(s: PeerSeries): {
  clientCpuPct: number | null;
  proxyCpuPct: number | null;
  serverCpuPct: number | null;
  otherCpuPct: number | null;
} {
  const pctOf = (pick: (r: PeerRun) => number | null): number | null =>
    median(s.runs.filter((r) => pick(r) !== null).map((r) => (100 * (pick(r) as number)) / r.spanMs));
  const client = median(s.runs.map((r) => (100 * r.result.cpuMs) / r.result.wallMs));
  return {
    clientCpuPct: client,
    proxyCpuPct: s.peer.pid ? pctOf((r) => r.proxyCpuMs) : null,
    serverCpuPct: pctOf((r) => r.serverCpuMs),
    otherCpuPct: pctOf((r) => r.otherCpuMs),
  };
}

/** Median proxy CPU per unit of work (µs per request, or ms per MB with `perUnit` = bytes/1e6); null without a proxy process. */
export function proxyCpuPer(s: PeerSeries, units: (r: PeerRun) => number, scale = 1000): { value: number | null; runs: number[] } {
  if (!s.peer.pid) return { value: null, runs: [] };
  const v = s.runs.filter((r) => r.proxyCpuMs !== null && units(r) > 0).map((r) => ((r.proxyCpuMs as number) * scale) / units(r));
  return { value: median(v), runs: v };
}

/** Notes errors of a series, so a figure built on failures does not pass unnoticed. */
export function errorNote(s: PeerSeries): string | undefined {
  const errors = s.runs.reduce((n, r) => n + r.result.errors, 0);
  if (errors === 0) return undefined;
  const first = s.runs.find((r) => r.result.firstError)?.result.firstError ?? '';
  return `${errors} errors (${first.slice(0, 80)})`;
}
