/**
 * A new connection per request: CONNECT (through a proxy), a full TLS
 * handshake (no session reuse), one 1 KiB STS POST with `Connection: close`,
 * 16 at a time. For the inspecting proxies this includes their own
 * handshake with the client and a certificate from their cache.
 */
import { requestRateScenario } from '../lib/request-rate.js';

export default requestRateScenario({
  name: 'new-connection',
  order: 40,
  title: 'new connection per request (CONNECT + full TLS handshake + 1 KiB POST), 16 concurrent: requests/s',
  p99: false,
  warmMs: (p) => p.warmupMs,
  load: (ctx, peer, window) =>
    ctx.load.newconn({ target: peer.target, hostHeader: peer.hostHeader, concurrency: ctx.preset.newconnConcurrency, ...window }),
});
