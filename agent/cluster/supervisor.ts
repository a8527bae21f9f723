/**
 * The primary's side of `proxy.workers` > 1: forks the proxy workers
 * (node:cluster, so they share the proxy and transparent listeners), feeds
 * their observations into the one aggregator and their log lines to stdout,
 * collects them before every telemetry flush, hands them each reload, stops
 * them on SIGTERM (each drains its own tunnels), and restarts and counts any
 * worker that dies.
 *
 *   fork ×N ─▶ init ─▶ listening ×N ─▶ started
 *   exit (not stopping) ─▶ restarts_total++ ─▶ fork again (backing off while it keeps failing)
 */
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Logger } from '../../common/log/logger.js';
import type { AgentConfig } from '../config/schema.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import type { Observer } from '../observe/model/observation.js';
import { TAG, isOurs, type FromWorker, type ListenAddresses, type ToWorker } from './messages.js';
import { workerConfig } from './workers.js';

export interface SupervisorOptions {
  workers: number;
  /** The worker entry module (built JavaScript). */
  exec: string;
  logger: Logger;
  metrics: AgentMetrics;
  /** Where the workers' observations go: the primary's aggregator. */
  observer: Observer;
  /** Where the workers' log lines go, as written: the primary's log destination. */
  writeLog: (text: string) => void;
  logLevelOverride: string | null;
}

/** How long a worker has to answer a collect, metrics or reload request before it is left out. */
const REPLY_TIMEOUT_MS = 5_000;
/** How long a worker has to start listening. */
const START_TIMEOUT_MS = 30_000;
/** A worker that lived shorter than this is failing to run: its restarts back off. */
const QUICK_EXIT_MS = 5_000;
const MAX_BACKOFF_MS = 10_000;

type Metrics = MetricObjectWithValues<MetricValue<string>>[];

interface Slot {
  index: number;
  worker: Worker | null;
  startedAt: number;
  quickExits: number;
  activeTunnels: number;
  ready: boolean;
  /** Replies awaited from this worker, by `${type}:${id}`. */
  waiting: Map<string, (m: FromWorker | null) => void>;
}

