/**
 * Plain HTTP through the proxy: 64 clients, each on its own keep-alive
 * connection to the proxy, send the 1 KiB STS POST in absolute form
 * (`POST http://sts.us-west-2.amazonaws.com:PORT/`) and read the 1 KiB
 * answer from the fake server's plain-HTTP port, back to back. No TLS
 * anywhere: what is measured is the proxy's own HTTP parsing, policy,
 * attribution and forwarding over its upstream keep-alive pool. Direct =
 * the same requests in origin form straight to the fake server.
 */
import { requestRateScenario } from '../lib/request-rate.js';

export default requestRateScenario({
  name: 'plain-http',
  order: 35,
  title: 'absolute-form plain HTTP, 1 KiB POST / 1 KiB answer over keep-alive, 64 concurrent clients: requests/s, p50, p99',
  p99: true,
  peers: ['direct', 'ew-tunnel', 'squid'],
  warmMs: (p) => p.warmMs,
  load: (ctx, peer, window) => {
    if (!peer.plainTarget) throw new Error(`${peer.name} has no plain-HTTP target`);
    return ctx.load.plainKeepalive({ target: peer.plainTarget, connections: ctx.preset.keepaliveConnections, ...window });
  },
});
