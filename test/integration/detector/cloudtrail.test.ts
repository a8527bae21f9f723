/**
 * CloudTrail input of the running detector: log files in `cloudtrail.watch_dir`
 * (plain and gzip, nested like an `aws s3 sync` of the trail bucket), each
 * processed once, garbage counted and skipped; and EventBridge events on
 * POST /v1/cloudtrail behind the bearer token.
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cloudTrailEventBridge,
  cloudTrailFixture,
  cloudTrailRecord,
  EXTERNAL_IP,
  newAccessKeyId,
  sleep,
  startDetector,
  waitFor,
  writeSecretFile,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';

const TOKEN = 'cloudtrail-ingest-token-5b1e0c7d9a';
const AUTH = { authorization: `Bearer ${TOKEN}` };

let h: DetectorHarness;
let watchDir: string;

beforeAll(async () => {
  h = await startDetector({
    config: async (dir) => {
      await writeSecretFile(join(dir, 'token'), TOKEN);
      return {
        cloudtrail: { watch_dir: join(dir, 'cloudtrail'), poll_interval: '150ms' },
        ingest: { token_file: join(dir, 'token') },
        correlation: { grace: '300ms' },
      };
    },
  });
  watchDir = h.config.cloudtrail.watch_dir!;
  await mkdir(watchDir, { recursive: true });
});

afterAll(async () => {
  await h?.cleanup();
});

async function decisionFor(eventId: string) {
  return (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 10_000 })).find((d) => d.subjectId === eventId) ?? null;
}

async function decisionCount(): Promise<number> {
  return (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 100_000 })).length;
}

/** Writes a file and backdates it past the watcher's settle time. */
async function writeSettled(path: string, content: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

function processedLogs(path: string) {
  return h.logs.find('cloudtrail_file_processed').filter((l) => l.path === path);
}

describe('cloudtrail.watch_dir', () => {
  it('processes .json and .json.gz files in nested folders once, counting garbage files and records', async () => {
    const day = join(watchDir, 'AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25');
    const now = Date.now();
    const a = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: now - 30_000 });
    const b = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: now - 20_000 });
    const internal = cloudTrailRecord({ fixture: 'aws-internal', time: now - 25_000 });
    const garbage = cloudTrailFixture('garbage') as unknown as unknown[];
    const gz = join(day, '111122223333_CloudTrail_us-east-1_20261125T1200Z_a1b2c3d4e5f6g7h8.json.gz');
    const plain = join(
      watchDir,
      'AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/24/111122223333_CloudTrail_eu-west-1_20261124T2355Z_plain.json',
    );
    const broken = join(day, '111122223333_CloudTrail_us-east-1_20261125T1205Z_broken.json');
    const noRecords = join(day, '111122223333_CloudTrail_us-east-1_20261125T1210Z_norecords.json');
    const badGzip = join(day, '111122223333_CloudTrail_us-east-1_20261125T1215Z_badgzip.json.gz');
    const failedBefore = await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'failed' });
    const invalidBefore = await h.metric('egress_witness_detector_cloudtrail_records_total', { outcome: 'invalid' });

    await writeSettled(gz, gzipSync(JSON.stringify({ Records: [a, ...garbage, internal] })));
    await writeSettled(plain, JSON.stringify({ Records: [b] }));
    await writeSettled(broken, '{"Records": [ {"eventVersion": "1.11", ');
    await writeSettled(noRecords, JSON.stringify({ records: [a] }));
    await writeSettled(badGzip, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03]));
    await writeSettled(join(day, 'README.txt'), JSON.stringify({ Records: [a] }));

    await waitFor(() => processedLogs(gz).length > 0 && processedLogs(plain).length > 0, 'both log files processed');
    await waitFor(() => h.logs.find('cloudtrail_file_failed').length >= 3, 'the three broken files counted');

    expect(processedLogs(gz)[0]).toMatchObject({ records: garbage.length + 2, invalid: garbage.length });
    expect(processedLogs(plain)[0]).toMatchObject({ records: 1, invalid: 0 });
    const failed = h.logs.find('cloudtrail_file_failed').map((l) => [l.path, l.reason]);
    expect(failed).toEqual(
      expect.arrayContaining([
        [broken, expect.stringMatching(/^not JSON/)],
        [noRecords, expect.stringMatching(/"Records" is missing/)],
        [badGzip, expect.stringMatching(/^not valid gzip/)],
      ]),
    );
    expect(await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'failed' })).toBe(failedBefore + 3);
    expect(await h.metric('egress_witness_detector_cloudtrail_records_total', { outcome: 'invalid' })).toBe(invalidBefore + garbage.length);
    expect(await decisionFor(a.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });
    expect(await decisionFor(b.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });
    expect(await decisionFor(internal.eventID)).toMatchObject({ disposition: 'ignored', rule: 'aws-internal' });

    // Several more scans later nothing was read again, and the .txt file was never read.
    const decisions = await decisionCount();
    const processed = await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'processed' });
    await sleep(700);
    expect(processedLogs(gz)).toHaveLength(1);
    expect(processedLogs(plain)).toHaveLength(1);
    expect(h.logs.find('cloudtrail_file_failed').filter((l) => l.path === broken)).toHaveLength(1);
    expect(await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'processed' })).toBe(processed);
    expect(await decisionCount()).toBe(decisions);
    expect(h.logs.lines.some((l) => typeof l.path === 'string' && l.path.endsWith('README.txt'))).toBe(false);
  });

  it('waits for a file that is still being written (fresh mtime), then reads it', async () => {
    const r = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: Date.now() - 30_000 });
    const path = join(watchDir, 'AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/26/fresh.json');
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, JSON.stringify({ Records: [r] }));
    await sleep(500);
    expect(processedLogs(path)).toHaveLength(0);
    const past = new Date(Date.now() - 60_000);
    await utimes(path, past, past);
    await waitFor(() => processedLogs(path).length === 1, 'the settled file processed');
    expect(await decisionFor(r.eventID)).toMatchObject({ rule: 'external' });
  });
});

