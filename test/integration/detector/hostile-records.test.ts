/**
 * One hostile record must not stop the detector: a CloudTrail record or a
 * GuardDuty finding nested thousands of levels deep (valid JSON, which
 * JSON.stringify cannot write back) is kept in a truncated form and counted,
 * on the watch directory and on the HTTP routes; the records and files after
 * it go on; the daemon keeps answering telemetry; and a file that stopped the
 * daemon before is quarantined instead of read in a loop.
 */
import { readFileSync } from 'node:fs';
import { mkdir, utimes, writeFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat } from '../../unit/detector/scenario.js';
import { TRUNCATED_MARKER } from '../../../common/json/bounded-depth.js';
import { MAX_FILE_ATTEMPTS } from '../../../detector/engine/cloudtrail-watcher.js';
import {
  cloudTrailEventBridge,
  cloudTrailRecord,
  EXTERNAL_IP,
  guardDutyEventBridge,
  httpRequest,
  newAccessKeyId,
  sleep,
  startDetector,
  waitFor,
  writeSecretFile,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';

const TOKEN = 'hostile-records-token-7d0c1e9b2a';
const AUTH = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const LEVELS = 6_000;

/** A value nested LEVELS deep, as text: JSON.stringify of it would throw. */
const DEEP = `${'{"filter":'.repeat(LEVELS)}{}${'}'.repeat(LEVELS)}`;

/** A record's JSON with `field` replaced by the deep value. */
function withDeep(doc: JsonDoc, field: string): string {
  const { [field]: _dropped, ...rest } = doc;
  return `${JSON.stringify(rest).slice(0, -1)},"${field}":${DEEP}}`;
}

let h: DetectorHarness;
let watchDir: string;

beforeAll(async () => {
  h = await startDetector({
    config: async (dir) => {
      await writeSecretFile(join(dir, 'token'), TOKEN);
      return {
        cloudtrail: { watch_dir: join(dir, 'cloudtrail'), poll_interval: '150ms' },
        ingest: { token_file: join(dir, 'token') },
        correlation: { grace: '2s' },
        guardduty: { webhook_kept: true },
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

async function writeSettled(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

function processed(path: string) {
  return h.logs.find('cloudtrail_file_processed').filter((l) => l.path === path);
}

/** A valid signed batch still gets 200: the daemon is up and serving. */
async function stillServing(): Promise<void> {
  const a = await h.signedPost(h.batch('gw1', [heartbeat('gw1', Date.now())]));
  expect(a.status, a.text).toBe(200);
}

describe('a CloudTrail record nested thousands of levels deep', () => {
  it('in the watch directory: kept truncated and decided after its grace period; the next record and the next file go on; nothing is read twice after a restart', async () => {
    const now = Date.now();
    // Recent enough to wait out the grace period in the store: the write that used to throw.
    const deep = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: now });
    const next = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: now - 30_000 });
    const later = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: now - 20_000 });
    const day = join(watchDir, 'AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27');
    const first = join(day, '111122223333_CloudTrail_us-east-1_20261127T1200Z_deep.json');
    const second = join(day, '111122223333_CloudTrail_us-east-1_20261127T1205Z_next.json');
    const truncatedBefore = await h.metric('egress_witness_detector_truncated_records_total', { input: 'cloudtrail' });

    await writeSettled(first, `{"Records":[${withDeep(deep, 'requestParameters')},${JSON.stringify(next)}]}`);
    await writeSettled(second, JSON.stringify({ Records: [later] }));

    await waitFor(() => processed(first).length === 1 && processed(second).length === 1, 'both files processed');
    expect(processed(first)[0]).toMatchObject({ records: 2, invalid: 0, failed: 0 });
    expect(await h.metric('egress_witness_detector_truncated_records_total', { input: 'cloudtrail' })).toBe(truncatedBefore + 1);
    expect(await decisionFor(next.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });
    expect(await decisionFor(later.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });
    await stillServing();
    const decided = await waitFor(async () => await decisionFor(deep.eventID), 'the deep record decided after its grace period', 10_000);
    expect(decided).toMatchObject({ disposition: 'finding', rule: 'external', sourceIp: EXTERNAL_IP });
    await stillServing();

    await h.restart();
    const marker = join(watchDir, 'zz-after-restart.json');
    await writeSettled(marker, JSON.stringify({ Records: [] }));
    await waitFor(() => processed(marker).length === 1, 'a scan after the restart');
    expect(processed(first)).toEqual([]);
    expect(h.logs.find('cloudtrail_file_failed')).toEqual([]);
    await stillServing();
  });

  it('on POST /v1/cloudtrail: 200 with the records counted, not a 500', async () => {
    const now = Date.now();
    const deep = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: now });
    const plain = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: now - 30_000 });
    const { detail: _record, ...envelope } = cloudTrailEventBridge(deep);
    const deepEnvelope = `${JSON.stringify(envelope).slice(0, -1)},"detail":${withDeep(deep, 'requestParameters')}}`;
    const body = `[${deepEnvelope},${JSON.stringify(cloudTrailEventBridge(plain))}]`;
    const a = await httpRequest(h.ports.ingest, 'POST', '/v1/cloudtrail', AUTH, Buffer.from(body));
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, records: 2, pending: 1, decided: 1 });
    expect(await decisionFor(plain.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });
    await waitFor(async () => await decisionFor(deep.eventID), 'the deep record decided after its grace period', 10_000);
    await stillServing();
  });
});

