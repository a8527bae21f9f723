/**
 * Observations aggregated in short windows: the same client, host, port,
 * mode, capture, key, action, outcome, failure reason and original address
 * become one record with a count, first and
 * last time, byte sums and status classes — so telemetry volume is bounded
 * by distinct activity, not by request rate. Bounded in memory: when
 * `maxPending` distinct records wait, new distinct ones are dropped and
 * counted (existing ones still aggregate).
 *
 *   proxy ──observe()──▶ pending Map(key → record) ──drain()──▶ sinks
 *                              (bounded)          every flush_interval
 */
import { SCHEMA_VERSION, type Observation } from '../../../protocol/telemetry.js';
import { statusClass, type ObservationEvent, type Observer } from './observation.js';
import { isoFromMs } from '../../../common/time/iso.js';

export interface AggregatorOptions {
  gatewayId: string;
  maxPending: number;
  /** Whether non-AWS destinations are kept as records (else only counted). */
  observeAll: boolean;
  onDrop?: (reason: 'overflow') => void;
}

function aggregationKey(e: ObservationEvent): string {
  return `${e.clientIp}|${e.host}|${e.port}|${e.mode}|${e.capture}|${e.key?.accessKeyId ?? ''}|${e.action ?? ''}|${e.outcome}|${e.reason ?? ''}|${e.originalIp ?? ''}`;
}

export class Aggregator implements Observer {
  /** Records with their span kept as numbers; times are formatted once, in drain(). */
  private pending = new Map<string, { record: Observation; first: number; last: number }>();
  private counts = { observed: 0, aggregated: 0, dropped: 0, notAws: 0 };

  constructor(private readonly opts: AggregatorOptions) {}

  observe(e: ObservationEvent): void {
    this.counts.observed++;
    if (e.aws === null && !this.opts.observeAll) {
      this.counts.notAws++;
      return;
    }
    const k = aggregationKey(e);
    const existing = this.pending.get(k);
    const sc = e.status !== null ? statusClass(e.status) : null;
    if (existing) {
      this.counts.aggregated++;
      const r = existing.record;
      r.count++;
      r.bytesUp += e.bytesUp;
      r.bytesDown += e.bytesDown;
      r.durationMs = (r.durationMs ?? 0) + (e.endedAt - e.startedAt);
      if (e.startedAt < existing.first) existing.first = e.startedAt;
      if (e.endedAt > existing.last) existing.last = e.endedAt;
      if (sc) {
        r.status ??= {};
        r.status[sc] = (r.status[sc] ?? 0) + 1;
      }
      return;
    }
    if (this.pending.size >= this.opts.maxPending) {
      this.counts.dropped++;
      this.opts.onDrop?.('overflow');
      return;
    }
    this.pending.set(k, { record: toRecord(this.opts.gatewayId, e, sc), first: e.startedAt, last: e.endedAt });
  }

  get size(): number {
    return this.pending.size;
  }

  /** Hands over everything aggregated so far and starts a new window. */
  drain(): Observation[] {
    if (this.pending.size === 0) return [];
    const out: Observation[] = [];
    for (const { record, first, last } of this.pending.values()) {
      record.firstSeen = isoFromMs(first);
      record.lastSeen = isoFromMs(last);
      out.push(record);
    }
    this.pending = new Map();
    return out;
  }

  /** Counts since the last call (for heartbeats). */
  takeCounts(): Record<string, number> {
    const c = { ...this.counts };
    this.counts = { observed: 0, aggregated: 0, dropped: 0, notAws: 0 };
    return c;
  }
}

function toRecord(gatewayId: string, e: ObservationEvent, sc: ReturnType<typeof statusClass>): Observation {
  const rec: Observation = {
    type: 'observation',
    schema: SCHEMA_VERSION,
    gatewayId,
    firstSeen: '', // set in drain()
    lastSeen: '',
    count: 1,
    clientIp: e.clientIp,
    network: e.network,
    mode: e.mode,
    host: e.host,
    port: e.port,
    resolvedIp: e.resolvedIp,
    capture: e.capture,
    aws: e.aws ? { service: e.aws.service, region: e.aws.region, partition: e.aws.partition } : null,
    accessKeyId: e.key?.accessKeyId ?? null,
    keyKind: e.key?.keyKind ?? null,
    accountId: e.key?.accountId ?? null,
    sessionToken: e.key ? e.key.sessionToken : null,
    signatureVersion: e.key?.signatureVersion ?? null,
    auth: e.key?.auth ?? null,
    action: e.action,
    bytesUp: e.bytesUp,
    bytesDown: e.bytesDown,
    durationMs: e.endedAt - e.startedAt,
    outcome: e.outcome,
  };
  if (e.reason !== null) rec.reason = e.reason;
  if (e.originalIp !== null) rec.originalIp = e.originalIp;
  if (sc) rec.status = { [sc]: 1 };
  return rec;
}
