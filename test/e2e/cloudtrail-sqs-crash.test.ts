/**
 * The detector as a child process (`node dist/cli/main.js detector`) reading
 * a trail through cloudtrail.sqs from the loopback bucket and queue, killed
 * with SIGKILL part-way and started again on the same store: every record is
 * decided exactly once (none missed, none twice), and the queue ends empty.
 * Messages in flight at the kill come back after their visibility timeout;
 * the records of objects committed before the kill are recognised as
 * already decided.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fakeTrailEnv, startFakeTrail, type FakeTrail } from '../../bench/servers/fake-trail.js';
import {
  AWS_RANGES_FIXTURE,
  EXTERNAL_IP,
  INSIDE_AWS_IP,
  cloudTrailRecord,
  httpRequest,
  metricValue,
  waitFor,
  type JsonDoc,
} from '../helpers/detector.js';
import { freePort } from '../helpers/telemetry-receiver.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const BUCKET = 'org-trail-logs';
const FILES = 60;
const PER_FILE = 500;

let dir: string;
let fake: FakeTrail;
const children: ChildProcess[] = [];
let adminPort = 0;

function startDetector(): ChildProcess {
  const child = spawn(process.execPath, [CLI, 'detector', '--config', join(dir, 'detector.yaml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      ...fakeTrailEnv(fake.endpoint),
    },
  });
  children.push(child);
  return child;
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue((await httpRequest(adminPort, 'GET', '/metrics', {}, null)).text, name, labels);
}

function decidedIds(): string[] {
  const db = new Database(join(dir, 'detector.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT subject_id FROM decisions WHERE kind = 'cloudtrail'").all() as { subject_id: string }[]).map(
      (r) => r.subject_id,
    );
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ew-sqs-crash-'));
  fake = await startFakeTrail();
  adminPort = await freePort();
  writeFileSync(join(dir, 'gw.key'), 'sqs-crash-shared-secret-0123456789\n', { mode: 0o600 });
  writeFileSync(join(dir, 'ip-ranges.json'), JSON.stringify(AWS_RANGES_FIXTURE));
  writeFileSync(
    join(dir, 'detector.yaml'),
    JSON.stringify({
      listen: `127.0.0.1:${await freePort()}`,
      admin: { listen: `127.0.0.1:${adminPort}` },
      store: { path: join(dir, 'detector.db') },
      gateways: [{ id: 'gw1', egress_cidrs: ['203.0.113.0/28'], secret_file: join(dir, 'gw.key') }],
      aws_ip_ranges: join(dir, 'ip-ranges.json'),
      correlation: { grace: '0s' },
      cloudtrail: { sqs: { queue_url: fake.queueUrl, region: 'us-east-1', wait_time: '1s', visibility_timeout: '4s', concurrency: 4 } },
      findings: { file: join(dir, 'findings.jsonl') },
    }),
  );
}, 30_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('a detector killed part-way through the queue and started again decides every record exactly once', async () => {
  const eventIds: string[] = [];
  const template = cloudTrailRecord({ sourceIp: INSIDE_AWS_IP, time: Date.now() - 60_000 });
  for (let n = 0; n < FILES; n++) {
    const records: JsonDoc[] = [];
    for (let i = 0; i < PER_FILE; i++) {
      const eventID = randomUUID();
      eventIds.push(eventID);
      // One call per file from outside AWS: a finding, so the findings output is exercised too.
      records.push({ ...template, eventID, requestID: randomUUID(), ...(i === 0 ? { sourceIPAddress: EXTERNAL_IP } : {}) });
    }
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
    const key = `AWSLogs/111122223333/CloudTrail/us-east-1/${day}/111122223333_CloudTrail_us-east-1_20261104T1205Z_${n}.json.gz`;
    fake.putObject(BUCKET, key, gzipSync(JSON.stringify({ Records: records }), { level: 1 }));
    fake.notify(BUCKET, [key]);
  }

  const first = startDetector();
  await waitFor(() => fake.deleted.length >= 8 || null, 'some messages deleted', 60_000, 20);
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  const deletedAtKill = fake.deleted.length;
  expect(deletedAtKill).toBeLessThan(FILES);

  startDetector();
  await waitFor(() => fake.depth() === 0 || null, 'the queue drained after the restart', 120_000, 100);
  const ids = decidedIds();
  expect(ids.length).toBe(FILES * PER_FILE);
  expect(new Set(ids)).toEqual(new Set(eventIds));
  // The second run read what the first had not deleted (and perhaps had committed): each record is
  // decided, or recognised as decided already; never decided again.
  const processed = await metric('egress_witness_detector_cloudtrail_s3_objects_total', { outcome: 'processed' });
  const decided = await metric('egress_witness_detector_cloudtrail_records_total', { outcome: 'decided' });
  const duplicate = await metric('egress_witness_detector_cloudtrail_records_total', { outcome: 'duplicate' });
  expect(processed).toBeGreaterThanOrEqual(FILES - deletedAtKill);
  expect(decided + duplicate).toBe(processed * PER_FILE);
  expect(decided).toBeLessThanOrEqual((FILES - deletedAtKill) * PER_FILE);
}, 240_000);
