/**
 * `--s3 s3://BUCKET/PREFIX/ --since … [--until …] [--concurrency N]`: a
 * trail's log files for a time range, read from its bucket, with progress on
 * stderr (a bar redrawn in place on a terminal, a line every 10 s otherwise).
 * Shared by `replay --s3` (decisions printed) and `detector backfill`
 * (decisions stored).
 */
import { parseDuration } from '../../common/config/units.js';
import type { Output } from '../../common/runtime/output.js';
import type { DetectorConfig } from '../../detector/config/schema.js';
import { backfillKeys, readTrailFiles, type TrailFile } from '../../detector/trail/backfill.js';
import { parseS3Url } from '../../detector/trail/s3-notification.js';
import { sdkTrailApi, type TrailApi } from '../../detector/trail/trail-api.js';

export interface TrailRangeOptions {
  s3?: string;
  since?: string;
  until?: string;
  region?: string;
  roleArn?: string;
  concurrency?: string;
  quiet?: boolean;
}

export interface TrailRange {
  bucket: string;
  prefix: string;
  sinceMs: number;
  untilMs: number;
  concurrency: number;
}

/** --s3, --since, --until and --concurrency read together; a usage error as text. */
export function trailRange(o: TrailRangeOptions): TrailRange | { error: string } {
  const url = parseS3Url(o.s3 ?? '');
  if ('error' in url) return { error: `--s3: ${url.error}` };
  if (!o.since) return { error: '--s3 needs --since (a date such as 2026-11-01, a time, or a duration such as 7d for "7 days ago")' };
  const now = Date.now();
  const since = instant(o.since, now);
  if (since === null)
    return { error: `--since: not a date, a time or a duration: "${o.since}" (e.g. 2026-11-01, 2026-11-01T12:00:00Z, 7d)` };
  const until = o.until === undefined ? now : instant(o.until, now);
  if (until === null) return { error: `--until: not a date, a time or a duration: "${o.until}" (e.g. 2026-11-02, 12h)` };
  if (until < since) return { error: `--until (${new Date(until).toISOString()}) is before --since (${new Date(since).toISOString()})` };
  const concurrency = Number(o.concurrency ?? 8);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)
    return { error: `--concurrency: expected an integer from 1 to 64, got "${o.concurrency}"` };
  return { ...url, sinceMs: since, untilMs: until, concurrency };
}

/** An ISO date or time, or a duration meaning that long ago. */
function instant(text: string, nowMs: number): number | null {
  const ago = /^\d/.test(text) && !/^\d{4}-/.test(text) ? parseDuration(text) : null;
  if (ago !== null) return nowMs - ago;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : null;
}

/** The range's log files, listed, then read `concurrency` at a time in key order; `close` when done. */
export async function openTrailRange(
  command: string,
  range: TrailRange,
  config: DetectorConfig,
  o: TrailRangeOptions,
  out: Output,
  tty: boolean,
): Promise<{ files: AsyncIterable<TrailFile>; close: () => void } | { error: string }> {
  const api: TrailApi = sdkTrailApi({
    region: o.region ?? config.cloudtrail.sqs?.region ?? process.env['AWS_REGION'] ?? 'us-east-1',
    roleArn: o.roleArn ?? config.cloudtrail.sqs?.role_arn ?? null,
  });
  const progress = progressReporter(command, out, tty && !o.quiet, !o.quiet);
  const where = `s3://${range.bucket}/${range.prefix}`;
  let keys: string[];
  try {
    progress.line(`s3: listing ${where} from ${new Date(range.sinceMs).toISOString()} to ${new Date(range.untilMs).toISOString()}`);
    keys = await backfillKeys(api, { ...range, maxFileBytes: config.cloudtrail.max_file_bytes });
  } catch (err) {
    api.close();
    return { error: `cannot list ${where}: ${(err as Error).message}` };
  }
  progress.line(`s3: ${keys.length} log files to read`);
  const files = counted(
    readTrailFiles(api, range.bucket, keys, range.concurrency, config.cloudtrail.max_file_bytes),
    keys.length,
    progress,
  );
  return { files, close: () => api.close() };
}

interface Progress {
  line(text: string): void;
  update(done: number, total: number, records: number): void;
  end(): void;
}

function progressReporter(command: string, out: Output, bar: boolean, enabled: boolean): Progress {
  let last = 0;
  let drawn = false;
  return {
    line(text) {
      if (enabled) out.stderr(`${drawn ? '\n' : ''}${command}: ${text}\n`);
      drawn = false;
    },
    update(done, total, records) {
      const now = Date.now();
      if (!enabled || (now - last < (bar ? 200 : 10_000) && done < total)) return;
      last = now;
      const share = total === 0 ? 1 : done / total;
      if (bar) {
        const width = 30;
        const filled = Math.round(share * width);
        out.stderr(`\r${command}: s3 [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} files, ${records} records`);
        drawn = true;
      } else out.stderr(`${command}: s3: ${done}/${total} files (${Math.round(share * 100)} %), ${records} records\n`);
    },
    end() {
      if (drawn) out.stderr('\n');
      drawn = false;
    },
  };
}

async function* counted(files: AsyncIterable<TrailFile>, total: number, progress: Progress): AsyncGenerator<TrailFile> {
  let done = 0;
  let records = 0;
  for await (const f of files) {
    done++;
    if (f.read.kind === 'records') records += f.read.records.length;
    progress.update(done, total, records);
    yield f;
  }
  progress.end();
}
