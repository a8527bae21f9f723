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
let drainMs = 30_000;
let stopping = false;

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
      send({ tag: TAG, t: 'stopped', activeTunnels: running?.activeTunnels ?? 0 }, () => process.exit(0));
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
  const a = new AgentApp(m.config, {
    logger,
    version: packageVersion(),
    nodeVersion: process.versions.node,
    ...(m.logLevelOverride ? { logLevelOverride: m.logLevelOverride } : {}),
    worker: { relay, adminPort: m.adminPort },
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

async function handle(m: ToWorker): Promise<void> {
  switch (m.t) {
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

process.on('message', (m: unknown) => {
  if (isOurs(m)) void handle(m as ToWorker);
});
// Reloads come from the primary, which reads and checks the file once for all workers.
process.on('SIGHUP', () => undefined);
// SIGTERM to this worker alone: it drains and exits, and the primary starts another. Ctrl-C in a
// terminal reaches the whole process group: the primary stops the workers itself, in order.
process.on('SIGTERM', () => stop(drainMs));
process.on('SIGINT', () => undefined);
process.on('disconnect', () => stop(drainMs));
send({ tag: TAG, t: 'ready' });
