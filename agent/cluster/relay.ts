/**
 * A proxy worker's side of telemetry and logging: observations and log lines
 * are batched and sent to the primary, which owns the one aggregator, the
 * spool and stdout. One message per batch, not per request: a batch leaves
 * when it is large or at most FLUSH_MS after its first entry, and on demand
 * (before a flush is collected, before the worker exits).
 *
 *   connection path ──observe()──▶ batch ──send──▶ primary's aggregator
 *   pino ──write()──────────────▶ batch ──send──▶ primary's stdout
 */
import type { ObservationEvent, Observer } from '../observe/model/observation.js';
import { TAG, type FromWorker } from './messages.js';

const FLUSH_MS = 100;
const MAX_EVENTS = 512;
const MAX_LOG_CHARS = 16 * 1024;

export type Send = (m: FromWorker) => void;

export class WorkerRelay implements Observer {
  private events: ObservationEvent[] = [];
  private log = '';
  private timer: NodeJS.Timeout | null = null;

  private tunnelsTimer: NodeJS.Timeout | null = null;
  /** Each entry sent as it comes, unbatched (an embedded primary's host reads them as they happen). */
  private unbatched = false;

  constructor(private readonly send: Send) {}

  /** From now on every observation and log line is sent as it comes. */
  sendAsItComes(): void {
    this.unbatched = true;
    this.flush();
  }

  private lastTunnels = -1;

  /** Reports the open-tunnel count when it changed, at most every FLUSH_MS (the primary's /status and heartbeats). */
  watchTunnels(count: () => number): void {
    this.tunnelsTimer = setInterval(() => this.reportTunnels(count()), FLUSH_MS);
    this.tunnelsTimer.unref();
  }

  /** The open-tunnel count changed: sent now when unbatched, else left to the FLUSH_MS check. */
  tunnelsChanged(n: number): void {
    if (this.unbatched) this.reportTunnels(n);
  }

  private reportTunnels(n: number): void {
    if (n === this.lastTunnels) return;
    this.lastTunnels = n;
    this.send({ tag: TAG, t: 'tunnels', activeTunnels: n });
  }

  stopWatching(): void {
    if (this.tunnelsTimer) clearInterval(this.tunnelsTimer);
    this.tunnelsTimer = null;
  }

  observe(e: ObservationEvent): void {
    this.events.push(e);
    if (this.unbatched || this.events.length >= MAX_EVENTS) this.flushEvents();
    else this.arm();
  }

  /** A pino destination: whole JSON lines, relayed in batches. */
  readonly destination = {
    write: (line: string): void => {
      this.log += line;
      if (this.unbatched || this.log.length >= MAX_LOG_CHARS) this.flushLog();
      else this.arm();
    },
  };

  /** Sends whatever waits; everything observed before this call is on the channel after it. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flushLog();
    this.flushEvents();
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  private flushEvents(): void {
    if (this.events.length === 0) return;
    const events = this.events;
    this.events = [];
    this.send({ tag: TAG, t: 'observations', events });
  }

  private flushLog(): void {
    if (this.log === '') return;
    const text = this.log;
    this.log = '';
    this.send({ tag: TAG, t: 'log', text });
  }
}
