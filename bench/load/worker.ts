/**
 * The load generator, a process of its own (forked by the orchestrator, IPC
 * jobs in, results out) so that its CPU is measured apart from the proxy's
 * and the orchestrator's. One job at a time, except that soak stats may be
 * asked while the soak load runs.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { dial, openTunnel } from './dial.js';
import { Http1Connection } from './http1.js';
import { bulkRequest, stsRequest } from './requests.js';
import type {
  BulkJob,
  BurstJob,
  IdleOpenJob,
  Job,
  JobMessage,
  JobReply,
  KeepAliveJob,
  NewConnectionJob,
  PlainKeepAliveJob,
  PlainTarget,
  RunResult,
  SoakStartJob,
  SoakStats,
} from './jobs.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const nowNs = (): bigint => process.hrtime.bigint();
const cpuTotalMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function percentiles(h: RecordableHistogram): { p50Ms: number | null; p99Ms: number | null } {
  if (h.count === 0) return { p50Ms: null, p99Ms: null };
  return { p50Ms: h.percentile(50) / 1e6, p99Ms: h.percentile(99) / 1e6 };
}

/** Measures a closed-loop job: `loops` run until told to stop; only what completes inside the window counts. */
async function measureWindow(
  loops: (state: { measuring: boolean; stopped: boolean; record: (ns: bigint) => void; error: (e: unknown) => void }) => Promise<void>[],
  warmupMs: number,
  durationMs: number,
): Promise<RunResult> {
  const hist = createHistogram();
  let count = 0;
  let errors = 0;
  let firstError: string | null = null;
  const state = {
    measuring: false,
    stopped: false,
    record: (ns: bigint) => {
      if (!state.measuring) return;
      count++;
      hist.record(ns > 0n ? ns : 1n);
    },
    error: (e: unknown) => {
      if (!state.measuring) return;
      errors++;
      firstError ??= message(e);
    },
  };
  const running = loops(state);
  await sleep(warmupMs);
  process.send?.({ event: 'window-start' });
  state.measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(durationMs);
  state.measuring = false;
  process.send?.({ event: 'window-end' });
  const result = {
    count,
    errors,
    firstError,
    wallMs: performance.now() - t0,
    cpuMs: cpuTotalMs(process.cpuUsage(cpu0)),
    ...percentiles(hist),
    bytes: 0,
  };
  state.stopped = true;
  await Promise.allSettled(running);
  return result;
}

async function keepalive(job: KeepAliveJob): Promise<RunResult> {
  return keepaliveRequests(stsRequest({ host: job.hostHeader }), job.connections, () => dial(job.target), job);
}

/** A plain TCP connection to `target.connect` (no CONNECT, no TLS). */
function openPlain(target: PlainTarget, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.connect.host, port: target.connect.port, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
  });
}

async function plainKeepalive(job: PlainKeepAliveJob): Promise<RunResult> {
  return keepaliveRequests(
    stsRequest({ host: job.target.hostHeader, target: job.target.url }),
    job.connections,
    () => openPlain(job.target),
    job,
  );
}

/** `connections` keep-alive connections from `open`, each sending `request` in a loop for the window; a broken one is reopened. */
async function keepaliveRequests(
  request: Buffer,
  connections: number,
  open: () => Promise<Duplex>,
  window: { warmupMs: number; durationMs: number },
): Promise<RunResult> {
  const conns: (Http1Connection | null)[] = [];
  // Open in small waves: a proxy's accept queue is not what this measures.
  for (let i = 0; i < connections; i += 16) {
    const wave = await Promise.allSettled(Array.from({ length: Math.min(16, connections - i) }, () => open()));
    for (const w of wave) conns.push(w.status === 'fulfilled' ? new Http1Connection(w.value) : null);
  }
  try {
    return await measureWindow(
      (state) =>
        conns.map(async (_, i) => {
          while (!state.stopped) {
            const t0 = nowNs();
            let c = conns[i] ?? null;
            try {
              if (!c?.usable) {
                c = new Http1Connection(await open());
                conns[i] = c;
              }
              const r = await c.send(request);
              if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
              if (r.close) c.destroy();
              state.record(nowNs() - t0);
            } catch (err) {
              state.error(err);
              c?.destroy();
              await sleep(5);
            }
          }
        }),
      window.warmupMs,
      window.durationMs,
    );
  } finally {
    for (const c of conns) c?.destroy();
  }
}