export class WorkerSupervisor {
  private readonly slots: Slot[] = [];
  private config: AgentConfig | null = null;
  private adminPort = 0;
  private stopping = false;
  /** Set once every worker first listened: from then on, a worker that exits is replaced. */
  private started = false;
  private nextId = 1;
  private readonly restartTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: SupervisorOptions) {
    for (let i = 0; i < opts.workers; i++)
      this.slots.push({ index: i, worker: null, startedAt: 0, quickExits: 0, activeTunnels: 0, ready: false, waiting: new Map() });
  }

  get running(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  /** Open tunnels over all workers, as each last reported them. */
  get activeTunnels(): number {
    return this.slots.reduce((n, s) => n + (s.worker ? s.activeTunnels : 0), 0);
  }

  /** Forks every worker and resolves with the listen addresses once all of them listen. */
  async start(config: AgentConfig, adminPort: number): Promise<ListenAddresses> {
    this.config = await pinPorts(config);
    this.adminPort = adminPort;
    cluster.setupPrimary({ exec: this.opts.exec, execArgv: [], args: [], serialization: 'advanced', silent: false });
    const started = await Promise.allSettled(this.slots.map((s) => this.fork(s)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason as Error;
    this.started = true;
    return (started[0] as PromiseFulfilledResult<ListenAddresses>).value;
  }

  private fork(slot: Slot): Promise<ListenAddresses> {
    const config = this.config;
    if (!config) return Promise.reject(new Error('the workers are not configured'));
    const worker = cluster.fork({ EGRESS_WITNESS_WORKER: String(slot.index) });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.activeTunnels = 0;
    slot.ready = false;
    return new Promise<ListenAddresses>((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | null, addresses?: ListenAddresses): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(addresses!);
      };
      const timer = setTimeout(() => {
        settle(new Error(`proxy worker ${slot.index} did not start listening within ${START_TIMEOUT_MS / 1000} s`));
        worker.process.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      worker.on('message', (m: unknown) => {
        if (!isOurs(m)) return;
        const msg = m as FromWorker;
        switch (msg.t) {
          // Sent once the worker listens for messages: anything sent before that would be lost.
          case 'ready':
            this.send(worker, {
              tag: TAG,
              t: 'init',
              index: slot.index,
              workers: this.slots.length,
              config: workerConfig(this.config ?? config, this.slots.length),
              adminPort: this.adminPort,
              logLevelOverride: this.opts.logLevelOverride,
            });
            return;
          case 'listening':
            slot.ready = true;
            this.opts.metrics.proxyWorkers.set(this.running);
            settle(null, msg.addresses);
            return;
          case 'failed':
            settle(new Error(msg.message));
            return;
          case 'observations':
            for (const e of msg.events) this.opts.observer.observe(e);
            return;
          case 'log':
            this.opts.writeLog(msg.text);
            return;
          case 'collected':
            slot.activeTunnels = msg.activeTunnels;
            this.reply(slot, `collect:${msg.id}`, msg);
            return;
          case 'metrics':
            this.reply(slot, `metrics:${msg.id}`, msg);
            return;
          case 'reloaded':
            this.reply(slot, `reload:${msg.id}`, msg);
            return;
          case 'stopped':
          case 'tunnels':
            slot.activeTunnels = msg.activeTunnels;
            return;
        }
      });
      worker.once('exit', (code, signal) => {
        settle(new Error(`proxy worker ${slot.index} exited (${signal ?? `code ${code}`}) before it listened`));
        this.exited(slot, worker, code, signal);
      });
    });
  }

  private exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    const wasReady = slot.ready;
    slot.worker = null;
    slot.ready = false;
    for (const resolve of slot.waiting.values()) resolve(null);
    slot.waiting.clear();
    this.opts.metrics.proxyWorkers.set(this.running);
    if (this.stopping || !this.started) return;
    const lived = Date.now() - slot.startedAt;
    slot.quickExits = wasReady && lived >= QUICK_EXIT_MS ? 0 : slot.quickExits + 1;
    const delay = Math.min(MAX_BACKOFF_MS, slot.quickExits === 0 ? 0 : 250 * 2 ** (slot.quickExits - 1));
    this.opts.metrics.proxyWorkerRestarts.inc();
    this.opts.logger.error(
      { event: 'worker_exited', worker: slot.index, pid: worker.process.pid, code, signal, restart_in_ms: delay },
      `proxy worker ${slot.index} exited (${signal ?? `code ${String(code)}`}); starting another`,
    );
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (this.stopping) return;
      this.restart(slot);
    }, delay);
    this.restartTimers.add(timer);
  }

  private restart(slot: Slot): void {
    this.fork(slot).then(
      () =>
        this.opts.logger.info(
          { event: 'worker_restarted', worker: slot.index, pid: slot.worker?.process.pid },
          `proxy worker ${slot.index} restarted`,
        ),
      // Its exit (start timeouts kill it) schedules the next attempt.
      (err: unknown) =>
        this.opts.logger.error({ event: 'worker_start_failed', worker: slot.index, err }, `proxy worker ${slot.index} failed to start`),
    );
  }

  private send(worker: Worker, m: ToWorker): void {
    try {
      if (worker.isConnected()) worker.send(m);
    } catch {
      // the worker is going away; its exit is handled there
    }
  }

  private reply(slot: Slot, key: string, m: FromWorker): void {
    const resolve = slot.waiting.get(key);
    if (!resolve) return;
    slot.waiting.delete(key);
    resolve(m);
  }

  /** Asks every listening worker; resolves with each answer (null: no answer in time, or the worker went away). */
  private ask(make: (id: number) => ToWorker, type: string): Promise<(FromWorker | null)[]> {
    const id = this.nextId++;
    return Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<FromWorker | null>((resolve) => {
            const worker = slot.worker;
            if (!worker || !slot.ready) return resolve(null);
            const key = `${type}:${id}`;
            const timer = setTimeout(() => {
              slot.waiting.delete(key);
              resolve(null);
            }, REPLY_TIMEOUT_MS);
            slot.waiting.set(key, (m) => {
              clearTimeout(timer);
              resolve(m);
            });
            this.send(worker, make(id));
          }),
      ),
    );
  }

  /** Every worker reports its live tunnels and sends what it observed: after this, the aggregator has it all. */
  async collect(): Promise<void> {
    await this.ask((id) => ({ tag: TAG, t: 'collect', id }), 'collect');
  }

  /** Each worker's registry, as JSON, for one aggregated /metrics. */
  async workerMetrics(): Promise<Metrics[]> {
    const answers = await this.ask((id) => ({ tag: TAG, t: 'metrics', id }), 'metrics');
    return answers.flatMap((a) => (a && a.t === 'metrics' ? [a.metrics] : []));
  }

  /** Hands a validated configuration to every worker; true when all applied it. */
  async reload(next: AgentConfig): Promise<boolean> {
    const current = this.config;
    if (!current) return false;
    // Listen addresses need a restart, so the pinned ports stay.
    this.config = {
      ...next,
      proxy: { ...next.proxy, listen: current.proxy.listen },
      transparent:
        current.transparent && next.transparent ? { ...next.transparent, listen: current.transparent.listen } : current.transparent,
    };
    const config = workerConfig(this.config, this.slots.length);
    const answers = await this.ask((id) => ({ tag: TAG, t: 'reload', id, config }), 'reload');
    return answers.every((a, i) => (this.slots[i]!.worker === null ? true : a !== null && a.t === 'reloaded' && a.ok));
  }

  /** Every worker drains its tunnels (up to drainMs), sends its last observations and exits. */
  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    const exits = this.slots.map((slot) => {
      const worker = slot.worker;
      if (!worker) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => worker.process.kill('SIGKILL'), drainMs + REPLY_TIMEOUT_MS);
        worker.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        if (worker.isDead()) {
          clearTimeout(kill);
          resolve();
          return;
        }
        this.send(worker, { tag: TAG, t: 'stop', drainMs });
      });
    });
    await Promise.all(exits);
    this.opts.metrics.proxyWorkers.set(0);
  }
}

/** A free port on `host`, for listen addresses with port 0 (tests): the workers must all bind the same one. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Port 0 means "any": each worker asking the cluster for port 0 on the same host would share one
 * handle (proxy and transparent listener included), so the primary picks the ports first.
 */
async function pinPorts(c: AgentConfig): Promise<AgentConfig> {
  const pin = async (l: AgentConfig['proxy']['listen']) => (l.port === 0 ? { ...l, port: await freePort(l.host) } : l);
  const proxyListen = await pin(c.proxy.listen);
  const transparent = c.transparent ? { ...c.transparent, listen: await pin(c.transparent.listen) } : null;
  return { ...c, proxy: { ...c.proxy, listen: proxyListen }, transparent };
}
