/**
 * The timer side of telemetry: every flush interval the aggregator's window
 * is handed to the sinks; every heartbeat interval a heartbeat joins it, even
 * when there was no traffic. Sinks run off the data path: a slow sink delays
 * only the next flush, never a proxied byte.
 *
 *   Aggregator ──drain()──▶ records ──┬─▶ NDJSON file sink
 *   heartbeat timer ──────────────────┘─▶ spool sink ─▶ shipper ─▶ detector
 */
import { SCHEMA_VERSION, type Heartbeat, type TelemetryRecord } from '../../protocol/telemetry.js';
import type { Logger } from '../../common/log/logger.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import type { Aggregator } from './model/aggregator.js';
import type { RecordSink } from './record-sink.js';

export interface PipelineOptions {
  gatewayId: string;
  agentVersion: string;
  startedAt: number;
  inspect: boolean;
  flushIntervalMs: number;
  heartbeatIntervalMs: number;
  aggregator: Aggregator;
  /**
   * Runs before each flush takes the aggregator's window: live tunnels report theirs into it, and
   * proxy workers send what they observed so far.
   */
  beforeDrain?: () => void | Promise<void>;
  sinks: RecordSink[];
  spoolStats: () => { batches: number; bytes: number };
  extraCounts: () => Record<string, number>;
  metrics: AgentMetrics;
  logger: Logger;
  now: () => number;
}

export class TelemetryPipeline {
  private flushTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private heartbeatDue = true;

  constructor(private opts: PipelineOptions) {}

  start(): void {
    this.flushTimer = setInterval(() => void this.flush(), this.opts.flushIntervalMs);
    this.heartbeatTimer = setInterval(() => {
      this.heartbeatDue = true;
      void this.flush();
    }, this.opts.heartbeatIntervalMs);
    this.flushTimer.unref();
    this.heartbeatTimer.unref();
    void this.flush(); // first heartbeat right away: the detector learns the gateway is watching
  }

  /** Applies new intervals and sinks after a reload. */
  reconfigure(next: Partial<Pick<PipelineOptions, 'flushIntervalMs' | 'heartbeatIntervalMs' | 'sinks' | 'inspect'>>): void {
    this.opts = { ...this.opts, ...next };
    if (this.flushTimer) {
      this.stopTimers();
      this.start();
    }
  }

  private heartbeat(): Heartbeat {
    const now = this.opts.now();
    const spool = this.opts.spoolStats();
    return {
      type: 'heartbeat',
      schema: SCHEMA_VERSION,
      gatewayId: this.opts.gatewayId,
      time: new Date(now).toISOString(),
      agentVersion: this.opts.agentVersion,
      startedAt: new Date(this.opts.startedAt).toISOString(),
      uptimeSeconds: Math.round((now - this.opts.startedAt) / 1000),
      counts: { ...this.opts.aggregator.takeCounts(), ...this.opts.extraCounts() },
      spool: { batches: spool.batches, bytes: spool.bytes },
      inspect: this.opts.inspect,
    };
  }

  /** Serialized: one flush at a time, in order. Resolves when the sinks have the records. */
  flush(opts: { heartbeat?: boolean } = {}): Promise<void> {
    this.chain = this.chain.then(() => this.flushOnce(opts.heartbeat ?? false));
    return this.chain;
  }

  private async flushOnce(forceHeartbeat: boolean): Promise<void> {
    await this.opts.beforeDrain?.();
    const records: TelemetryRecord[] = this.opts.aggregator.drain();
    if (this.heartbeatDue || forceHeartbeat) {
      this.heartbeatDue = false;
      records.push(this.heartbeat());
    }
    this.opts.metrics.observationsPending.set(this.opts.aggregator.size);
    if (records.length === 0) return;
    await Promise.all(
      this.opts.sinks.map(async (sink) => {
        try {
          await sink.write(records);
        } catch (err) {
          this.opts.metrics.telemetrySinkErrors.inc({ sink: sink.name });
          this.opts.logger.error(
            { event: 'sink_write_failed', sink: sink.name, err, records: records.length },
            'telemetry sink write failed; records for this sink are lost',
          );
        }
      }),
    );
  }

  private stopTimers(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.flushTimer = null;
    this.heartbeatTimer = null;
  }

  /** Final flush (with a heartbeat) and stop. */
  async stop(): Promise<void> {
    this.stopTimers();
    await this.flush({ heartbeat: true });
  }
}