describe('cloudtrail.watch_dir next to CloudTrail digest files', () => {
  // Regression: with log file validation on, a sync of the trail bucket also brings
  // AWSLogs/ACCT/CloudTrail-Digest/REGION/…/ACCT_CloudTrail-Digest_….json.gz every hour. The watcher
  // reads them as log files and reports each as failed ("Records" is missing) at error level.
  it('skips digest files instead of counting them as failed log files', async () => {
    const name = '111122223333_CloudTrail-Digest_us-east-1_org-trail_us-east-1_20261125T130000Z.json.gz';
    const path = join(watchDir, 'AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/25', name);
    const digest = {
      awsAccountId: '111122223333',
      digestStartTime: '2026-11-25T12:00:00Z',
      digestEndTime: '2026-11-25T13:00:00Z',
      digestS3Bucket: 'trail-bucket',
      digestS3Object: `AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/25/${name}`,
      digestPublicKeyFingerprint: '31e8b5433410dfb61a9dc45cc65b22ff',
      digestSignatureAlgorithm: 'SHA256withRSA',
      newestEventTime: '2026-11-25T12:52:27Z',
      oldestEventTime: '2026-11-25T12:02:27Z',
      previousDigestS3Bucket: 'trail-bucket',
      previousDigestS3Object:
        'AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/25/111122223333_CloudTrail-Digest_us-east-1_org-trail_us-east-1_20261125T120000Z.json.gz',
      previousDigestHashValue: '97fb791cf91ffc440d274f8190dbdd9aa09c34432aba82739df18b6d3c13df2d',
      previousDigestHashAlgorithm: 'SHA-256',
      previousDigestSignature: '50887ccffad4c002b97caa37cb3f6b8b2b6a5e1f1c2c3f8d1a9f2a6d2c1b0a9f',
      logFiles: [
        {
          s3Bucket: 'trail-bucket',
          s3Object:
            'AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/111122223333_CloudTrail_us-east-1_20261125T1205Z_a1b2c3d4e5f6g7h8.json.gz',
          hashValue: '9bb6196fc6b84d6f075a56548feca262bd99ba3c2de41b618e5b6e22c1fc71f6',
          hashAlgorithm: 'SHA-256',
          newestEventTime: '2026-11-25T12:52:27Z',
          oldestEventTime: '2026-11-25T12:02:27Z',
        },
      ],
    };
    const failed = await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'failed' });
    await writeSettled(path, gzipSync(JSON.stringify(digest)));
    // Walked after AWSLogs/ (names are sorted); one more scan interval rules out a scan that began before the digest was written.
    const marker = join(watchDir, 'zz-after-digest.json');
    await writeSettled(marker, JSON.stringify({ Records: [] }));
    await waitFor(() => processedLogs(marker).length === 1, 'a scan past the digest file');
    await sleep(400);
    expect(h.logs.find('cloudtrail_file_failed').filter((l) => l.path === path)).toEqual([]);
    expect(await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'failed' })).toBe(failed);
  });
});

describe('POST /v1/cloudtrail (EventBridge)', () => {
  it('accepts one event and decides its record', async () => {
    const r = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: Date.now() - 30_000 });
    const a = await h.postJson('/v1/cloudtrail', cloudTrailEventBridge(r), AUTH);
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, records: 1, decided: 1 });
    expect(await decisionFor(r.eventID)).toMatchObject({
      kind: 'cloudtrail',
      disposition: 'finding',
      rule: 'external',
      sourceIp: EXTERNAL_IP,
    });
  });

  it('accepts an array, skips other detail-types, and counts duplicates and invalid records', async () => {
    const events = cloudTrailFixture('eventbridge-events') as unknown as JsonDoc[];
    const apiCalls = events.filter((e) => e['detail-type'] === 'AWS API Call via CloudTrail');
    expect(apiCalls).toHaveLength(2);
    const a = await h.postJson('/v1/cloudtrail', events, AUTH);
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, records: 2, decided: 2 });
    for (const e of apiCalls) expect(await decisionFor(e.detail.eventID)).not.toBeNull();

    const again = await h.postJson(
      '/v1/cloudtrail',
      [...events, { 'detail-type': 'AWS API Call via CloudTrail', detail: { eventVersion: '1.11' } }, cloudTrailFixture('iam-user-akia')],
      AUTH,
    );
    expect(again.json).toEqual({ accepted: true, records: 4, duplicate: 2, invalid: 1, 'not-instance-credential': 1 });
  });

  it('401 without the bearer token from ingest.token_file, or with a wrong one; 400 for a body that is not JSON', async () => {
    const r = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: Date.now() - 30_000 });
    const missing = await h.postJson('/v1/cloudtrail', cloudTrailEventBridge(r));
    expect(missing.status).toBe(401);
    expect(missing.json.error).toMatch(/bearer token/);
    expect((await h.postJson('/v1/cloudtrail', cloudTrailEventBridge(r), { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await h.postJson('/v1/cloudtrail', cloudTrailEventBridge(r), { authorization: TOKEN })).status).toBe(401);
    expect((await h.postJson('/v1/guardduty', {}, {})).status).toBe(401);
    expect(await decisionFor(r.eventID)).toBeNull();

    const notJson = await fetch(h.url('/v1/cloudtrail'), {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: '{"detail-type": ',
    });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: string }).error).toMatch(/not valid JSON/);
  });
});
