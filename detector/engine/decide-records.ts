/**
 * The records of one CloudTrail log file through the engine, a slice at a
 * time: one evidence read and one transaction per slice, and the event loop serves ingest
 * between slices, so a large file never stalls the daemon. Shared by every
 * source of log files (the watch directory, the bucket through SQS,
 * backfill).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { EventOrigin } from '../correlate/event-identity.js';
import type { CorrelationEngine } from './correlation-engine.js';

/** Records decided between two turns of the event loop (and per evidence read). */
const RECORDS_PER_SLICE = 1_000;

export interface FileRecordsOutcome {
  records: number;
  /** Not CloudTrail API calls. */
  invalid: number;
  /** Could not be processed (counted and logged by the engine). */
  failed: number;
}

export async function decideRecords(
  engine: CorrelationEngine,
  records: readonly unknown[],
  origin: EventOrigin,
): Promise<FileRecordsOutcome> {
  let invalid = 0;
  let failed = 0;
  for (let i = 0; i < records.length; i += RECORDS_PER_SLICE) {
    if (i > 0) await yieldToEventLoop();
    for (const outcome of await engine.processBatch(records.slice(i, i + RECORDS_PER_SLICE), origin)) {
      if (outcome === 'invalid') invalid++;
      else if (outcome === 'failed') failed++;
    }
  }
  return { records: records.length, invalid, failed };
}
