/**
 * A batch the detector refused as too large (413) is split in two and sent
 * again as two smaller batches, instead of being retried (it would fail the
 * same way) or dead-lettered (its records are fine). The halves get ids
 * derived from the original (`<id>-1`, `<id>-2`), so a split repeated after a
 * crash produces the same two batches and the detector deduplicates them.
 */
import { gunzip, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { TelemetryBatch } from '../../protocol/telemetry.js';
import { BATCH_ID_PATTERN } from './spool-record.js';
import type { SpoolBatch } from './spool.js';

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

/** The two halves of a sealed batch (gzip JSON), or null when it cannot be split: one record, an id too long, or unreadable bytes. */
export async function splitBatch(id: string, payload: Buffer): Promise<[SpoolBatch, SpoolBatch] | null> {
  const ids = [`${id}-1`, `${id}-2`] as const;
  if (!ids.every((i) => BATCH_ID_PATTERN.test(i))) return null;
  let batch: TelemetryBatch;
  try {
    batch = JSON.parse((await gunzipAsync(payload)).toString('utf8')) as TelemetryBatch;
  } catch {
    return null;
  }
  if (!Array.isArray(batch.records) || batch.records.length < 2) return null;
  const middle = Math.ceil(batch.records.length / 2);
  const halves = [batch.records.slice(0, middle), batch.records.slice(middle)] as const;
  const seal = async (i: 0 | 1): Promise<SpoolBatch> => ({
    id: ids[i],
    payload: await gzipAsync(JSON.stringify({ ...batch, batchId: ids[i], records: halves[i] })),
  });
  return [await seal(0), await seal(1)];
}
