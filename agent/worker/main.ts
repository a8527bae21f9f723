/**
 * A proxy worker (proxy.workers > 1): forked by the primary through
 * node:cluster, it serves the shared proxy and transparent listeners and
 * nothing else. The primary owns telemetry, the admin listener and the
 * signals an operator sends; a worker takes its config, reloads and stop
 * from the primary's messages (messages.ts). It drains on a SIGTERM of its
 * own too, and when the primary goes away.
 *
 *   init ─▶ listen ─▶ listening … collect / metrics / reload … stop ─▶ drain ─▶ last observations ─▶ stopped ─▶ exit
 */
import { createLogger } from '../../common/log/logger.js';
import { packageVersion } from '../../common/runtime/version.js';
import { AgentApp } from '../app.js';
import { WorkerRelay } from '../cluster/relay.js';
import { BorrowedClock, DialThroughPrimary } from '../cluster/embedded.js';
import { TunnelLease } from '../cluster/tunnel-budget.js';
import { TAG, isOurs, type FromWorker, type ToWorker } from '../cluster/messages.js';

const send = (m: FromWorker, done?: () => void): void => {
  if (!process.connected || !process.send) {
    done?.();
    return;
  }
  process.send(m, undefined, {}, () => done?.());
};

const relay = new WorkerRelay((m) => send(m));
let app: AgentApp | null = null;
let lease: TunnelLease | null = null;
/** An embedded primary's network and clock, borrowed (embedded.ts). */
let dial: DialThroughPrimary | null = null;
let clock: BorrowedClock | null = null;
let drainMs = 30_000;
let stopping = false;
/** The primary said no worker has a tunnel left: this one may close. */
let othersDrained = false;

function stop(ms: number): void {
  if (stopping) return;
  stopping = true;
  const running = app;
  void (async () => {
    try {
      if (running) await running.stop(ms);
    } finally {
      relay.stopWatching();
      relay.flush();
      // The channel is ordered: once "stopped" is written, every observation before it is too.
      const metrics = running ? await running.registry.getMetricsAsJSON().catch(() => []) : [];
      send({ tag: TAG, t: 'stopped', activeTunnels: running?.activeTunnels ?? 0, metrics }, () => process.exit(0));
    }
  })();
}

async function start(m: Extract<ToWorker, { t: 'init' }>): Promise<void> {
  drainMs = m.config.proxy.drain_timeout;
  const logger = createLogger({
    name: 'egress-witness-agent',
    level: (m.logLevelOverride ?? m.config.log.level) as 'info',
    destination: relay.destination,
  }).child({ worker: m.index, pid: process.pid });
  if (m.embedded) {
    relay.sendAsItComes();
    if (m.embedded.dial) dial = new DialThroughPrimary((x) => send(x));
    if (m.embedded.clock !== null) clock = new BorrowedClock(m.embedded.clock);
  }
  lease = new TunnelLease({
    workers: m.workers,
    cap: m.config.proxy.max_tunnels,
    want: (n, waiting) => send({ tag: TAG, t: 'lease-want', n, waiting }),
    giveBack: (n) => send({ tag: TAG, t: 'lease-return', n }),
  });
  const a = new AgentApp(m.config, {
    logger,
    version: packageVersion(),
    nodeVersion: process.versions.node,
    ...(m.logLevelOverride ? { logLevelOverride: m.logLevelOverride } : {}),
    ...(dial ? { dial } : {}),
    ...(clock ? { now: clock.now } : {}),
    worker: {
      relay,
      adminPort: m.adminPort,
      admission: lease,
      sharePassthrough: (clientIp, host) => send({ tag: TAG, t: 'passthrough', clientIp, host }),
      drainTogether: {
        idle: () => send({ tag: TAG, t: 'idle' }),
        // The primary gone, nobody else is waited for.
        othersDone: () => othersDrained || !process.connected,
      },
    },
  });
  try {
    const addrs = await a.start();
    app = a;
    relay.watchTunnels(() => a.activeTunnels);
    relay.flush();
    send({ tag: TAG, t: 'listening', addresses: { proxy: addrs.proxy, transparent: addrs.transparent } });
  } catch (err) {
    relay.flush();
    send({ tag: TAG, t: 'failed', message: (err as Error).message }, () => process.exit(1));
  }
}

async function handle(m: ToWorker, handle: unknown): Promise<void> {
  if (dial?.handle(m, handle)) return;
  switch (m.t) {
    case 'lease':
      return lease?.granted(m.n, m.cap, m.waiting);
    case 'recall':
      return lease?.recalled();
    case 'drained':
      othersDrained = true;
      return;
    case 'passthrough':
      return app?.rememberPassthrough(m.clientIp, m.host);
    case 'clock':
      return clock?.set(m.now);
    case 'looked-up':
    case 'dialled':
    case 'dial-broken':
      // Answers to a worker that did not ask (not embedded): nothing to do.
      return;
    case 'init':
      return start(m);
    case 'collect':
      app?.reportLive();
      relay.flush();
      return send({ tag: TAG, t: 'collected', id: m.id, activeTunnels: app?.activeTunnels ?? 0 });
    case 'metrics':
      return send({ tag: TAG, t: 'metrics', id: m.id, metrics: app ? await app.registry.getMetricsAsJSON() : [] });
    case 'reload': {
      const ok = app ? await app.reload({ ok: true, value: m.config }) : false;
      relay.flush();
      return send({ tag: TAG, t: 'reloaded', id: m.id, ok });
    }
    case 'stop':
      return stop(m.drainMs);
  }
}

process.on('message', (m: unknown, h: unknown) => {
  if (isOurs(m)) void handle(m as ToWorker, h);
});
// Reloads come from the primary, which reads and checks the file once for all workers.
process.on('SIGHUP', () => undefined);
// SIGTERM to this worker alone: it drains and exits, and the primary starts another. Ctrl-C in a
// terminal reaches the whole process group: the primary stops the workers itself, in order.
process.on('SIGTERM', () => stop(drainMs));
process.on('SIGINT', () => undefined);
process.on('disconnect', () => stop(drainMs));
send({ tag: TAG, t: 'ready' });
