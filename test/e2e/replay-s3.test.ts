/**
 * `egress-witness replay --s3` as a child process against the loopback trail
 * bucket (real @aws-sdk/client-s3, AWS_ENDPOINT_URL_S3): the region folders
 * of an organization trail are found under the prefix, the day folders of
 * the range listed, digests and files outside the range left alone, the log
 * files read in parallel and decided like local files; an unreadable object
 * is reported and skipped; bad ranges are usage errors.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeTrailEnv, startFakeTrail, type FakeTrail } from '../../bench/servers/fake-trail.js';
import { EXTERNAL_IP, cloudTrailRecord, type JsonDoc } from '../helpers/detector.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const BUCKET = 'org-trail-logs';
const ORG = 'AWSLogs/o-aa111bb222/111122223333/CloudTrail';

let dir: string;
let fake: FakeTrail;
const inRange: string[] = [];
const outOfRange: string[] = [];

function key(region: string, at: string, n: number): string {
  const d = new Date(at);
  const day = d.toISOString().slice(0, 10).replace(/-/g, '/');
  const stamp = d.toISOString().slice(0, 16).replace(/[-:]/g, '');
  return `${ORG}/${region}/${day}/111122223333_CloudTrail_${region}_${stamp}Z_${n}.json.gz`;
}

function put(k: string, ids: string[], count: number, at: string): void {
  const records: JsonDoc[] = [];
  for (let i = 0; i < count; i++) {
    const r = cloudTrailRecord({ sourceIp: EXTERNAL_IP, time: at });
    ids.push(r.eventID as string);
    records.push(r);
  }
  fake.putObject(BUCKET, k, gzipSync(JSON.stringify({ Records: records })));
}

/** Replay without telemetry (on purpose: these files are decided on their sources alone). */
function replay(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return cli('replay', '--no-telemetry', ...args);
}

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, ...rest] = args;
  const sub = command === 'backfill' ? ['detector', 'backfill'] : [command ?? 'replay'];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...sub, '--config', join(dir, 'detector.yaml'), ...rest],
      {
        maxBuffer: 16 << 20,
        env: {
          ...process.env,
          ...fakeTrailEnv(fake.endpoint),
        },
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ew-replay-s3-'));
  fake = await startFakeTrail();
  writeFileSync(join(dir, 'gw.key'), 'replay-s3-shared-secret-0123456789\n', { mode: 0o600 });
  writeFileSync(
    join(dir, 'detector.yaml'),
    JSON.stringify({
      store: { path: join(dir, 'store', 'detector.db') },
      gateways: [{ id: 'gw1', egress_cidrs: ['203.0.113.0/28'], secret_file: join(dir, 'gw.key') }],
    }),
  );
  let n = 0;
  for (const region of ['us-east-1', 'eu-west-1']) {
    for (const at of ['2026-11-01T08:05:00Z', '2026-11-02T23:55:00Z']) put(key(region, at, n++), inRange, 25, at);
    put(key(region, '2026-10-25T10:00:00Z', n++), outOfRange, 10, '2026-10-25T10:00:00Z');
    put(key(region, '2026-11-05T10:00:00Z', n++), outOfRange, 10, '2026-11-05T10:00:00Z');
  }
  const digest = key('us-east-1', '2026-11-01T09:00:00Z', n++)
    .replace('/CloudTrail/', '/CloudTrail-Digest/')
    .replace('_CloudTrail_', '_CloudTrail-Digest_');
  fake.putObject(BUCKET, digest, gzipSync('{"not":"records"}'));
  fake.putObject(BUCKET, key('eu-west-1', '2026-11-01T10:00:00Z', n), Buffer.from('this is not gzip or JSON'));
  fake.putObject(BUCKET, 'AWSLogs/o-aa111bb222/111122223333/elasticloadbalancing/us-east-1/2026/11/01/x.log.gz', Buffer.from('x'));
}, 30_000);

afterAll(async () => {
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('replay --s3', () => {
  it("decides every record of the range's log files, in every region, and skips what cannot be read", async () => {
    const r = await replay('--s3', `s3://${BUCKET}/AWSLogs/`, '--since', '2026-11-01', '--until', '2026-11-03', '--concurrency', '3');
    expect(r.stderr).toContain('replay: s3: 5 log files to read');
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as JsonDoc);
    expect(new Set(lines.map((l) => l['id'] as string))).toEqual(new Set(inRange));
    expect(lines.every((l) => l['disposition'] === 'finding')).toBe(true);
    expect(r.stderr).toMatch(/replay: skipped AWSLogs\/.*eu-west-1.*\.json\.gz: /);
    expect(r.stderr).toMatch(/replay: s3: 5\/5 files \(100 %\), 100 records/);
  });

  it('takes a prefix below a region folder, and durations for the range', async () => {
    const r = await replay(
      '--s3',
      `s3://${BUCKET}/${ORG}/us-east-1/2026/11/02/`,
      '--since',
      '2026-11-02',
      '--until',
      '2026-11-03',
      '--quiet',
    );
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(25);
    const none = await replay('--s3', `s3://${BUCKET}/AWSLogs/`, '--since', '1h', '--quiet');
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
  });

  it.each([
    [['--s3', `s3://${BUCKET}/`], /--s3 needs --since/],
    [['--s3', 'https://bucket/'], /--s3: not an s3:\/\/ URL/],
    [['--s3', `s3://${BUCKET}/`, '--since', 'yesterday'], /--since: not a date/],
    [['--s3', `s3://${BUCKET}/`, '--since', '2026-11-02', '--until', '2026-11-01'], /--until .* is before --since/],
    [['--s3', `s3://${BUCKET}/`, '--since', '2026-11-02', '--concurrency', '0'], /--concurrency: expected an integer from 1 to 64/],
  ])('%j is a usage error', async (args, message) => {
    const r = await replay(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('detector backfill', () => {
  function stored(): string[] {
    const db = new Database(join(dir, 'store', 'detector.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare("SELECT subject_id FROM decisions WHERE kind = 'cloudtrail'").all() as { subject_id: string }[]).map(
        (r) => r.subject_id,
      );
    } finally {
      db.close();
    }
  }

  it('decides the range into the store once; a second run finds everything decided; an unreadable file makes it exit 1', async () => {
    const first = await cli('backfill', '--s3', `s3://${BUCKET}/AWSLogs/`, '--since', '2026-11-01', '--until', '2026-11-03');
    expect(first.stderr).toMatch(/detector backfill: 100 records from 4 files .* newly decided \{"finding\/external":100\}/);
    expect(first.stderr).toMatch(/detector backfill: skipped AWSLogs\/.*eu-west-1/);
    expect(first.code).toBe(1);
    expect(new Set(stored())).toEqual(new Set(inRange));
    const again = await cli('backfill', '--s3', `s3://${BUCKET}/${ORG}/us-east-1/`, '--since', '2026-11-01', '--until', '2026-11-03');
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/50 records from 2 files .* newly decided \{\}/);
    expect(stored()).toHaveLength(inRange.length);
  });

  it('needs --s3 and --since', async () => {
    const r = await cli('backfill', '--s3', `s3://${BUCKET}/`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--since/);
  });
});
