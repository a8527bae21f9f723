/**
 * A burst on an inspecting proxy that has been idle: a fresh process gets
 * 64 new client connections at once, one request each (cold: leaf minting,
 * no upstream connections yet); then, after 5 s of silence, the same burst
 * again (certificates cached; upstream connections kept or not, depending on
 * the proxy's idle timeout — the agent runs with its default 4 s here).
 * Reported: time until all 64 answered, and p99.
 */
import { startPeer, unavailableReason, type PeerName } from '../lib/peers.js';
import { measured } from '../lib/measure.js';
import type { Scenario } from '../lib/scenario.js';
import { sleep } from '../lib/proc.js';

const NAME = 'inspect-burst';
const PEERS: PeerName[] = ['ew-inspect', 'squid-bump'];
const IDLE_MS = 5_000;

const scenario: Scenario = {
  name: NAME,
  order: 45,
  title: 'inspecting proxies: 64 simultaneous new connections on a fresh process, and again after 5 s idle',
  async run(ctx) {
    const connections = ctx.preset.keepaliveConnections;
    for (const name of PEERS) {
      const why = unavailableReason(name);
      if (why) {
        ctx.record({
          scenario: NAME,
          metric: 'cold burst, all answered',
          unit: 'ms',
          better: 'lower',
          peer: name,
          value: null,
          skipped: why,
        });
        continue;
      }
      const peer = await startPeer(ctx.peerEnv, name, { upstreamKeepAlive: '4s' });
      try {
        for (const phase of ctx.preset.burstAfterIdle ? (['cold burst', 'burst after 5 s idle'] as const) : (['cold burst'] as const)) {
          if (phase !== 'cold burst') await sleep(IDLE_MS);
          const run = await measured(ctx, peer, () => ctx.load.burst({ target: peer.target, hostHeader: peer.hostHeader, connections }));
          const r = run.result;
          ctx.log(
            `  ${name} ${phase}: ${r.count}/${connections} in ${r.wallMs.toFixed(0)} ms, p99 ${r.p99Ms?.toFixed(0) ?? '–'} ms, proxy CPU ${run.proxyCpuMs?.toFixed(0) ?? '–'} ms${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}`,
          );
          const base = { scenario: NAME, peer: name, unit: 'ms', better: 'lower' as const };
          ctx.record({
            ...base,
            metric: `${phase}, all answered`,
            value: r.errors === 0 ? r.wallMs : null,
            skipped: r.errors === 0 ? undefined : `${r.errors} errors (${r.firstError})`,
          });
          ctx.record({
            ...base,
            metric: `${phase}, proxy CPU`,
            value: run.proxyCpuMs,
            note: `${connections} connections, one request each`,
          });
        }
      } finally {
        await peer.stop();
      }
    }
  },
};

export default scenario;
