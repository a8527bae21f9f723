/**
 * One CloudTrail event ID, several copies: a copy pushed over HTTP (EventBridge,
 * a relay, anyone with the token) must not hide the trail's own copy (the log
 * files of the watch directory). The trail's copy is decided when it differs —
 * superseding what the pushed copy decided — and every disagreement between
 * copies is recorded: counted, logged and kept in the store.
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import {
  cloudTrailEventBridge,
  cloudTrailRecord,
  EXTERNAL_IP,
  GW1_IP,
  latestFindings,
  newAccessKeyId,
  sleep,
  startDetector,
  waitFor,
  writeSecretFile,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';
import { existsSync, readFileSync } from 'node:fs';

const TOKEN = 'event-identity-token-3e9d7c1b5a';
const AUTH = { authorization: `Bearer ${TOKEN}` };

let h: DetectorHarness;
let watchDir: string;
let fileNo = 0;

beforeAll(async () => {
  h = await startDetector({
    config: async (dir) => {
      await writeSecretFile(join(dir, 'token'), TOKEN);
      return {
        cloudtrail: { watch_dir: join(dir, 'cloudtrail'), poll_interval: '150ms' },
        ingest: { token_file: join(dir, 'token') },
        correlation: { grace: '4s', window: '60s' },
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

async function conflictsOf(eventId: string) {
  return (await h.app.db.listEventConflicts({ sinceMs: 0, limit: 1_000 })).filter((c) => c.eventId === eventId);
}

async function conflicts(resolution: string): Promise<number> {
  return h.metric('egress_witness_detector_cloudtrail_conflicts_total', { resolution });
}

/** Delivers records as the trail does: one settled log file in the watch directory, then waits until it is processed. */
async function fromTrail(...records: JsonDoc[]): Promise<void> {
  const path = join(watchDir, 'AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27', `111122223333_CloudTrail_us-east-1_${++fileNo}.json`);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify({ Records: records }));
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
  await waitFor(() => h.logs.find('cloudtrail_file_processed').some((l) => l.path === path), `${path} processed`);
}

async function pushed(...records: JsonDoc[]) {
  const a = await h.postJson('/v1/cloudtrail', records.map(cloudTrailEventBridge), AUTH);
  expect(a.status, a.text).toBe(200);
  return a.json;
}

function findingsFor(key: string): JsonDoc[] {
  const text = existsSync(h.findingsFile) ? readFileSync(h.findingsFile, 'utf8') : '';
  return [...latestFindings(text).values()].filter((f) => f.resource?.accessKeyDetails?.accessKeyId === key);
}

async function stillServing(): Promise<void> {
  const a = await h.signedPost(h.batch('gw1', [heartbeat('gw1', Date.now())]));
  expect(a.status, a.text).toBe(200);
}

