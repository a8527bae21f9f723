/**
 * Watches `cloudtrail.watch_dir` (recursively: an `aws s3 sync` of the trail
 * bucket keeps AWSLogs/ACCT/CloudTrail/REGION/YYYY/MM/DD/) for `.json` and
 * `.json.gz` log files. Each file is processed once — progress is kept in the
 * store by path, size and mtime, so a restart skips what was done and a
 * rewritten file is read again. Files still being written (modified in the
 * last two seconds) wait for the next scan. A corrupt file is counted, logged
 * and marked failed with its reason, never fatal; one record that cannot be
 * processed is counted and skipped (the engine never throws). A file the
 * daemon began reading MAX_ATTEMPTS times without finishing (it stopped the
 * process each time) is quarantined the same way instead of read in a loop.
 * Reading is bounded by cloudtrail.max_file_bytes: a larger file is refused on
 * its size alone, and a .json.gz is inflated as a stream that stops at the
 * budget (a gzip bomb costs the budget, not its claimed size); the records of
 * a file are decided in slices that let the event loop serve ingest between.
 *
 *   scan ─▶ settled? ─▶ done before? ─▶ attempt n (durable) ─┬─ n > MAX_ATTEMPTS ─▶ failed (quarantined)
 *                                                           └─ read ─▶ records ─▶ engine ─▶ processed | failed
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readTextBounded } from '../../common/io/bounded-read.js';
import type { Logger } from '../../common/log/logger.js';
import { cloudTrailFailureEvent, failureLevel, failureMessage, type CloudTrailInputFailure } from '../failures/detector-failures.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore } from '../store/store.js';
import type { CorrelationEngine } from './correlation-engine.js';
import { decideRecords } from './decide-records.js';
import { parseCloudTrailInput } from '../cloudtrail/parse.js';

const SETTLE_MS = 2_000;
/** Starts without a finish before a file is quarantined: survives a crash or two for another reason. */
export const MAX_FILE_ATTEMPTS = 3;

export async function* cloudTrailFiles(dir: string, depth = 0): AsyncGenerator<string> {
  if (depth > 12) return;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const p = join(dir, e.name);
    // Digest files (log-file validation) sit beside the logs in CloudTrail-Digest/ and hold no records.
    if (e.isDirectory()) {
      if (e.name !== 'CloudTrail-Digest') yield* cloudTrailFiles(p, depth + 1);
    } else if (e.isFile() && /\.json(\.gz)?$/.test(e.name) && !e.name.includes('_CloudTrail-Digest_')) yield p;
  }
}

/** Reads one CloudTrail file (a log file, EventBridge events or JSON lines; gzip or plain, at most `maxBytes` read or inflated) into its records. */
export async function readCloudTrailFile(path: string, maxBytes: number): Promise<{ records: unknown[] } | { error: string }> {
  let text: string;
  try {
    text = await readTextBounded(path, maxBytes);
  } catch (err) {
    return { error: (err as Error).message };
  }
  return parseCloudTrailInput(text);
}

export class CloudTrailWatcher {
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;

  constructor(
    private readonly opts: {
      dir: string;
      intervalMs: number;
      /** cloudtrail.max_file_bytes */
      maxFileBytes: number;
      store: DetectorStore;
      engine: CorrelationEngine;
      metrics: DetectorMetrics;
      logger: Logger;
      now: () => number;
    },
  ) {}

  start(): void {
    void this.scan();
    this.timer = setInterval(() => void this.scan(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** One pass over the folder; concurrent calls share the running pass. Never rejects. */
  scan(): Promise<void> {
    this.scanning ??= this.scanOnce()
      .catch((err: unknown) => this.opts.logger.error({ event: 'cloudtrail_scan_failed', err }, 'CloudTrail watch_dir scan failed'))
      .finally(() => (this.scanning = null));
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    for await (const path of cloudTrailFiles(this.opts.dir)) {
      let st;
      try {
        st = await stat(path);
      } catch {
        continue;
      }
      if (this.opts.now() - st.mtimeMs < SETTLE_MS) continue;
      if (await this.opts.store.fileProcessed(path, st.size, st.mtimeMs)) continue;
      try {
        await this.processFile(path, st.size, st.mtimeMs);
      } catch (err) {
        await this.failed(path, st.size, st.mtimeMs, `processing failed: ${(err as Error).message}`);
      }
    }
  }

  private async processFile(path: string, size: number, mtimeMs: number): Promise<void> {
    const { store, engine, metrics, logger } = this.opts;
    const attempt = await store.fileAttempt(path, size, mtimeMs, this.opts.now());
    if (attempt > MAX_FILE_ATTEMPTS)
      return this.failed(path, size, mtimeMs, `the detector stopped ${attempt - 1} times while reading this file; quarantined`);
    const parsed = await readCloudTrailFile(path, this.opts.maxFileBytes).catch((err: unknown) => ({ error: (err as Error).message }));
    if ('error' in parsed) return this.failed(path, size, mtimeMs, parsed.error);
    const { invalid, failed: failedRecords } = await decideRecords(engine, parsed.records, 'trail');
    await store.markFileProcessed(path, size, mtimeMs, parsed.records.length, invalid + failedRecords, this.opts.now());
    metrics.cloudtrailFiles.inc({ outcome: 'processed' });
    logger.info(
      { event: 'cloudtrail_file_processed', path, records: parsed.records.length, invalid, failed: failedRecords },
      'CloudTrail file processed',
    );
  }

  /** Marks a file failed with its reason: it is not read again unless it is rewritten. */
  private async failed(path: string, size: number, mtimeMs: number, reason: string): Promise<void> {
    this.opts.metrics.cloudtrailFiles.inc({ outcome: 'failed' });
    const failure: CloudTrailInputFailure = { kind: 'cloudtrail-file-failed', path, reason };
    this.opts.logger[failureLevel(failure)]({ event: cloudTrailFailureEvent(failure), path, reason }, failureMessage(failure));
    await this.opts.store.markFileProcessed(path, size, mtimeMs, 0, 0, this.opts.now(), reason);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.scanning;
  }
}
