/**
 * Memory per idle tunnel: a fresh proxy process, RSS read from
 * /proc/PID/status before and after opening N CONNECT tunnels to a port
 * that accepts and stays silent; (after − before) / N. N is 10,000 unless
 * the fd limit is lower (the proxy holds two descriptors per tunnel; the
 * hard limit of this machine is printed in the JSON). Only the tunnelling
 * proxies: an inspected connection is not an idle tunnel.
 */
import { PEERS, startPeer, unavailableReason, type PeerName } from '../lib/peers.js';
import { hardNofileLimit, openFds, rssKiB, sleep } from '../lib/proc.js';
import type { Scenario } from '../lib/scenario.js';

const NAME = 'idle-tunnels';
const METRIC = 'RSS per idle tunnel';

const scenario: Scenario = {
  name: NAME,
  order: 60,
  title: 'RSS per idle tunnel with 10,000 open idle CONNECT tunnels (fresh process each)',
  async run(ctx) {
    const limit = hardNofileLimit();
    const count = Math.min(ctx.preset.idleTunnels, Math.floor((limit - 400) / 2));
    if (count < ctx.preset.idleTunnels) ctx.log(`  fd hard limit ${limit}: holding ${count} tunnels instead of ${ctx.preset.idleTunnels}`);
    for (const { name, mode } of PEERS) {
      const base = { scenario: NAME, metric: METRIC, unit: 'KiB', better: 'lower' as const, peer: name };
      if (mode !== 'tunnel') {
        ctx.record({
          ...base,
          value: null,
          skipped: mode === 'direct' ? 'no proxy process' : 'not a tunnel (inspected connections are measured by the soak)',
        });
        continue;
      }
      const why = unavailableReason(name);
      if (why) {
        ctx.record({ ...base, value: null, skipped: why });
        continue;
      }
      ctx.record(await measure(ctx, name, count));
    }
  },
};

async function measure(ctx: Parameters<Scenario['run']>[0], name: PeerName, count: number) {
  const base = { scenario: NAME, metric: METRIC, unit: 'KiB', better: 'lower' as const, peer: name };
  const peer = await startPeer(ctx.peerEnv, name);
  try {
    if (!peer.pid || !peer.proxy || !peer.holdAuthority) return { ...base, value: null, skipped: 'no process to measure' };
    // Warm the code paths (lazy allocations are not per-tunnel), then let the process settle.
    await ctx.load.idleOpen({ proxy: peer.proxy, authority: peer.holdAuthority, count: 50, parallel: 10 });
    await ctx.load.idleClose();
    await ctx.fake.closeHeld();
    await sleep(Math.min(1_500, ctx.preset.settleMs));
    const before = rssKiB(peer.pid) ?? NaN;
    const opened = await ctx.load.idleOpen({ proxy: peer.proxy, authority: peer.holdAuthority, count, parallel: 64 });
    await sleep(ctx.preset.settleMs);
    const after = rssKiB(peer.pid) ?? NaN;
    const held = (await ctx.fake.stats()).held;
    const fds = openFds(peer.pid);
    ctx.log(
      `  ${name}: ${opened.count} tunnels open (${held} held upstream, ${opened.errors} failed) in ${(opened.wallMs / 1000).toFixed(1)} s; RSS ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB; ${fds ?? '?'} fds`,
    );
    await ctx.load.idleClose();
    await ctx.fake.closeHeld();
    const tunnels = Math.min(opened.count, held);
    if (tunnels === 0) return { ...base, value: null, skipped: `no tunnel opened (${opened.firstError ?? 'unknown'})` };
    return {
      ...base,
      value: (after - before) / tunnels,
      runs: undefined,
      clientCpuPct: null,
      proxyCpuPct: null,
      note: `${tunnels} tunnels; RSS ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB${opened.errors ? `; ${opened.errors} failed: ${opened.firstError}` : ''}`,
    };
  } finally {
    await peer.stop();
  }
}

export default scenario;