describe('a pushed copy and the trail copy of one event', () => {
  it('a pushed copy claiming "AWS Internal" does not hide the trail copy from an external address: the trail copy is decided, the conflict recorded', async () => {
    const key = newAccessKeyId();
    const real = cloudTrailRecord({ key, sourceIp: EXTERNAL_IP, time: Date.now() - 60_000 });
    const forged = { ...real, sourceIPAddress: 'AWS Internal' };
    const before = await conflicts('superseded');

    expect(await pushed(forged)).toEqual({ accepted: true, records: 1, decided: 1 });
    expect(await decisionFor(real.eventID)).toMatchObject({ disposition: 'ignored', rule: 'aws-internal' });

    await fromTrail(real);
    expect(await decisionFor(real.eventID)).toMatchObject({ disposition: 'finding', rule: 'external', sourceIp: EXTERNAL_IP });
    await waitFor(() => findingsFor(key).length === 1, 'the finding in findings.file');
    expect(findingsFor(key)[0]).toMatchObject({
      service: { action: { awsApiCallAction: { remoteIpDetails: { ipAddressV4: EXTERNAL_IP } } } },
    });
    expect(await conflicts('superseded')).toBe(before + 1);
    expect(await conflictsOf(real.eventID)).toEqual([
      expect.objectContaining({
        eventId: real.eventID,
        resolution: 'superseded',
        kept: expect.objectContaining({ origin: 'trail', sourceIPAddress: EXTERNAL_IP }),
        dropped: expect.objectContaining({ origin: 'pushed', sourceIPAddress: 'AWS Internal' }),
        supersededDecision: { disposition: 'ignored', rule: 'aws-internal' },
      }),
    ]);
    expect(h.logs.find('cloudtrail_event_conflict').at(-1)).toMatchObject({
      event_id: real.eventID,
      resolution: 'superseded',
      kept_origin: 'trail',
      dropped_origin: 'pushed',
    });
    await stillServing();
  });

  it('the trail copy first: a later pushed copy that differs changes nothing and is recorded as rejected', async () => {
    const key = newAccessKeyId();
    const real = cloudTrailRecord({ key, sourceIp: EXTERNAL_IP, time: Date.now() - 60_000 });
    await fromTrail(real);
    expect(await decisionFor(real.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });
    const before = await conflicts('rejected');
    // A copy from the gateway's address with a sighting to go with it: would be suppressed if believed.
    await h.ingest('gw1', [observation({ accessKeyId: key, at: Date.now() - 62_000, span: 4_000 })]);
    expect(await pushed({ ...real, sourceIPAddress: GW1_IP })).toEqual({ accepted: true, records: 1, conflict: 1 });
    expect(await decisionFor(real.eventID)).toMatchObject({ disposition: 'finding', rule: 'external', sourceIp: EXTERNAL_IP });
    expect(await conflicts('rejected')).toBe(before + 1);
    expect(await conflictsOf(real.eventID)).toEqual([
      expect.objectContaining({
        resolution: 'rejected',
        kept: expect.objectContaining({ origin: 'trail', sourceIPAddress: EXTERNAL_IP }),
        dropped: expect.objectContaining({ origin: 'pushed', sourceIPAddress: GW1_IP }),
        supersededDecision: null,
      }),
    ]);
  });

  it('the same content pushed, then from the trail: one decision, no conflict, and the trail now vouches for the kept copy', async () => {
    const real = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: Date.now() - 60_000 });
    expect(await pushed(real)).toMatchObject({ decided: 1 });
    expect(await h.app.db.keptCopy(real.eventID)).toMatchObject({ origin: 'pushed' });
    const decidedAt = (await decisionFor(real.eventID))!.decidedMs;
    await fromTrail(real);
    expect((await decisionFor(real.eventID))!.decidedMs).toBe(decidedAt);
    expect(await conflictsOf(real.eventID)).toEqual([]);
    expect(await h.app.db.keptCopy(real.eventID)).toMatchObject({ origin: 'trail' });
    // And a second push of it is the plain duplicate it always was.
    expect(await pushed(real)).toEqual({ accepted: true, records: 1, duplicate: 1 });
  });

  it('a pushed copy waiting out its grace period is replaced by the trail copy: no finding from the pushed copy later', async () => {
    const key = newAccessKeyId();
    const now = Date.now();
    const real = cloudTrailRecord({ key, sourceIp: GW1_IP, time: now - 500 });
    await h.ingest('gw1', [observation({ accessKeyId: key, at: now - 2_000, span: 2_000 })]);
    expect(await pushed({ ...real, sourceIPAddress: EXTERNAL_IP })).toMatchObject({ pending: 1 });
    await fromTrail(real);
    expect(await decisionFor(real.eventID)).toMatchObject({ disposition: 'suppressed', rule: 'attested', sourceIp: GW1_IP });
    expect(await conflictsOf(real.eventID)).toEqual([expect.objectContaining({ resolution: 'superseded', supersededDecision: null })]);
    // Past the pushed copy's due time (eventTime + 4 s grace) and a few ticks: nothing from it surfaces.
    await sleep(Math.max(0, now + 6_000 - Date.now()));
    expect(await decisionFor(real.eventID)).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
    expect(findingsFor(key)).toEqual([]);
    expect(await h.app.db.pendingCount()).toBe(0);
  });
});