describe('a GuardDuty finding nested thousands of levels deep', () => {
  it('on POST /v1/guardduty, in the SDK shape and the wire shape: read with its deep part cut off, counted, kept unconfirmed; decided when GuardDuty returns it', async () => {
    const before = await h.metric('egress_witness_detector_truncated_records_total', { input: 'guardduty' });
    const sdkShaped = `{"Id":"deep-sdk-finding","Type":"Recon:EC2/PortProbeUnprotectedPort","Service":${DEEP}}`;
    const wire = guardDutyEventBridge({
      id: 'deep-wire-finding',
      type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
      updatedAt: new Date().toISOString(),
    });
    const wireText = withDeep(wire, 'unused').replace('"unused":', '"resources":');
    const a = await httpRequest(h.ports.ingest, 'POST', '/v1/guardduty', AUTH, Buffer.from(`[${sdkShaped},${wireText}]`));
    expect(a.status, a.text).toBe(200);
    // No GuardDuty detector is configured here to read them back from: kept, undecided.
    expect(a.json).toEqual({ accepted: true, findings: 2, unconfirmed: 2 });
    expect(await h.metric('egress_witness_detector_truncated_records_total', { input: 'guardduty' })).toBe(before + 2);
    await stillServing();
    // The same depth in a finding as GuardDuty returns it (GetFindings, polling) is decided on its truncated form.
    const fromGuardDuty = await h.app.guarddutyProcessor.process(JSON.parse(sdkShaped) as unknown);
    expect(fromGuardDuty).toMatchObject({ kind: 'decided', decision: { decision: 'keep', reason: 'not-outside-aws-type' } });
    expect(await h.metric('egress_witness_detector_truncated_records_total', { input: 'guardduty' })).toBe(before + 3);
    const kept = await waitFor(() => {
      const lines = readFileSync(h.findingsFile, 'utf8').split('\n').filter(Boolean);
      return lines.map((l) => JSON.parse(l) as JsonDoc).find((d) => d.kind === 'guardduty-kept' && d.finding.id === 'deep-sdk-finding');
    }, 'the kept finding in findings.file');
    expect(JSON.stringify(kept)).toContain(TRUNCATED_MARKER);
    await stillServing();
  });
});

describe('a file that stopped the daemon while it was being read', () => {
  let q: DetectorHarness;
  let stuck: string;
  let after: string;

  beforeAll(async () => {
    q = await startDetector({
      config: async (dir) => {
        const watch = join(dir, 'cloudtrail');
        stuck = join(watch, 'a-stuck.json');
        after = join(watch, 'b-after.json');
        await writeSettled(stuck, JSON.stringify({ Records: [cloudTrailRecord({ sourceIp: EXTERNAL_IP, time: Date.now() - 60_000 })] }));
        await writeSettled(after, JSON.stringify({ Records: [cloudTrailRecord({ sourceIp: EXTERNAL_IP, time: Date.now() - 60_000 })] }));
        return { cloudtrail: { watch_dir: watch, poll_interval: '150ms' } };
      },
      // Earlier runs began reading `stuck` MAX_FILE_ATTEMPTS times and never finished (each died on it).
      seedStore: async (store) => {
        const st = await stat(stuck);
        for (let i = 0; i < MAX_FILE_ATTEMPTS; i++) await store.fileAttempt(stuck, st.size, st.mtimeMs, Date.now());
      },
    });
  });

  afterAll(async () => {
    await q?.cleanup();
  });

  it('is quarantined: marked failed with its reason and never read, while the next file is processed', async () => {
    await waitFor(() => q.logs.find('cloudtrail_file_processed').some((l) => l.path === after), 'the next file processed');
    const failed = q.logs.find('cloudtrail_file_failed');
    expect(failed).toEqual([expect.objectContaining({ path: stuck, reason: expect.stringMatching(/stopped 3 times .*quarantined/) })]);
    expect(q.logs.find('cloudtrail_file_processed').filter((l) => l.path === stuck)).toEqual([]);
    await sleep(400);
    expect(q.logs.find('cloudtrail_file_failed')).toHaveLength(1);
    expect(await q.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'failed' })).toBe(1);
  });
});
