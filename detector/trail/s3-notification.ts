/**
 * CloudTrail in S3, pure: what an SQS message says was delivered, which keys
 * are CloudTrail log files, and the key layout a backfill walks.
 *
 * A message is one of:
 *   - an S3 event notification (`Records[].s3.bucket.name`, `.object.key`
 *     URL-encoded with `+` for spaces), sent to the queue by the bucket;
 *   - the same, wrapped by SNS (`Type: "Notification"`, `Message` holding the
 *     JSON as text), when the bucket notifies a topic the queue subscribes to;
 *   - CloudTrail's own SNS notification (`s3Bucket`, `s3ObjectKey[]`), plain
 *     or SNS-wrapped, for a trail with an SNS topic;
 *   - `s3:TestEvent`, sent once when a notification is configured: nothing to
 *     read (the message is deleted, not an error).
 *
 * Keys look like
 *   [prefix/]AWSLogs/[o-org/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_UNIQUE.json.gz
 * Digest files (CloudTrail-Digest/), Insights (CloudTrail-Insight/) and
 * anything else in the bucket hold no API calls and are skipped.
 */

export interface S3ObjectRef {
  bucket: string;
  key: string;
  /** As the notification gave it; null when it did not. */
  size: number | null;
}

export type QueueMessage =
  | { kind: 'objects'; objects: S3ObjectRef[] }
  /** s3:TestEvent: the notification works; nothing to read. */
  | { kind: 'test' }
  | { kind: 'invalid'; reason: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** S3 notifications encode keys as in a form: `%XX` escapes and `+` for a space. */
export function decodeNotificationKey(encoded: string): string | null {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** What one SQS message body asks for. Garbage never throws: it is `invalid` with the reason. */
export function parseQueueMessage(body: string): QueueMessage {
  let value = parseJson(body);
  if (!isObject(value)) return { kind: 'invalid', reason: 'the message body is not a JSON object' };
  if (value['Type'] === 'Notification') {
    if (typeof value['Message'] !== 'string') return { kind: 'invalid', reason: 'an SNS notification without a Message text' };
    value = parseJson(value['Message']);
    if (!isObject(value)) return { kind: 'invalid', reason: 'the SNS notification’s Message is not a JSON object' };
  }
  if (value['Event'] === 's3:TestEvent') return { kind: 'test' };
  if (typeof value['s3Bucket'] === 'string' && Array.isArray(value['s3ObjectKey'])) return cloudTrailSnsObjects(value);
  const records = value['Records'];
  if (!Array.isArray(records))
    return { kind: 'invalid', reason: 'neither an S3 event notification (Records) nor a CloudTrail notification (s3Bucket)' };
  const objects: S3ObjectRef[] = [];
  for (const r of records) {
    const s3 = isObject(r) ? r['s3'] : undefined;
    const bucket = isObject(s3) && isObject(s3['bucket']) ? s3['bucket']['name'] : undefined;
    const object = isObject(s3) ? s3['object'] : undefined;
    const rawKey = isObject(object) ? object['key'] : undefined;
    if (typeof bucket !== 'string' || typeof rawKey !== 'string')
      return { kind: 'invalid', reason: 'an S3 event record without s3.bucket.name and s3.object.key' };
    const eventName = isObject(r) ? r['eventName'] : undefined;
    // Deletions and restores name objects that are not new logs.
    if (typeof eventName === 'string' && !eventName.startsWith('ObjectCreated:')) continue;
    const key = decodeNotificationKey(rawKey);
    if (key === null || !BUCKET.test(bucket)) return { kind: 'invalid', reason: `a malformed bucket or key (${JSON.stringify(bucket)})` };
    const size = isObject(object) && typeof object['size'] === 'number' && Number.isSafeInteger(object['size']) ? object['size'] : null;
    objects.push({ bucket, key, size });
  }
  return { kind: 'objects', objects };
}

function cloudTrailSnsObjects(value: Record<string, unknown>): QueueMessage {
  const bucket = value['s3Bucket'] as string;
  const keys = value['s3ObjectKey'] as unknown[];
  if (!BUCKET.test(bucket)) return { kind: 'invalid', reason: `a malformed bucket (${JSON.stringify(bucket)})` };
  if (!keys.every((k): k is string => typeof k === 'string' && k.length > 0))
    return { kind: 'invalid', reason: 's3ObjectKey holds something other than keys' };
  // CloudTrail's own notification gives keys as they are, not form-encoded.
  return { kind: 'objects', objects: keys.map((key) => ({ bucket, key, size: null })) };
}

const LOG_KEY =
  /(?:^|\/)AWSLogs\/(?:o-[a-z0-9]{10,32}\/)?(\d{12})\/CloudTrail\/([a-z0-9-]+)\/(\d{4})\/(\d{2})\/(\d{2})\/[^/]+\.json(?:\.gz)?$/;

/** Whether a key is a CloudTrail log file (not a digest, an Insights file or anything else in the bucket). */
export function isCloudTrailLogKey(key: string): boolean {
  return LOG_KEY.test(key) && !key.includes('_CloudTrail-Digest_');
}

/** `s3://bucket/some/prefix/` → bucket and prefix ('' for the whole bucket). */
export function parseS3Url(url: string): { bucket: string; prefix: string } | { error: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) return { error: `not an s3:// URL: "${url}" (use s3://bucket/prefix/)` };
  const bucket = m[1] ?? '';
  if (!BUCKET.test(bucket)) return { error: `not a bucket name: "${bucket}"` };
  return { bucket, prefix: m[2] ?? '' };
}

/** The region folders a backfill lists: `…/CloudTrail/REGION/`. */
export const REGION_FOLDER = /(?:^|\/)AWSLogs\/(?:o-[a-z0-9]{10,32}\/)?\d{12}\/CloudTrail\/[a-z0-9-]+\/$/;

/**
 * The folders a region's backfill lists between two instants: one per UTC day, `…/YYYY/MM/DD/`.
 * A log file is delivered within about 15 minutes of its records, so the day before `sinceMs` is
 * listed too when `sinceMs` falls in the first hour of its day.
 */
export function dayFolders(regionFolder: string, sinceMs: number, untilMs: number): string[] {
  const day = 86_400_000;
  const first = Math.floor(sinceMs / day) - (sinceMs % day < 3_600_000 ? 1 : 0);
  const last = Math.floor(untilMs / day);
  const out: string[] = [];
  for (let d = first; d <= last; d++) out.push(`${regionFolder}${new Date(d * day).toISOString().slice(0, 10).replace(/-/g, '/')}/`);
  return out;
}

/** The delivery time in a log file's name (`…_20261104T1205Z_…`), or null. */
export function keyTimeMs(key: string): number | null {
  const m = /_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})Z_[^/]*$/.exec(key);
  if (!m) return null;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  return Number.isFinite(t) ? t : null;
}
