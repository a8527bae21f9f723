/**
 * Three detectors as child processes (`node dist/cli/main.js detector`) on one
 * PostgreSQL schema of their own, each with the same configuration: a trail
 * read through cloudtrail.sqs from the loopback bucket and queue, GuardDuty in
 * archive mode against the loopback GuardDuty (polled every second), a grace
 * period so that some CloudTrail findings wait as pending rows, and
 * store.postgres.leader_check of one second.
 *
 *   telemetry ─▶ A, B, C (each a batch; one batch to A and B at once: stored once)
 *   SQS ─▶ A | B | C (each message to one; every event decided once, pending rows claimed by one sweep)
 *   GuardDuty: leader polls and archives; a finding pushed to a follower is archived by the leader
 *   SIGKILL the leader ─▶ another takes over within leader_check (+ slack), polls and archives the next finding
 *
 * At the end every CloudTrail event has one decision, no event's decision was
 * logged twice across the three processes, and every archivable GuardDuty
 * finding was archived by exactly one ArchiveFindings call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fakeTrailEnv, startFakeTrail, type FakeTrail } from '../../bench/servers/fake-trail.js';
import { BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER, signatureHeader } from '../../protocol/signature.js';
import { SCHEMA_VERSION, type TelemetryBatch, type TelemetryRecord } from '../../protocol/telemetry.js';
import { heartbeat, observation } from '../unit/detector/scenario.js';
import {
  AWS_RANGES_FIXTURE,
  EXTERNAL_IP,
  GW1_IP,
  cloudTrailRecord,
  guardDutyEventBridge,
  httpRequest,
  metricValue,
  newAccessKeyId,
  waitFor,
  type HttpAnswer,
  type JsonDoc,
} from '../helpers/detector.js';
import { startFakeGuardDuty, type FakeGuardDuty } from '../helpers/fake-guardduty.js';
import { createTestSchema, postgresTestsRun, querySchema, type TestSchema } from '../helpers/postgres.js';
import { freePort } from '../helpers/telemetry-receiver.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const BUCKET = 'org-trail-logs';
const DETECTOR_ID = '12abc34d567e8fa901bc2d34e56789f0';
const LEADER_CHECK_MS = 1_000;
const SECRET = 'replicas-shared-secret-0123456789abcdef';
const FILES = 24;
const PER_FILE = 20;
const SEC = 1000;
const MIN = 60 * SEC;
const EXTERNAL_KEYS = [newAccessKeyId(), newAccessKeyId(), newAccessKeyId()];

/** The attested finding of the GuardDuty fixtures: OutsideAWS, remote 203.0.113.10 (gw1), 12:01:07–12:41:07. */
const ATTESTED: JsonDoc = (
  JSON.parse(readFileSync(new URL('../fixtures/guardduty/get-findings-response.json', import.meta.url), 'utf8')) as { findings: JsonDoc[] }
).findings.find((f) => f.id === 'a7ec7d0f1a2b3c4d5e6f708192a3b4c5')!;
const FIRST = Date.parse(ATTESTED.service.eventFirstSeen as string);
const LAST = Date.parse(ATTESTED.service.eventLastSeen as string);

interface Replica {
  name: string;
  child: ChildProcess;
  ingest: number;
  admin: number;
  lines: JsonDoc[];
}

let dir: string;
let schema: TestSchema;
let trail: FakeTrail;
let gd: FakeGuardDuty;
const replicas: Replica[] = [];

