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
import { createHook, type AsyncHook } from 'node:async_hooks';
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Logger } from '../../common/log/logger.js';
import type { AgentConfig } from '../config/schema.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import type { Observer } from '../observe/model/observation.js';
import type { DialDeps } from '../proxy/dialer.js';
import { TAG, errorInfo, isOurs, type FromWorker, type ListenAddresses, type ToWorker } from './messages.js';
import { TunnelBudget } from './tunnel-budget.js';

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
  /** Node flags the workers start with (workerExecArgv). */
  execArgv: string[];
  /**
   * An embedded primary's own network and clock (AgentDeps.dial, AgentDeps.now), lent to the
   * workers (embedded.ts). Unset: each worker resolves, connects and reads the time itself.
   */
  embedded?: { dial: DialDeps | null; now: (() => number) | null };
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
  /** Connections made for this worker (an embedded primary), by dial id, until the worker's end closes. */
  dials: Map<number, net.Socket>;
  /** Stopping, its tunnels are gone. */
  idle: boolean;
  /** Its registry as it stopped (SIGTERM), kept for /metrics after it is gone. */
  final: Metrics | null;
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
  /** proxy.max_tunnels, held here for all workers: each leases its share as it needs it. */
  private readonly budget: TunnelBudget;
  private clockTimer: NodeJS.Timeout | null = null;
  private clockHook: AsyncHook | null = null;
  private lastClock = Number.NaN;

  constructor(private readonly opts: SupervisorOptions) {
    for (let i = 0; i < opts.workers; i++)
      this.slots.push({
        index: i,
        worker: null,
        startedAt: 0,
        quickExits: 0,
        activeTunnels: 0,
        ready: false,
        waiting: new Map(),
        dials: new Map(),
        idle: false,
        final: null,
      });
    this.budget = new TunnelBudget({
      cap: 0,
      workers: opts.workers,
      grant: (i, n, cap, waiting) => {
        const w = this.slots[i]?.worker;
        if (w) this.send(w, { tag: TAG, t: 'lease', n, cap, waiting });
      },
      recall: (i) => {
        const w = this.slots[i]?.worker;
        if (w) this.send(w, { tag: TAG, t: 'recall' });
      },
    });
  }

  /** Tunnels leased to the workers now (each holds a few spare). */
  get leasedTunnels(): number {
    return this.budget.leased;
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
    this.budget.setCap(config.proxy.max_tunnels);
    this.watchClock();
    cluster.setupPrimary({
      exec: this.opts.exec,
      execArgv: this.opts.execArgv,
      args: [],
      serialization: 'advanced',
      silent: false,
    });
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
    slot.idle = false;
    slot.final = null;
    const embedded = this.opts.embedded;
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
          case 'lease-want':
            this.budget.want(slot.index, msg.n, msg.waiting);
            return;
          case 'lease-return':
            this.budget.giveBack(slot.index, msg.n);
            return;
          case 'idle':
            slot.idle = true;
            this.drainedAll();
            return;
          case 'passthrough':
            for (const other of this.slots)
              if (other !== slot && other.worker)
                this.send(other.worker, { tag: TAG, t: 'passthrough', clientIp: msg.clientIp, host: msg.host });
            return;
          case 'lookup':
          case 'dial':
          case 'dial-cancel':
          case 'dial-closed':
            this.serveDial(slot, worker, msg);
            return;
          // Sent once the worker listens for messages: anything sent before that would be lost.
          case 'ready':
            this.send(worker, {
              tag: TAG,
              t: 'init',
              index: slot.index,
              workers: this.slots.length,
              config: this.config ?? config,
              adminPort: this.adminPort,
              logLevelOverride: this.opts.logLevelOverride,
              embedded: embedded ? { dial: embedded.dial !== null, clock: embedded.now ? embedded.now() : null } : null,
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
            slot.activeTunnels = msg.activeTunnels;
            slot.final = msg.metrics;
            return;
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
    for (const s of slot.dials.values()) s.destroy();
    slot.dials.clear();
    // Its tunnels ended with it: what it leased is free again.
    this.budget.forget(slot.index);
    if (this.stopping) this.drainedAll();
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

  private send(worker: Worker, m: ToWorker, handle?: net.Socket): void {
    try {
      if (!worker.isConnected()) return;
      // With a callback a failed write (the worker is gone: EPIPE) is reported there, not thrown later.
      if (handle) worker.send(m, handle, { keepOpen: true }, ignore);
      else worker.send(m, undefined, undefined, ignore);
    } catch {
      // the worker is going away; its exit is handled there
    }
  }

  /**
   * An embedded primary's lookups and connections for a worker (embedded.ts). A connected socket is
   * handed over and kept open here, paused: an error or close that reaches it (its network's doing)
   * is passed on to the worker's socket, and it is closed when the worker's end closes.
   */
  private serveDial(slot: Slot, worker: Worker, m: Extract<FromWorker, { t: 'lookup' | 'dial' | 'dial-cancel' | 'dial-closed' }>): void {
    const deps = this.opts.embedded?.dial;
    if (!deps) return;
    switch (m.t) {
      case 'lookup':
        deps.lookup(m.host).then(
          (answers) => this.send(worker, { tag: TAG, t: 'looked-up', id: m.id, answers, error: null }),
          (err: unknown) => this.send(worker, { tag: TAG, t: 'looked-up', id: m.id, answers: null, error: errorInfo(err) }),
        );
        return;
      case 'dial-cancel':
      case 'dial-closed': {
        const s = slot.dials.get(m.id);
        slot.dials.delete(m.id);
        s?.destroy();
        return;
      }
      case 'dial':
        break;
    }
    const { id } = m;
    const fail = (err: unknown): void => {
      if (slot.dials.get(id) !== undefined) slot.dials.delete(id);
      this.send(worker, { tag: TAG, t: 'dialled', id, error: errorInfo(err) });
    };
    let made;
    try {
      made = deps.connect({ host: m.host, port: m.port });
    } catch (err) {
      return fail(err);
    }
    const handOver = (s: net.Socket): void => {
      if (slot.dials.get(id) !== s || slot.worker !== worker) {
        s.destroy();
        return;
      }
      let told = false;
      const broken = (err: Error | null): void => {
        if (told) return;
        told = true;
        this.send(worker, { tag: TAG, t: 'dial-broken', id, error: err ? errorInfo(err) : null });
      };
      s.on('error', (err) => broken(err));
      s.once('close', () => {
        if (slot.dials.get(id) === s) slot.dials.delete(id);
        broken(null);
      });
      this.send(worker, { tag: TAG, t: 'dialled', id, error: null }, s);
    };
    if (made instanceof net.Socket) {
      const s = made;
      // Its bytes are the worker's to read.
      s.pause();
      slot.dials.set(id, s);
      const onError = (err: Error): void => {
        s.off('connect', onConnect);
        fail(err);
      };
      const onConnect = (): void => {
        s.off('error', onError);
        handOver(s);
      };
      s.once('error', onError);
      s.once('connect', onConnect);
      return;
    }
    made.then((s) => {
      s.pause();
      slot.dials.set(id, s);
      handOver(s);
    }, fail);
  }

  /**
   * An embedded primary's clock, told to the workers whenever it moved: checked on every callback
   * this process runs (a host program moves its clock and then acts), and at least every 10 ms.
   */
  private watchClock(): void {
    const now = this.opts.embedded?.now;
    if (!now || this.clockTimer) return;
    const tell = (): void => {
      const t = now();
      if (t === this.lastClock) return;
      this.lastClock = t;
      for (const s of this.slots) if (s.worker) this.send(s.worker, { tag: TAG, t: 'clock', now: t });
    };
    this.clockTimer = setInterval(tell, 10);
    this.clockTimer.unref();
    this.tellClock = tell;
    this.clockHook = createHook({
      before: () => {
        try {
          tell();
        } catch {
          // a clock that throws is the host's problem; the workers keep the last time they were told
        }
      },
    }).enable();
  }

  /** Tells the workers the embedded clock if it moved (before anything is asked of them). */
  private tellClock: () => void = () => undefined;

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
    this.tellClock();
    await this.ask((id) => ({ tag: TAG, t: 'collect', id }), 'collect');
  }

  /** Each worker's registry, as JSON, for one aggregated /metrics. */
  async workerMetrics(): Promise<Metrics[]> {
    const answers = await this.ask((id) => ({ tag: TAG, t: 'metrics', id }), 'metrics');
    return answers.flatMap((a, i) => {
      if (a && a.t === 'metrics') return [a.metrics];
      // A worker stopped with the agent: what it did still counts.
      const final = this.slots[i]?.worker ? null : this.slots[i]?.final;
      return final ? [final] : [];
    });
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
    const config = this.config;
    this.budget.setCap(this.config.proxy.max_tunnels);
    const answers = await this.ask((id) => ({ tag: TAG, t: 'reload', id, config }), 'reload');
    return answers.every((a, i) => (this.slots[i]!.worker === null ? true : a !== null && a.t === 'reloaded' && a.ok));
  }

  /** Once no stopping worker has a tunnel left, each is told it may close (until then late requests get 503 draining). */
  private drainedAll(): void {
    if (!this.stopping || this.slots.some((s) => s.worker && !s.idle)) return;
    for (const s of this.slots) if (s.worker) this.send(s.worker, { tag: TAG, t: 'drained' });
  }

  /** Every worker drains its tunnels (up to drainMs; until no worker has one), sends its last observations and exits. */
  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    if (this.clockTimer) clearInterval(this.clockTimer);
    this.clockTimer = null;
    this.clockHook?.disable();
    this.clockHook = null;
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

/** Send errors: the worker is going away, and its exit is handled where it is seen. */
function ignore(): void {}

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
