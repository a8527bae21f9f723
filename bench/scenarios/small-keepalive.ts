/**
 * Small API calls over keep-alive: 64 clients, each on its own connection,
 * send a SigV4-looking 1 KiB STS POST and read the 1 KiB answer, back to
 * back. Requests/s and latency per system, median of interleaved runs.
 */
import type { Row } from '../lib/results.js';
import type { PeerName } from '../lib/peers.js';
import { acquirePeers, allPeerNames, cpuOf, errorNote, interleave, proxyCpuPer } from '../lib/measure.js';
import type { Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';

const NAME = 'small-keepalive';

const skipRows = (peer: PeerName, reason: string): Row[] => [
  { scenario: NAME, metric: 'requests/s', unit: 'req/s', better: 'higher', peer, value: null, skipped: reason },
];

const scenario: Scenario = {
  name: NAME,
  order: 30,
  title: '1 KiB POST / 1 KiB answer over keep-alive, 64 concurrent clients: requests/s, p50, p99',
  async run(ctx) {
    const p = ctx.preset;
    const peers = await acquirePeers(ctx, allPeerNames(), skipRows);
    const series = await interleave(ctx, peers, p.runs, (peer) =>
      ctx.load.keepalive({ target: peer.target, hostHeader: peer.hostHeader, connections: p.keepaliveConnections, warmupMs: p.warmupMs, durationMs: p.durationMs }),
    (peer) => ctx.load.keepalive({ target: peer.target, hostHeader: peer.hostHeader, connections: p.keepaliveConnections, warmupMs: 0, durationMs: p.warmMs }));
    for (const s of series) {
      const rps = s.runs.map((r) => r.result.count / (r.result.wallMs / 1000));
      const base = { scenario: NAME, peer: s.peer.name };
      ctx.record({ ...base, metric: 'requests/s', unit: 'req/s', better: 'higher', value: median(rps), runs: rps, ...cpuOf(s), note: errorNote(s) });
      ctx.record({ ...base, metric: 'p50 latency', unit: 'ms', better: 'lower', value: median(s.runs.map((r) => r.result.p50Ms ?? NaN)) });
      ctx.record({ ...base, metric: 'p99 latency', unit: 'ms', better: 'lower', value: median(s.runs.map((r) => r.result.p99Ms ?? NaN)) });
      const cpu = proxyCpuPer(s, (r) => r.result.count);
      if (s.peer.pid) ctx.record({ ...base, metric: 'proxy CPU per request', unit: 'µs', better: 'lower', value: cpu.value, runs: cpu.runs, note: 'proxy process + helpers; robust when the machine is shared' });
    }
  },
};

export default scenario;
