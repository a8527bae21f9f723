/**
 * Small API calls over keep-alive: 64 clients, each on its own connection,
 * send a SigV4-looking 1 KiB STS POST and read the 1 KiB answer, back to
 * back. Requests/s and latency per system, median of interleaved runs.
 */
import { requestRateScenario } from '../lib/request-rate.js';

export default requestRateScenario({
  name: 'small-keepalive',
  order: 30,
  title: '1 KiB POST / 1 KiB answer over keep-alive, 64 concurrent clients: requests/s, p50, p99',
  p99: true,
  warmMs: (p) => p.warmMs,
  load: (ctx, peer, window) =>
    ctx.load.keepalive({ target: peer.target, hostHeader: peer.hostHeader, connections: ctx.preset.keepaliveConnections, ...window }),
});