async function newconn(job: NewConnectionJob): Promise<RunResult> {
  const request = stsRequest({ host: job.hostHeader, close: true });
  const authorities = job.authorities && job.authorities.length > 0 ? job.authorities : [job.target.authority];
  let next = 0;
  return measureWindow(
    (state) =>
      Array.from({ length: job.concurrency }, async () => {
        while (!state.stopped) {
          const t0 = nowNs();
          let c: Http1Connection | null = null;
          try {
            c = new Http1Connection(await dial(job.target, authorities[next++ % authorities.length]));
            const r = await c.send(request);
            if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
            state.record(nowNs() - t0);
          } catch (err) {
            state.error(err);
            await sleep(5);
          } finally {
            c?.destroy();
          }
        }
      }),
    job.warmupMs,
    job.durationMs,
  );
}

async function bulk(job: BulkJob): Promise<RunResult> {
  let c: Http1Connection;
  try {
    c = new Http1Connection(await dial(job.target));
  } catch (err) {
    return { count: 0, errors: 1, firstError: message(err), wallMs: 0, cpuMs: 0, p50Ms: null, p99Ms: null, bytes: 0 };
  }
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await c.send(bulkRequest(job.bytes, job.hostHeader));
    const wallMs = performance.now() - t0;
    const ok = r.status === 200 && r.bodyBytes === job.bytes;
    return {
      count: ok ? 1 : 0,
      errors: ok ? 0 : 1,
      firstError: ok ? null : `HTTP ${r.status}, ${r.bodyBytes} of ${job.bytes} bytes`,
      wallMs,
      cpuMs: cpuTotalMs(process.cpuUsage(cpu0)),
      p50Ms: null,
      p99Ms: null,
      bytes: r.bodyBytes,
    };
  } finally {
    c.destroy();
  }
}

async function burst(job: BurstJob): Promise<RunResult> {
  const request = stsRequest({ host: job.hostHeader, close: true });
  const hist = createHistogram();
  let errors = 0;
  let firstError: string | null = null;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: job.connections }, async () => {
      const s0 = nowNs();
      let c: Http1Connection | null = null;
      try {
        c = new Http1Connection(await dial(job.target));
        const r = await c.send(request);
        if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
        hist.record(nowNs() - s0 || 1n);
      } catch (err) {
        errors++;
        firstError ??= message(err);
      } finally {
        c?.destroy();
      }
    }),
  );
  return {
    count: hist.count,
    errors,
    firstError,
    wallMs: performance.now() - t0,
    cpuMs: cpuTotalMs(process.cpuUsage(cpu0)),
    ...percentiles(hist),
    bytes: 0,
  };
}

const idle: net.Socket[] = [];

async function idleOpen(job: IdleOpenJob): Promise<RunResult> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let opened = 0;
  let errors = 0;
  let firstError: string | null = null;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < job.count) {
      started++;
      try {
        const s = await openTunnel(job.proxy, job.authority, 30_000);
        s.on('error', () => undefined);
        s.setTimeout(0);
        idle.push(s);
        opened++;
      } catch (err) {
        errors++;
        firstError ??= message(err);
      }
    }
  };
  await Promise.all(Array.from({ length: job.parallel }, worker));
  return {
    count: opened,
    errors,
    firstError,
    wallMs: performance.now() - t0,
    cpuMs: cpuTotalMs(process.cpuUsage(cpu0)),
    p50Ms: null,
    p99Ms: null,
    bytes: 0,
  };
}

function idleClose(): RunResult {
  const n = idle.length;
  for (const s of idle.splice(0)) s.destroy();
  return { count: n, errors: 0, firstError: null, wallMs: 0, cpuMs: 0, p50Ms: null, p99Ms: null, bytes: 0 };
}

/** Constant mixed load for the soak: open-loop schedules, so a slow proxy shows as latency, not as less load. */
class Soak {
  private stopped = false;
  private readonly running: Promise<void>[] = [];
  private counts = { inspectRequests: 0, inspectConnections: 0, tunnels: 0, errors: 0 };
  private firstError: string | null = null;
  private hist = createHistogram();
  private cpu0 = process.cpuUsage();
  private t0 = performance.now();

