/**
 * Bulk download through one tunnel: a single GET whose answer is 512 MiB
 * (32 MiB with --quick), read and counted by the client. MB/s = 10^6 bytes
 * per second, from the request until the last byte.
 */
import type { Row } from '../lib/results.js';
import type { PeerName } from '../lib/peers.js';
import { acquirePeers, allPeerNames, cpuOf, errorNote, interleave, proxyCpuPer } from '../lib/measure.js';
import type { Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';

const NAME = 'bulk';

const skipRows = (peer: PeerName, reason: string): Row[] => [
  { scenario: NAME, metric: 'throughput', unit: 'MB/s', better: 'higher', peer, value: null, skipped: reason },
];

const scenario: Scenario = {
  name: NAME,
  order: 50,
  title: 'bulk download of 512 MiB through one tunnel (or one inspected connection): MB/s',
  async run(ctx) {
    const p = ctx.preset;
    const peers = await acquirePeers(ctx, allPeerNames(), skipRows);
    const series = await interleave(
      ctx,
      peers,
      p.bulkRuns,
      (peer) => ctx.load.bulk({ target: peer.target, hostHeader: peer.hostHeader, bytes: p.bulkBytes }),
      (peer) => ctx.load.bulk({ target: peer.target, hostHeader: peer.hostHeader, bytes: 16 * 2 ** 20 }),
    );
    for (const s of series) {
      const mbs = s.runs.filter((r) => r.result.errors === 0).map((r) => r.result.bytes / 1e6 / (r.result.wallMs / 1000));
      ctx.record({
        scenario: NAME,
        peer: s.peer.name,
        metric: 'throughput',
        unit: 'MB/s',
        better: 'higher',
        value: median(mbs),
        runs: mbs,
        ...cpuOf(s),
        note: errorNote(s) ?? `download, ${(p.bulkBytes / 2 ** 20).toFixed(0)} MiB`,
      });
      const cpu = proxyCpuPer(s, (r) => r.result.bytes / 1e6, 1);
      if (s.peer.pid)
        ctx.record({
          scenario: NAME,
          peer: s.peer.name,
          metric: 'proxy CPU per MB',
          unit: 'ms/MB',
          better: 'lower',
          value: cpu.value,
          runs: cpu.runs,
        });
    }
  },
};

export default scenario;
