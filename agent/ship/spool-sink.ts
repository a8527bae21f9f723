/**
 * The sink that seals flushed records into signed-later batches and puts
 * them in the spool (fsync'd) — the only step between the aggregator and the
 * network. A batch's bytes never change after this point, so its batchId is
 * stable across retries and the detector can dedupe on it.
 */
import { randomBytes } from 'node:crypto';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { SCHEMA_VERSION, type TelemetryBatch, type TelemetryRecord } from '../../protocol/telemetry.js';
import type { RecordSink } from '../observe/record-sink.js';
import type { Spool } from './spool.js';

const gzipAsync = promisify(gzip);

export interface BatchIdentity {
  gatewayId: string;
  egressCidrs: readonly string[];
  agentVersion: string;
  startedAt: number;
}

export function newBatchId(): string {
  return randomBytes(16).toString('base64url');
}

export class SpoolSink implements RecordSink {
  readonly name = 'spool';
  private sequence = 0;
  /** Record counts of batches appended by this process, until acknowledged. */
  readonly recordCounts = new Map<string, number>();

  constructor(
    private readonly spool: Spool,
    private readonly identity: BatchIdentity,
    private readonly opts: { maxBatchRecords: number; now: () => number; onAppended: (records: number, batches: number) => void },
  ) {}

  async write(records: readonly TelemetryRecord[]): Promise<void> {
    const batches: { id: string; payload: Buffer }[] = [];
    for (let i = 0; i < records.length; i += this.opts.maxBatchRecords) {
      const batch: TelemetryBatch = {
        schemaVersion: SCHEMA_VERSION,
        batchId: newBatchId(),
        gatewayId: this.identity.gatewayId,
        agent: { version: this.identity.agentVersion, startedAt: new Date(this.identity.startedAt).toISOString() },
        sequence: this.sequence++,
        egressCidrs: [...this.identity.egressCidrs],
        sentAt: new Date(this.opts.now()).toISOString(),
        records: records.slice(i, i + this.opts.maxBatchRecords),
      };
      batches.push({ id: batch.batchId, payload: await gzipAsync(JSON.stringify(batch)) });
      // Bounded: counts are only for the records metric; a long outage must not grow this map.
      if (this.recordCounts.size < 100_000) this.recordCounts.set(batch.batchId, batch.records.length);
    }
    try {
      await this.spool.appendMany(batches);
    } catch (err) {
      // One fsync for the whole flush is an optimisation: a flush larger than the spool cap
      // goes batch by batch, so the cap drops the oldest batches instead of refusing the newest.
      if ((err as { code?: string }).code !== 'SPOOL_BATCH_TOO_LARGE' || batches.length === 1) throw err;
      for (const b of batches) await this.spool.append(b.id, b.payload);
    }
    this.opts.onAppended(records.length, batches.length);
  }
}
