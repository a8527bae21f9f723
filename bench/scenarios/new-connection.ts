/**
 * A new connection per request: CONNECT (through a proxy), a full TLS
 * handshake (no session reuse), one 1 KiB STS POST with `Connection: close`,
 * 16 at a time. For the inspecting proxies this includes their own
 * handshake with the client and a certificate from their cache.
 */
import type { Row } from '../lib/results.js';
import type { PeerName } from '../lib/peers.js';
import { acquirePeers, allPeerNames, cpuOf, errorNote, interleave, proxyCpuPer } from '../lib/measure.js';
import type { Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';

const NAME = 'new-connection';

const skipRows = (peer: PeerName, reason: string): Row[] => [
  { scenario: NAME, metric: 'requests/s', unit: 'req/s', better: 'higher', peer, value: null, skipped: reason },
];

const scenario: Scenario = {
  name: NAME,
  order: 40,
  title: 'new connection per request (CONNECT + full TLS handshake + 1 KiB POST), 16 concurrent: requests/s',
  async run(ctx) {
    const p = ctx.preset;
    const peers = await acquirePeers(ctx, allPeerNames(), skipRows);
    const series = await interleave(ctx, peers, p.runs, (peer) =>
      ctx.load.newconn({ target: peer.target, hostHeader: peer.hostHeader, concurrency: p.newconnConcurrency, warmupMs: p.warmupMs, durationMs: p.durationMs }),
    (peer) => ctx.load.newconn({ target: peer.target, hostHeader: peer.hostHeader, concurrency: p.newconnConcurrency, warmupMs: 0, durationMs: p.warmupMs }));
    for (const s of series) {
      const rps = s.runs.map((r) => r.result.count / (r.result.wallMs / 1000));
      const base = { scenario: NAME, peer: s.peer.name };
      ctx.record({ ...base, metric: 'requests/s', unit: 'req/s', better: 'higher', value: median(rps), runs: rps, ...cpuOf(s), note: errorNote(s) });
      ctx.record({ ...base, metric: 'p50 latency', unit: 'ms', better: 'lower', value: median(s.runs.map((r) => r.result.p50Ms ?? NaN)) });
      const cpu = proxyCpuPer(s, (r) => r.result.count);
      if (s.peer.pid) ctx.record({ ...base, metric: 'proxy CPU per request', unit: 'µs', better: 'lower', value: cpu.value, runs: cpu.runs, note: 'proxy process + helpers; robust when the machine is shared' });
    }
  },
};

export default scenario;
