/**
 * `egress-witness detector backfill`: a trail's log files for a time range,
 * read from its bucket and decided into the detector's store by the
 * daemon's pipeline — for a range before cloudtrail.sqs existed, or an
 * outage longer than the queue's retention. Decisions and findings are
 * stored (`detector decisions` shows them); records already decided (by the
 * daemon or an earlier backfill) are recognised by event ID and left alone.
 * The running daemon may share the store meanwhile. No grace period: the
 * range is in the past, the telemetry that can attest it is in the store.
 */
import { formatProblems } from '../../common/config/load.js';
import { readConfigFile } from '../../common/runtime/config-file.js';
import type { Output } from '../../common/runtime/output.js';
import { detectorConfigSchema } from '../../detector/config/schema.js';
import { decideRecords } from '../../detector/engine/decide-records.js';
import { DecisionCounts } from '../../detector/decisions/counts.js';
import { replayPipeline } from '../../detector/replay/replay.js';
import { openStore, storeKey } from '../../detector/store/open-store.js';
import { openTrailRange, trailRange, type TrailRangeOptions } from './trail-range.js';

export interface BackfillCommandOptions extends TrailRangeOptions {
  config: string;
}

export async function backfillCommand(o: BackfillCommandOptions, out: Output, tty = false): Promise<number> {
  if (!o.s3) {
    out.stderr('detector backfill: give --s3 s3://BUCKET/PREFIX/ and --since (see --help)\n');
    return 2;
  }
  const range = trailRange(o);
  if ('error' in range) {
    out.stderr(`detector backfill: ${range.error}\n`);
    return 2;
  }
  const loaded = await readConfigFile(o.config, detectorConfigSchema);
  if (!loaded.ok) {
    out.stderr(formatProblems(`${o.config}: invalid detector configuration`, loaded.problems));
    return 1;
  }
  const c = loaded.value;
  let store;
  try {
    store = await openStore(c.store, { createDirectory: true, postgres: { env: process.env } });
  } catch (err) {
    out.stderr(`detector backfill: cannot open the store (${storeKey(c.store)}): ${(err as Error).message}\n`);
    return 1;
  }
  const trail = await openTrailRange('detector backfill', range, c, o, out, tty);
  if ('error' in trail) {
    await store.close();
    out.stderr(`detector backfill: ${trail.error}\n`);
    return 1;
  }
  const decisions = new DecisionCounts();
  let records = 0;
  let rejected = 0;
  let files = 0;
  const failed: string[] = [];
  const started = Date.now();
  const pipeline = await replayPipeline(c, store, {
    decided: (d) => decisions.add(d.disposition, d.rule),
  });
  try {
    for await (const { key, read } of trail.files) {
      if (read.kind === 'failed') {
        failed.push(`${key}: ${read.reason}`);
        continue;
      }
      const r = await decideRecords(pipeline.cloudtrail, read.records, 'trail');
      files++;
      records += r.records;
      rejected += r.invalid + r.failed;
    }
  } catch (err) {
    out.stderr(`detector backfill: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await pipeline.close();
    trail.close();
    await store.close();
  }
  for (const f of failed) out.stderr(`detector backfill: skipped ${f}\n`);
  if (!o.quiet) {
    const seconds = (Date.now() - started) / 1000;
    out.stderr(
      `detector backfill: ${records} records from ${files} files (${rejected} not API calls or unusable) in ${seconds.toFixed(1)} s ` +
        `(${seconds > 0 ? Math.round(records / seconds) : 0} records/s); newly decided ${JSON.stringify(decisions.toRecord())}\n`,
    );
  }
  return failed.length > 0 ? 1 : 0;
}
