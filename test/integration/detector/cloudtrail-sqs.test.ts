/**
 * cloudtrail.sqs against a loopback bucket and queue (bench/servers/fake-trail.ts)
 * driven by the real @aws-sdk/client-sqs and @aws-sdk/client-s3, the
 * endpoints given as AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL_S3: every record
 * of every notified log file decided once and every message deleted; SNS
 * wrapping, CloudTrail's own notification and the test event; a poison
 * object counted and left to the redrive policy without stopping the others;
 * a GetObject 503 retried.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeTrailEnv, startFakeTrail, type FakeTrail } from '../../../bench/servers/fake-trail.js';
import {
  AWS_RANGES_FIXTURE,
  INSIDE_AWS_IP,
  cloudTrailRecord,
  startDetector,
  waitFor,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';

const BUCKET = 'org-trail-logs';
const FILES = Number(process.env.EW_FILES ?? 200);
const PER_FILE = 1_000;

let fake: FakeTrail;
let h: DetectorHarness;
let shmDir: string | null = null;
const saved: Record<string, string | undefined> = {};

/** A log file's key as CloudTrail writes it, under an organization trail. */
function logKey(n: number, at = Date.now()): string {
  const d = new Date(at);
  const day = d.toISOString().slice(0, 10).replace(/-/g, '/');
  const stamp = d.toISOString().slice(0, 16).replace(/[-:]/g, '');
  return `AWSLogs/o-aa111bb222/111122223333/CloudTrail/us-east-1/${day}/111122223333_CloudTrail_us-east-1_${stamp}Z_${String(n).padStart(6, '0')}.json.gz`;
}

/** A gzipped log file of `n` instance-credential calls from inside AWS (decided at once: no grace). */
function logFile(n: number, eventIds: string[]): Buffer {
  const template = cloudTrailRecord({ sourceIp: INSIDE_AWS_IP, time: Date.now() - 60_000 });
  const records: JsonDoc[] = [];
  for (let i = 0; i < n; i++) {
    const eventId = randomUUID();
    eventIds.push(eventId);
    records.push({ ...template, eventID: eventId, requestID: randomUUID() });
  }
  return gzipSync(JSON.stringify({ Records: records }), { level: 1 });
}

