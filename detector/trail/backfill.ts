/**
 * A trail's log files read straight from its bucket, for a time range: what
 * `replay --s3` and `detector backfill` decide. The region folders
 * (`…/AWSLogs/[o-org/]ACCOUNT/CloudTrail/REGION/`) are found by listing with
 * a delimiter from the given prefix down; then one listing per UTC day of the
 * range (`…/YYYY/MM/DD/`), and the log files whose delivery time (in their
 * name) falls in [since, until + 30 min] — a file is delivered within about
 * 15 minutes of its records. Objects are fetched `concurrency` at a time and
 * given back in key order.
 */
import { dayFolders, isCloudTrailLogKey, keyTimeMs, REGION_FOLDER } from './s3-notification.js';
import type { ObjectRead, TrailApi } from './trail-api.js';

export interface BackfillQuery {
  bucket: string;
  prefix: string;
  sinceMs: number;
  untilMs: number;
  concurrency: number;
  maxFileBytes: number;
}

export interface TrailFile {
  key: string;
  read: ObjectRead;
}

/** Folders deep enough to hold every layout: [prefix/]AWSLogs/o-org/ACCOUNT/CloudTrail/REGION/. */
const MAX_DEPTH = 8;
const DELIVERY_LAG_MS = 30 * 60_000;

async function listAll(
  api: TrailApi,
  bucket: string,
  prefix: string,
  delimiter: string | null,
): Promise<{ keys: string[]; folders: string[] }> {
  const keys: string[] = [];
  const folders: string[] = [];
  let token: string | null = null;
  do {
    const page = await api.list(bucket, prefix, delimiter, token);
    keys.push(...page.keys.map((k) => k.key));
    folders.push(...page.folders);
    token = page.next;
  } while (token !== null);
  return { keys, folders };
}

/** The region folders under `prefix` (itself, when it is one or lies below one). */
export async function regionFolders(api: TrailApi, bucket: string, prefix: string): Promise<string[]> {
  const inside = /^(.*?(?:^|\/)AWSLogs\/(?:o-[a-z0-9]{10,32}\/)?\d{12}\/CloudTrail\/[a-z0-9-]+\/)/.exec(prefix);
  if (inside) return [inside[1] ?? prefix];
  const found: string[] = [];
  let level = [prefix];
  for (let depth = 0; depth < MAX_DEPTH && level.length > 0; depth++) {
    const next: string[] = [];
    for (const folder of level) {
      for (const f of (await listAll(api, bucket, folder, '/')).folders) {
        if (REGION_FOLDER.test(f)) found.push(f);
        else if (!/\/CloudTrail-(Digest|Insight)\/$/.test(f)) next.push(f);
      }
    }
    level = next;
  }
  return found.sort();
}

/** The log files of the range, in key order. */
export async function backfillKeys(api: TrailApi, q: BackfillQuery): Promise<string[]> {
  const keys: string[] = [];
  const explicit = /\/CloudTrail\/[a-z0-9-]+\/\d{4}\//.test(q.prefix);
  for (const region of await regionFolders(api, q.bucket, q.prefix)) {
    // A prefix that already names a date folder is listed as given.
    const folders = explicit ? [q.prefix] : dayFolders(region, q.sinceMs, q.untilMs);
    for (const folder of folders) {
      for (const key of (await listAll(api, q.bucket, folder, null)).keys) {
        const t = keyTimeMs(key);
        if (isCloudTrailLogKey(key) && t !== null && t >= q.sinceMs && t <= q.untilMs + DELIVERY_LAG_MS) keys.push(key);
      }
    }
  }
  return keys.sort();
}

/** Reads `keys` `concurrency` at a time, yielding them in order. */
export async function* readTrailFiles(
  api: TrailApi,
  bucket: string,
  keys: readonly string[],
  concurrency: number,
  maxFileBytes: number,
): AsyncGenerator<TrailFile> {
  const inFlight: Promise<TrailFile>[] = [];
  let next = 0;
  const fill = (): void => {
    while (inFlight.length < concurrency && next < keys.length) {
      const key = keys[next++]!;
      inFlight.push(api.readObject({ bucket, key, size: null }, maxFileBytes).then((read) => ({ key, read })));
    }
  };
  fill();
  while (inFlight.length > 0) {
    const file = await inFlight.shift()!;
    fill();
    yield file;
  }
}
