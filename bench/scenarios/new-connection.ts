/**
 * A new connection per request: CONNECT (through a proxy), a full TLS
 * handshake (no session reuse), one 1 KiB STS POST with `Connection: close`,
 * 16 at a time. For the inspecting proxies this includes their own
 * handshake with the client and a certificate from their cache.
 */
import { acquirePeers, allPeerNames, interleave } from '../lib/measure.js';
import { recordRequestRate, requestRateSkipRows } from '../lib/request-rate.js';
import type { Scenario } from '../lib/scenario.js';

const NAME = 'new-connection';

const scenario: Scenario = {
  name: NAME,
  order: 40,
  title: 'new connection per request (CONNECT + full TLS handshake + 1 KiB POST), 16 concurrent: requests/s',
  async run(ctx) {
    const p = ctx.preset;
    const peers = await acquirePeers(ctx, allPeerNames(), requestRateSkipRows(NAME));
    const series = await interleave(
      ctx,
      peers,
      p.runs,
      (peer) =>
        ctx.load.newconn({
          target: peer.target,
          hostHeader: peer.hostHeader,
          concurrency: p.newconnConcurrency,
          warmupMs: p.warmupMs,
          durationMs: p.durationMs,
        }),
      (peer) =>
        ctx.load.newconn({
          target: peer.target,
          hostHeader: peer.hostHeader,
          concurrency: p.newconnConcurrency,
          warmupMs: 0,
          durationMs: p.warmupMs,
        }),
    );
    recordRequestRate(ctx, NAME, series, { p99: false });
  },
};

export default scenario;
