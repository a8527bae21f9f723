/**
 * Wires spool, spool sink and shipper from the config, plus the spool
 * gauges. With no `telemetry.detector_url` there is no shipping at all.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../common/log/logger.js';
import { readSecretFile } from '../../common/runtime/config-file.js';
import type { AgentConfig } from '../config/schema.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import type { RecordSink } from '../observe/record-sink.js';
import { Spool } from './spool.js';
import type { SpoolEvent } from './spool-types.js';
import { SpoolSink } from './spool-sink.js';
import { Shipper } from './shipper.js';
import { EgressCheck } from './egress-check.js';

export interface TelemetryShipping {
  sink: RecordSink;
  start(): void;
  stats(): { batches: number; bytes: number; inFlight: number; oldestAgeSeconds: number | null };
  stop(): Promise<void>;
}

export async function buildTelemetryShipping(
  c: AgentConfig,
  deps: { metrics: AgentMetrics; logger: Logger; now: () => number; version: string; startedAt: number },
): Promise<TelemetryShipping | null> {
  const extraCa = c.upstream.ca_file ? await readFile(c.upstream.ca_file, 'utf8') : null;
  const egress = c.telemetry.egress_check_url
    ? new EgressCheck({
        url: c.telemetry.egress_check_url,
        intervalMs: c.telemetry.egress_check_interval,
        egressCidrs: c.gateway.egress_cidrs,
        metrics: deps.metrics,
        logger: deps.logger,
        now: deps.now,
        ca: extraCa,
      })
    : null;
  if (!c.telemetry.detector_url || !c.telemetry.secret_file) {
    if (!egress) return null;
    return {
      sink: { name: 'none', write: () => Promise.resolve() },
      start: () => egress.start(),
      stats: () => ({ batches: 0, bytes: 0, inFlight: 0, oldestAgeSeconds: null }),
      stop: () => Promise.resolve(egress.stop()),
    };
  }
  const { metrics, logger } = deps;
  const secret = await readSecretFile(c.telemetry.secret_file, 'the telemetry HMAC secret');
  let forget: (id: string) => void = () => undefined;
  const onEvent = (e: SpoolEvent): void => {
    switch (e.kind) {
      case 'dropped':
        metrics.spoolDropped.inc();
        forget(e.id);
        logger.error(
          { event: 'spool_batch_dropped', batch_id: e.id, bytes: e.bytes, reason: e.reason },
          e.reason === 'overflow'
            ? 'spool full (telemetry.spool_max_bytes): dropped the oldest batch'
            : 'spool: dropped a batch that failed its checksum when read back',
        );
        return;
      case 'truncated':
        metrics.spoolTruncated.inc(e.bytes);
        logger.error(
          { event: 'spool_truncated', segment: e.segment, offset: e.offset, bytes: e.bytes, reason: e.reason },
          e.reason.startsWith('skipped')
            ? 'spool: damaged record found at start-up and skipped; the records after it are kept'
            : 'spool: torn or corrupt tail found at start-up and cut off',
        );
        return;
      case 'state-reset':
        logger.warn(
          { event: 'spool_state_reset', reason: e.reason },
          'spool state file missing or corrupt: every intact batch will be sent again (the detector dedupes)',
        );
        return;
      case 'recovered':
        if (e.pending > 0)
          logger.info(
            { event: 'spool_recovered', pending: e.pending, in_flight: e.inFlight },
            'spool: batches from a previous run will be sent',
          );
        return;
      case 'dead-lettered':
        forget(e.id);
        return;
    }
  };
  const spool = await Spool.open({ dir: c.telemetry.spool_dir, maxBytes: c.telemetry.spool_max_bytes, now: deps.now, onEvent });
  metrics.spoolMaxBytes.set(c.telemetry.spool_max_bytes);
  const refreshGauges = (): void => {
    const s = spool.stats();
    metrics.spoolBytes.set(s.bytes);
    metrics.spoolBatches.set(s.batches);
    metrics.spoolOldestAge.set(s.oldestEnqueuedAt === null ? 0 : Math.max(0, (deps.now() - s.oldestEnqueuedAt) / 1000));
  };
  let shipper: Shipper | null = null;
  const sink = new SpoolSink(
    spool,
    { gatewayId: c.gateway.id, egressCidrs: c.gateway.egress_cidrs, agentVersion: deps.version, startedAt: deps.startedAt },
    {
      maxBatchRecords: c.telemetry.max_batch_records,
      now: deps.now,
      onAppended: (records, batches) => {
        metrics.spoolAppendedRecords.inc(records);
        metrics.spoolAppendedBatches.inc(batches);
        refreshGauges();
        shipper?.kick();
      },
    },
  );
  forget = (id) => sink.recordCounts.delete(id);
  shipper = new Shipper({
    url: c.telemetry.detector_url,
    gatewayId: c.gateway.id,
    secret,
    spool,
    maxInFlight: c.telemetry.max_in_flight,
    metrics,
    logger,
    now: deps.now,
    ca: extraCa,
    recordsOf: (id) => {
      const n = sink.recordCounts.get(id);
      sink.recordCounts.delete(id);
      return n;
    },
    onChange: refreshGauges,
  });
  const gaugeTimer = setInterval(refreshGauges, 5_000);
  gaugeTimer.unref();
  refreshGauges();
  return {
    sink,
    start: () => {
      shipper.kick();
      egress?.start();
    },
    stats: () => {
      const s = spool.stats();
      return {
        batches: s.batches,
        bytes: s.bytes,
        inFlight: s.inFlight,
        oldestAgeSeconds: s.oldestEnqueuedAt === null ? null : (deps.now() - s.oldestEnqueuedAt) / 1000,
      };
    },
    stop: async () => {
      clearInterval(gaugeTimer);
      egress?.stop();
      await shipper.stop();
      await spool.close();
    },
  };
}
