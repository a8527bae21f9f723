/**
 * Small API calls over keep-alive: 64 clients, each on its own connection,
 * send a SigV4-looking 1 KiB STS POST and read the 1 KiB answer, back to
 * back. Requests/s and latency per system, median of interleaved runs.
 */
import { acquirePeers, allPeerNames, interleave } from '../lib/measure.js';
import { recordRequestRate, requestRateSkipRows } from '../lib/request-rate.js';
import type { Scenario } from '../lib/scenario.js';

const NAME = 'small-keepalive';

const scenario: Scenario = {
  name: NAME,
  order: 30,
  title: '1 KiB POST / 1 KiB answer over keep-alive, 64 concurrent clients: requests/s, p50, p99',
  async run(ctx) {
    const p = ctx.preset;
    const peers = await acquirePeers(ctx, allPeerNames(), requestRateSkipRows(NAME));
    const series = await interleave(
      ctx,
      peers,
      p.runs,
      (peer) =>
        ctx.load.keepalive({
          target: peer.target,
          hostHeader: peer.hostHeader,
          connections: p.keepaliveConnections,
          warmupMs: p.warmupMs,
          durationMs: p.durationMs,
        }),
      (peer) =>
        ctx.load.keepalive({
          target: peer.target,
          hostHeader: peer.hostHeader,
          connections: p.keepaliveConnections,
          warmupMs: 0,
          durationMs: p.warmMs,
        }),
    );
    recordRequestRate(ctx, NAME, series, { p99: true });
  },
};

export default scenario;