function spawnReplica(name: string, ingest: number, admin: number): Replica {
  const configPath = join(dir, `${name}.yaml`);
  writeFileSync(
    configPath,
    JSON.stringify({
      listen: `127.0.0.1:${ingest}`,
      admin: { listen: `127.0.0.1:${admin}` },
      store: { postgres: { url: schema.url, pool_size: 4, leader_check: `${LEADER_CHECK_MS}ms` }, retention: '100000h' },
      gateways: [{ id: 'gw1', egress_cidrs: ['203.0.113.0/28'], secret_file: join(dir, 'gw1.key') }],
      aws_ip_ranges: join(dir, 'ip-ranges.json'),
      correlation: { window: '5m', heartbeat_stale: '2m', grace: '3s' },
      cloudtrail: { sqs: { queue_url: trail.queueUrl, region: 'us-east-1', wait_time: '1s', visibility_timeout: '20s', max_messages: 1 } },
      guardduty: {
        mode: 'archive',
        region: 'us-east-1',
        detector_id: DETECTOR_ID,
        endpoint: gd.endpoint,
        ca_file: join(dir, 'guardduty-ca.pem'),
        poll_interval: '1s',
      },
      log: { level: 'info' },
    }),
  );
  const child = spawn(process.execPath, [CLI, 'detector', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...fakeTrailEnv(trail.endpoint) },
  });
  const r: Replica = { name, child, ingest, admin, lines: [] };
  let rest = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts) {
      try {
        r.lines.push(JSON.parse(p) as JsonDoc);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr.resume();
  return r;
}

async function metric(r: Replica, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue((await httpRequest(r.admin, 'GET', '/metrics', {}, null)).text, name, labels);
}

function alive(): Replica[] {
  return replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
}

async function leaders(among = alive()): Promise<Replica[]> {
  const flags = await Promise.all(among.map(async (r) => (await metric(r, 'egress_witness_detector_leader')) === 1));
  return among.filter((_, i) => flags[i]);
}

function batchOf(records: TelemetryRecord[]): TelemetryBatch {
  return {
    schemaVersion: SCHEMA_VERSION,
    batchId: randomBytes(16).toString('base64url'),
    gatewayId: 'gw1',
    agent: { version: '0.1.0', startedAt: new Date(Date.now() - 3_600_000).toISOString() },
    sequence: 0,
    egressCidrs: ['203.0.113.0/28'],
    sentAt: new Date().toISOString(),
    records,
  };
}

function postBatch(r: Replica, batch: TelemetryBatch): Promise<HttpAnswer> {
  const body = gzipSync(JSON.stringify(batch));
  return httpRequest(
    r.ingest,
    'POST',
    '/v1/telemetry',
    {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      [GATEWAY_HEADER]: 'gw1',
      [SIGNATURE_HEADER]: signatureHeader(Buffer.from(SECRET, 'utf8'), Math.floor(Date.now() / 1000), body),
      [BATCH_HEADER]: batch.batchId,
    },
    body,
  );
}

/** An archivable copy of the attested finding: its own id and key (gw1 saw that key at both ends). */
function attestedFinding(key: string): JsonDoc {
  const f = structuredClone(ATTESTED);
  f.id = randomBytes(16).toString('hex');
  f.arn = `arn:aws:guardduty:us-east-1:111122223333:detector/${DETECTOR_ID}/finding/${f.id}`;
  f.resource.accessKeyDetails.accessKeyId = key;
  return f;
}

/** Telemetry that attests `key` for the fixture's span (both ends), with gw1 alive throughout. */
function attesting(key: string): TelemetryRecord[] {
  return [
    ...[FIRST - 30 * SEC, FIRST + 20 * MIN, LAST - 30 * SEC, LAST + 30 * SEC].map((t) => heartbeat('gw1', t)),
    observation({ accessKeyId: key, at: FIRST - 20 * SEC }),
    observation({ accessKeyId: key, at: LAST - 40 * SEC }),
  ];
}

/** Sends `files` trail objects of PER_FILE records each through the queue; returns their event ids. */
async function sendTrail(files: number, tag: string, sighted: string): Promise<string[]> {
  const ids: string[] = [];
  const now = Date.now();
  for (let n = 0; n < files; n++) {
    const records: JsonDoc[] = [];
    for (let i = 0; i < PER_FILE; i++) {
      const eventId = randomUUID();
      ids.push(eventId);
      // Suppressed (gw1 saw the key), a finding from outside (final at once; three keys, so that the
      // detectors merge occurrences into the same findings at once), and one unattested on gw1's
      // address: a finding that waits out the grace period as a pending row.
      const kind = i % 3;
      records.push(
        cloudTrailRecord({
          eventId,
          time: now - 1_000,
          key: kind === 0 ? sighted : kind === 1 ? EXTERNAL_KEYS[n % 3] : newAccessKeyId(),
          sourceIp: kind === 1 ? EXTERNAL_IP : GW1_IP,
        }),
      );
    }
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
    const key = `AWSLogs/111122223333/CloudTrail/us-east-1/${day}/111122223333_CloudTrail_us-east-1_${tag}_${n}.json.gz`;
    trail.putObject(BUCKET, key, gzipSync(JSON.stringify({ Records: records })));
    trail.notify(BUCKET, [key]);
    await new Promise((r) => setTimeout(r, 20));
  }
  return ids;
}

async function settled(): Promise<void> {
  await waitFor(() => trail.depth() === 0 || null, 'the queue drained', 90_000, 100);
  await waitFor(
    async () => (await querySchema<{ n: number }>(schema, 'SELECT COUNT(*)::int AS n FROM pending'))[0]!.n === 0,
    'no pending row left',
    30_000,
    100,
  );
}

const run = postgresTestsRun(import.meta.filename);

beforeAll(async () => {
  if (!run) return;
  dir = mkdtempSync(join(tmpdir(), 'ew-replicas-'));
  schema = await createTestSchema(import.meta.filename);
  trail = await startFakeTrail();
  gd = await startFakeGuardDuty({ detectorId: DETECTOR_ID });
  writeFileSync(join(dir, 'gw1.key'), `${SECRET}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'ip-ranges.json'), JSON.stringify(AWS_RANGES_FIXTURE));
  writeFileSync(join(dir, 'guardduty-ca.pem'), gd.caPem);
  for (const name of ['a', 'b', 'c']) replicas.push(spawnReplica(name, await freePort(), await freePort()));
  for (const r of replicas)
    await waitFor(
      async () => (await httpRequest(r.admin, 'GET', '/readyz', {}, null).catch(() => ({ status: 0 }))).status === 200,
      `detector ${r.name} ready`,
      30_000,
      100,
    );
}, 60_000);

afterAll(async () => {
  for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await trail?.close();
  await gd?.close();
  await schema?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.runIf(run)(
  'three detectors on one database: ingest anywhere, the trail shared, one leader archiving once, and a takeover when the leader is killed',
  async () => {
    // One leader among the three.
    await waitFor(async () => (await leaders()).length === 1, 'one leader', 10_000, 100);
    const [first] = await leaders();

    // Telemetry to every detector; one batch to two detectors at once is stored once.
    const sighted = newAccessKeyId();
    const keyA = newAccessKeyId();
    const keyB = newAccessKeyId();
    const keyC = newAccessKeyId();
    const batches = [
      batchOf([heartbeat('gw1', Date.now() - 2 * SEC), observation({ accessKeyId: sighted, at: Date.now() - 60 * SEC, span: 55 * SEC })]),
      batchOf(attesting(keyA)),
      batchOf(attesting(keyB)),
    ];
    const answers = await Promise.all(batches.map((b, i) => postBatch(replicas[i]!, b)));
    expect(answers.map((a) => [a.status, a.json.duplicate as boolean])).toEqual([
      [200, false],
      [200, false],
      [200, false],
    ]);
    const twice = batchOf(attesting(keyC));
    const both = await Promise.all([postBatch(replicas[0]!, twice), postBatch(replicas[1]!, twice)]);
    expect(both.map((a) => a.status)).toEqual([200, 200]);
    expect(both.map((a) => a.json.duplicate as boolean).sort()).toEqual([false, true]);
    const stored = await querySchema<{ batch_id: string; records: number }>(
      schema,
      'SELECT batch_id, records FROM batches ORDER BY batch_id',
    );
    expect(stored.map((b) => b.batch_id).sort()).toEqual([...batches, twice].map((b) => b.batchId).sort());
    const observations = await querySchema<{ n: number }>(schema, 'SELECT COUNT(*)::int AS n FROM observations');
    expect(observations[0]!.n).toBe(1 + 2 + 2 + 2);

    // CloudTrail through the queue, shared by the three.
    const eventIds = await sendTrail(FILES, 'before', sighted);
    await settled();
    const deletedBy = await Promise.all(
      replicas.map((r) => metric(r, 'egress_witness_detector_cloudtrail_sqs_messages_total', { outcome: 'deleted' })),
    );
    expect(deletedBy.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(FILES);
    expect(deletedBy.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);

    // GuardDuty: the leader polls and archives; a finding pushed to a follower is decided there and
    // archived by the leader.
    const fa = attestedFinding(keyA);
    gd.put(fa);
    await waitFor(() => gd.archivedIds().includes(fa.id as string), 'finding A archived', 20_000, 100);
    const fb = attestedFinding(keyB);
    gd.put(fb);
    const follower = replicas.find((r) => r !== first)!;
    const pushed = await httpRequest(
      follower.ingest,
      'POST',
      '/v1/guardduty',
      { 'content-type': 'application/json' },
      Buffer.from(JSON.stringify(guardDutyEventBridge(fb))),
    );
    expect(pushed.status).toBe(200);
    await waitFor(() => gd.archivedIds().includes(fb.id as string), 'finding B archived', 20_000, 100);
    const archiveCallers = await Promise.all(
      replicas.map((r) => metric(r, 'egress_witness_detector_guardduty_archive_calls_total', { outcome: 'success' })),
    );
    expect(archiveCallers.filter((n) => n > 0)).toHaveLength(1);
    expect(archiveCallers[replicas.indexOf(first!)]).toBe(2);
    expect(
      (await Promise.all(alive().map((r) => metric(r, 'egress_witness_detector_guardduty_polls_total')))).filter((n) => n > 0),
    ).toHaveLength(1);

    // The leader is killed: another takes over within leader_check (plus slack for a loaded machine).
    first!.child.kill('SIGKILL');
    await new Promise((r) => first!.child.once('exit', r));
    const killedAt = Date.now();
    await waitFor(async () => (await leaders()).length === 1, 'a new leader', LEADER_CHECK_MS + 9_000, 50);
    const takeoverMs = Date.now() - killedAt;
    const [next] = await leaders();
    expect(next).not.toBe(first);
    await waitFor(() => next!.lines.some((l) => l.event === 'leader_gained'), 'the leader_gained line', 5_000);
    console.log(`leader takeover after SIGKILL: ${takeoverMs} ms (leader_check ${LEADER_CHECK_MS} ms)`);

    // The new leader polls and archives; the trail goes on through the two left.
    const fc = attestedFinding(keyC);
    gd.put(fc);
    const fresh = batchOf([
      heartbeat('gw1', Date.now() - 2 * SEC),
      observation({ accessKeyId: sighted, at: Date.now() - 60 * SEC, span: 55 * SEC }),
    ]);
    expect((await postBatch(next!, fresh)).status).toBe(200);
    const moreIds = await sendTrail(6, 'after', sighted);
    await waitFor(() => gd.archivedIds().includes(fc.id as string), 'finding C archived by the new leader', 20_000, 100);
    await settled();

    // Every event decided once; none logged as decided twice by the three processes.
    const all = [...eventIds, ...moreIds];
    const decisions = await querySchema<{ subject_id: string; disposition: string; rule: string }>(
      schema,
      "SELECT subject_id, disposition, rule FROM decisions WHERE kind = 'cloudtrail'",
    );
    expect(decisions.map((d) => d.subject_id).sort()).toEqual([...all].sort());
    expect(new Set(decisions.map((d) => d.rule))).toEqual(new Set(['attested', 'external', 'gateway-unattested']));
    const loggedIds = () => replicas.flatMap((r) => r.lines.filter((l) => l.event === 'decision').map((l) => l.event_id as string));
    // Decisions made after the kill are told by a process still running (the line follows the commit).
    await waitFor(
      () => {
        const told = new Set(loggedIds());
        return moreIds.every((id) => told.has(id));
      },
      'the decision lines of the events sent after the kill',
      10_000,
      50,
    );
    const logged = loggedIds();
    expect(logged.length).toBe(new Set(logged).size);

    // The findings the three merged into at once count every occurrence (no update lost).
    const external = await querySchema<{ access_key_id: string; n: number }>(
      schema,
      "SELECT access_key_id, COUNT(*)::int AS n FROM decisions WHERE kind = 'cloudtrail' AND rule = 'external' GROUP BY access_key_id",
    );
    expect(external.map((e) => e.access_key_id).sort()).toEqual([...EXTERNAL_KEYS].sort());
    const findings = await querySchema<{ finding: string }>(schema, 'SELECT finding FROM findings');
    for (const e of external) {
      const f = findings.map((r) => JSON.parse(r.finding) as JsonDoc).find((x) => x.egressWitness.accessKeyId === e.access_key_id);
      expect(f?.service.count).toBe(e.n);
    }

    // Each archivable finding archived by one call, once.
    const archived = gd.archivedIds();
    expect(archived.filter((id) => [fa.id, fb.id, fc.id].includes(id)).sort()).toEqual([fa.id, fb.id, fc.id].sort());
    expect(archived.length).toBe(new Set(archived).size);
  },
  240_000,
);