function decidedIds(): Set<string> {
  const db = new Database(h.config.store.path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT subject_id FROM decisions WHERE kind = 'cloudtrail'").all() as { subject_id: string }[];
    return new Set(rows.map((r) => r.subject_id));
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  fake = await startFakeTrail({ maxReceiveCount: 2 });
  const env = fakeTrailEnv(fake.endpoint);
  for (const k of Object.keys(env)) saved[k] = process.env[k];
  Object.assign(process.env, env);
  shmDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/ew-sqs-') : null;
  h = await startDetector({
    config: async (dir) => {
      await writeFile(join(dir, 'ip-ranges.json'), JSON.stringify(AWS_RANGES_FIXTURE));
      return {
        // On tmpfs where there is one: this test is about the queue, and 200,000 durable commits on a
        // disk would be most of its time (restarts and durability are the end-to-end test's business).
        store: { path: join(shmDir ?? dir, 'detector.db') },
        aws_ip_ranges: join(dir, 'ip-ranges.json'),
        correlation: { grace: '0s' },
        cloudtrail: { sqs: { queue_url: fake.queueUrl, region: 'us-east-1', wait_time: '1s', visibility_timeout: '60s', concurrency: 4 } },
      };
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.cleanup();
  if (shmDir) rmSync(shmDir, { recursive: true, force: true });
  await fake?.close();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('cloudtrail.sqs', () => {
  it(`decides every record of ${FILES} notified log files of ${PER_FILE} records once, and deletes every message`, async () => {
    const eventIds: string[] = [];
    const sent: string[] = [];
    for (let n = 0; n < FILES; n++) {
      const key = logKey(n);
      fake.putObject(BUCKET, key, logFile(PER_FILE, eventIds));
      sent.push(fake.notify(BUCKET, [key]));
    }
    await waitFor(() => fake.deleted.length >= FILES || null, 'every message deleted', 400_000, 200);
    expect(new Set(fake.deleted)).toEqual(new Set(sent));
    const decided = decidedIds();
    expect(decided.size).toBe(FILES * PER_FILE);
    for (const id of eventIds) expect(decided.has(id)).toBe(true);
    expect(await h.metric('egress_witness_detector_cloudtrail_records_total', { outcome: 'decided' })).toBe(FILES * PER_FILE);
    expect(await h.metric('egress_witness_detector_cloudtrail_s3_objects_total', { outcome: 'processed' })).toBe(FILES);
    expect(await h.metric('egress_witness_detector_cloudtrail_sqs_messages_total', { outcome: 'deleted' })).toBe(FILES);
    expect(await h.metric('egress_witness_detector_cloudtrail_s3_bytes_total')).toBeGreaterThan(FILES * PER_FILE * 500);
    expect(fake.depth()).toBe(0);
  }, 450_000);

  it('reads SNS-wrapped and CloudTrail-notification messages, deletes the test event, and skips digests and other keys', async () => {
    const ids: string[] = [];
    const a = logKey(1001);
    const b = logKey(1002);
    fake.putObject(BUCKET, a, logFile(3, ids));
    fake.putObject(BUCKET, b, logFile(2, ids));
    const digest = logKey(1003).replace('/CloudTrail/', '/CloudTrail-Digest/').replace('_CloudTrail_', '_CloudTrail-Digest_');
    const before = fake.deleted.length;
    const s3Notification = JSON.stringify({
      Records: [
        { eventName: 'ObjectCreated:Put', s3: { bucket: { name: BUCKET }, object: { key: a } } },
        { eventName: 'ObjectCreated:Put', s3: { bucket: { name: BUCKET }, object: { key: digest } } },
      ],
    });
    const wrapped = fake.send(JSON.stringify({ Type: 'Notification', MessageId: randomUUID(), Message: s3Notification }));
    const trailSns = fake.send(JSON.stringify({ Type: 'Notification', Message: JSON.stringify({ s3Bucket: BUCKET, s3ObjectKey: [b] }) }));
    const test = fake.send(JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: BUCKET }));
    await waitFor(() => fake.deleted.length >= before + 3 || null, 'three messages deleted', 20_000);
    expect(fake.deleted.slice(before).sort()).toEqual([wrapped, trailSns, test].sort());
    const decided = decidedIds();
    for (const id of ids) expect(decided.has(id)).toBe(true);
    expect(await h.metric('egress_witness_detector_cloudtrail_sqs_messages_total', { outcome: 'test' })).toBe(1);
    expect(await h.metric('egress_witness_detector_cloudtrail_s3_objects_total', { outcome: 'skipped' })).toBe(1);
  });

  it('a poison object is counted and left to the redrive policy; the messages beside it are processed', async () => {
    const ids: string[] = [];
    const poison = logKey(2001);
    const good = logKey(2002);
    fake.putObject(BUCKET, poison, Buffer.concat([gzipSync('{"Records":[')].map((b) => b.subarray(0, b.length - 6))));
    fake.putObject(BUCKET, good, logFile(10, ids));
    const poisonMessage = fake.notify(BUCKET, [poison]);
    const garbage = fake.send('this is not a notification');
    const goodMessage = fake.notify(BUCKET, [good]);
    await waitFor(() => fake.deleted.includes(goodMessage) || null, 'the good message deleted', 20_000);
    for (const id of ids) expect(decidedIds().has(id)).toBe(true);
    // Received twice (the first receive, then again after its retry delay), then moved by the redrive policy.
    await waitFor(
      () => (fake.deadLetters.some((d) => d.id === poisonMessage) && fake.deadLetters.some((d) => d.id === garbage)) || null,
      'both moved to the dead-letter list',
      20_000,
    );
    expect(fake.deleted).not.toContain(poisonMessage);
    expect(await h.metric('egress_witness_detector_cloudtrail_s3_objects_total', { outcome: 'poison' })).toBe(2);
    expect(await h.metric('egress_witness_detector_cloudtrail_sqs_messages_total', { outcome: 'invalid' })).toBe(2);
    const logged = h.logs.find('cloudtrail_object_poison');
    expect(logged[0]).toMatchObject({ bucket: BUCKET, key: poison, reason: expect.stringContaining('gzip') });
  });

  it('retries a GetObject that answers 503', async () => {
    const ids: string[] = [];
    const key = logKey(3001);
    fake.putObject(BUCKET, key, logFile(5, ids));
    const gets = fake.calls.get('GetObject') ?? 0;
    fake.failGet(key, 2);
    const message = fake.notify(BUCKET, [key]);
    await waitFor(() => fake.deleted.includes(message) || null, 'the message deleted', 20_000);
    expect((fake.calls.get('GetObject') ?? 0) - gets).toBe(3);
    for (const id of ids) expect(decidedIds().has(id)).toBe(true);
  });
});
