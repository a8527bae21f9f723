/**
 * Transparent tunnel vs explicit CONNECT tunnel, one fresh agent with both
 * listeners: the same 1 KiB STS POSTs over keep-alive (64 clients) and with
 * a new connection per request (16 at a time), once as a proxy client
 * (CONNECT, then TLS inside the tunnel) and once as a redirected client
 * (TLS straight to the transparent listener, the AWS name as SNI; the agent
 * peeks the ClientHello, routes by SNI and writes it upstream).
 *
 * The transparent listener is reached on loopback, without a kernel
 * redirect: the agent still asks the kernel for each connection's original
 * destination (one getsockopt), finds none and assumes 443, which is the path
 * a redirected connection takes once accepted. What the redirect itself costs
 * is the kernel's (NAT on the first packet, conntrack after), not the agent's.
 *
 * Rounds alternate explicit, transparent, explicit, …; the ratios are medians
 * of the per-round ratios, so drift of a shared machine mostly cancels out.
 */
import { cpuOf, errorNote, interleave, proxyCpuPer, type PeerRun, type PeerSeries } from '../lib/measure.js';
import { startPeer, type RunningPeer } from '../lib/peers.js';
import type { BenchContext, Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';

const NAME = 'transparent-tunnel';

type Load = 'keep-alive' | 'new connection';

function job(ctx: BenchContext, load: Load, durationMs: number, warmupMs: number) {
  const p = ctx.preset;
  return (peer: RunningPeer) =>
    load === 'keep-alive'
      ? ctx.load.keepalive({ target: peer.target, hostHeader: peer.hostHeader, connections: p.keepaliveConnections, warmupMs, durationMs })
      : ctx.load.newconn({ target: peer.target, hostHeader: peer.hostHeader, concurrency: p.newconnConcurrency, warmupMs, durationMs });
}

const rate = (r: PeerRun): number => r.result.count / (r.result.wallMs / 1000);
const cpuPerRequest = (r: PeerRun): number | null => (r.proxyCpuMs !== null && r.result.count > 0 ? r.proxyCpuMs / r.result.count : null);

/** Round by round: transparent ÷ the explicit run just before it. */
function pairedRatios(explicit: PeerSeries, transparent: PeerSeries, pick: (r: PeerRun) => number | null): number[] {
  return transparent.runs
    .map((r, i) => {
      const a = pick(r);
      const e = explicit.runs[i];
      const b = e ? pick(e) : null;
      return a !== null && b !== null && b > 0 ? a / b : NaN;
    })
    .filter(Number.isFinite);
}

function record(ctx: BenchContext, load: Load, explicit: PeerSeries, transparent: PeerSeries): void {
  for (const s of [explicit, transparent]) {
    const subject = `ew ${s.peer.label ?? s.peer.name}`;
    const rps = s.runs.map(rate);
    ctx.record({
      scenario: NAME,
      metric: `requests/s, ${load}`,
      unit: 'req/s',
      better: 'higher',
      peer: null,
      subject,
      value: median(rps),
      runs: rps,
      ...cpuOf(s),
      note: errorNote(s),
    });
    const cpu = proxyCpuPer(s, (r) => r.result.count);
    ctx.record({
      scenario: NAME,
      metric: `proxy CPU per request, ${load}`,
      unit: 'µs',
      better: 'lower',
      peer: null,
      subject,
      value: cpu.value,
      runs: cpu.runs,
    });
  }
  const rates = pairedRatios(explicit, transparent, rate);
  const cpus = pairedRatios(explicit, transparent, cpuPerRequest);
  ctx.record({
    scenario: NAME,
    metric: `transparent ÷ explicit requests/s, ${load}`,
    unit: '×',
    better: 'higher',
    peer: null,
    subject: 'ew tunnel',
    value: median(rates),
    runs: rates,
    note: 'median of paired rounds; above 1: the transparent path is faster',
  });
  ctx.record({
    scenario: NAME,
    metric: `transparent ÷ explicit proxy CPU per request, ${load}`,
    unit: '×',
    better: 'lower',
    peer: null,
    subject: 'ew tunnel',
    value: median(cpus),
    runs: cpus,
    note: 'median of paired rounds; below 1: the transparent path is cheaper',
  });
}

const scenario: Scenario = {
  name: NAME,
  order: 42,
  title:
    'transparent tunnel vs explicit CONNECT tunnel in one agent: keep-alive and new connection per request, requests/s and CPU as ratios',
  async run(ctx) {
    const p = ctx.preset;
    const agent = await startPeer(ctx.peerEnv, 'ew-tunnel', { transparent: true });
    try {
      if (!agent.redirectTarget) throw new Error('the agent was started without a transparent listener');
      const explicit: RunningPeer = { ...agent, label: 'explicit' };
      const transparent: RunningPeer = { ...agent, label: 'transparent', target: agent.redirectTarget };
      for (const load of ['keep-alive', 'new connection'] as const) {
        const [e, t] = await interleave(
          ctx,
          [explicit, transparent],
          p.runs,
          job(ctx, load, p.durationMs, p.warmupMs),
          job(ctx, load, load === 'keep-alive' ? p.warmMs : p.warmupMs, 0),
        );
        if (!e || !t) throw new Error('no series');
        const ended = agent.exited();
        if (ended) throw new Error(`the agent (pid ${agent.pid}) ended during the runs (${ended}), not stopped by the bench`);
        record(ctx, load, e, t);
      }
    } finally {
      await agent.stop();
    }
  },
};

export default scenario;