  constructor(private readonly job: SoakStartJob) {
    const keyed = Array.from({ length: Math.max(1, job.keys) }, (_, k) => stsRequest({ host: job.hostHeader, keyIndex: 1000 + k }));
    const closing = Array.from({ length: Math.max(1, job.keys) }, (_, k) =>
      stsRequest({ host: job.hostHeader, keyIndex: 1000 + k, close: true }),
    );
    let nextKey = 0;
    const perConn = job.inspectRps / Math.max(1, job.inspectConnections);
    for (let i = 0; i < job.inspectConnections; i++) {
      this.running.push(
        this.paced(perConn, i / Math.max(1, job.inspectConnections), async (conn) => {
          if (!conn.c?.usable) conn.c = new Http1Connection(await dial(job.inspect));
          const r = await conn.c.send(keyed[nextKey++ % keyed.length] as Buffer);
          if (r.status !== 200) throw new Error(`inspect HTTP ${r.status}`);
          this.counts.inspectRequests++;
        }),
      );
    }
    this.running.push(
      this.paced(job.inspectCps, 0.3, async () => {
        const c = new Http1Connection(await dial(job.inspect));
        try {
          const r = await c.send(closing[nextKey++ % closing.length] as Buffer);
          if (r.status !== 200) throw new Error(`inspect (new connection) HTTP ${r.status}`);
          this.counts.inspectConnections++;
        } finally {
          c.destroy();
        }
      }),
    );
    let nextHost = 0;
    const tunnelRequest = stsRequest({ host: job.hostHeader, close: true });
    this.running.push(
      this.paced(job.tunnelCps, 0.6, async () => {
        const c = new Http1Connection(await dial(job.tunnel, job.tunnelAuthorities[nextHost++ % job.tunnelAuthorities.length]));
        try {
          const r = await c.send(tunnelRequest);
          if (r.status !== 200) throw new Error(`tunnel HTTP ${r.status}`);
          this.counts.tunnels++;
        } finally {
          c.destroy();
        }
      }),
    );
  }

  /** Calls `fn` `rate` times a second on a fixed schedule; calls that fall behind run back to back. */
  private async paced(rate: number, phase: number, fn: (conn: { c: Http1Connection | null }) => Promise<void>): Promise<void> {
    if (rate <= 0) return;
    const interval = 1000 / rate;
    const conn: { c: Http1Connection | null } = { c: null };
    let due = performance.now() + phase * interval;
    while (!this.stopped) {
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (this.stopped) break;
      due += interval;
      const t0 = nowNs();
      try {
        await fn(conn);
        this.hist.record(nowNs() - t0 || 1n);
      } catch (err) {
        this.counts.errors++;
        this.firstError ??= message(err);
        conn.c?.destroy();
        conn.c = null;
      }
    }
    conn.c?.destroy();
  }

  stats(): SoakStats {
    const s: SoakStats = {
      ...this.counts,
      firstError: this.firstError,
      p99Ms: this.hist.count > 0 ? this.hist.percentile(99) / 1e6 : null,
      cpuMs: cpuTotalMs(process.cpuUsage(this.cpu0)),
      wallMs: performance.now() - this.t0,
    };
    this.counts = { inspectRequests: 0, inspectConnections: 0, tunnels: 0, errors: 0 };
    this.firstError = null;
    this.hist = createHistogram();
    this.cpu0 = process.cpuUsage();
    this.t0 = performance.now();
    return s;
  }

  async stop(): Promise<SoakStats> {
    this.stopped = true;
    await Promise.allSettled(this.running);
    return this.stats();
  }
}

let soak: Soak | null = null;

async function runJob(job: Job): Promise<unknown> {
  switch (job.kind) {
    case 'keepalive':
      return keepalive(job);
    case 'plain-keepalive':
      return plainKeepalive(job);
    case 'newconn':
      return newconn(job);
    case 'bulk':
      return bulk(job);
    case 'burst':
      return burst(job);
    case 'idle-open':
      return idleOpen(job);
    case 'idle-close':
      return idleClose();
    case 'soak-start':
      if (soak) throw new Error('a soak is already running');
      soak = new Soak(job);
      return { started: true };
    case 'soak-stats':
      if (!soak) throw new Error('no soak running');
      return soak.stats();
    case 'soak-stop': {
      if (!soak) throw new Error('no soak running');
      const s = await soak.stop();
      soak = null;
      return s;
    }
  }
}

process.on('message', (msg: JobMessage) => {
  runJob(msg.job).then(
    (result) => process.send?.({ id: msg.id, ok: true, result } satisfies JobReply),
    (err: unknown) =>
      process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies JobReply),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ok: true, result: 'ready' } satisfies JobReply);
