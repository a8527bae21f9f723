/**
 * The user's own GuardDuty findings, through the running detector and the
 * REAL @aws-sdk/client-guardduty (sdkGuardDutyApi, built by the detector from
 * guardduty.endpoint and guardduty.ca_file) against a loopback HTTPS
 * GuardDuty speaking the restJson1 wire protocol (test/helpers/fake-guardduty.ts).
 *
 * Fixtures (test/fixtures/guardduty/get-findings-response.json), all OutsideAWS
 * over the span 12:01:07–12:41:07 unless noted:
 *
 *   a7ec…  ASIAGDATTESTED…  203.0.113.10 (gw1)    gw1 saw the key at both ends      → archive attested
 *   b2c4…  ASIAGDEXTERNAL…  203.0.113.10 (gw1)    …and CloudTrail from elsewhere    → keep external-use-seen
 *   c3d5…  ASIAGDSILENTGW…  192.0.2.5   (gw3)     gw3 sent nothing                  → keep gateway-silent
 *   d4e6…  ASIAGDNOTGATEWAY 198.51.100.200        no gateway's address              → keep not-a-gateway-address
 *   e5f7…  ASIAGDUNROUTED…  203.0.113.10 (gw1)    also seen from an unrouted client → keep unrouted-client
 *   f6a8…  (no key, no remote IP)                                                    → keep malformed
 *   1a2b…  InsideAWS type                         not listed (criterion type)
 *   2b3c…  already archived                       not listed (criterion service.archived)
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkGuardDutyApi } from '../../../detector/guardduty/guardduty-api.js';
import type { GuardDutyDecision } from '../../../detector/guardduty/decide.js';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import {
  cloudTrailRecord,
  deepMerge,
  EXTERNAL_IP,
  guardDutyEventBridge,
  sleep,
  startDetector,
  validDetectorConfig,
  waitFor,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';
import { startFakeGuardDuty, type FakeGuardDuty, type FakeGuardDutyCall } from '../../helpers/fake-guardduty.js';

const DETECTOR_ID = '12abc34d567e8fa901bc2d34e56789f0';
const OUTSIDE_AWS = 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS';
const TEST_ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const FIRST = Date.parse('2024-05-01T12:01:07.000Z');
const LAST = Date.parse('2024-05-01T12:41:07.000Z');
const SEC = 1000;
const MIN = 60 * SEC;

const FIXTURES = new URL('../../fixtures/guardduty/', import.meta.url);
const ALL: JsonDoc[] = (JSON.parse(readFileSync(new URL('get-findings-response.json', FIXTURES), 'utf8')) as { findings: JsonDoc[] })
  .findings;
const EVENTBRIDGE: JsonDoc = JSON.parse(readFileSync(new URL('eventbridge-guardduty-finding.json', FIXTURES), 'utf8')) as JsonDoc;

const ID = {
  attested: 'a7ec7d0f1a2b3c4d5e6f708192a3b4c5',
  external: 'b2c4e6f8a0b2c4d6e8f0a2b4c6d8e0f2',
  silent: 'c3d5e7f9b1c3d5e7f9b1c3d5e7f9b1c3',
  notGateway: 'd4e6f8a0c2d4e6f8a0c2d4e6f8a0c2d4',
  unrouted: 'e5f7a9b1d3e5f7a9b1d3e5f7a9b1d3e5',
  malformed: 'f6a8b0c2e4f6a8b0c2e4f6a8b0c2e4f6',
  otherType: '1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d',
  archived: '2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e',
  eventBridge: '3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f',
};
const LISTED = [ID.attested, ID.external, ID.silent, ID.notGateway, ID.unrouted, ID.malformed];
const EXPECTED: Record<string, [GuardDutyDecision['decision'], GuardDutyDecision['reason'], string | null]> = {
  [ID.attested]: ['archive', 'attested', 'gw1'],
  [ID.external]: ['keep', 'external-use-seen', 'gw1'],
  [ID.silent]: ['keep', 'gateway-silent', 'gw3'],
  [ID.notGateway]: ['keep', 'not-a-gateway-address', null],
  [ID.unrouted]: ['keep', 'unrouted-client', 'gw1'],
  [ID.malformed]: ['keep', 'malformed', null],
};

const savedEnv: Record<string, string | undefined> = {};
function useTestCredentials(): void {
  const env = {
    AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  for (const [k, v] of Object.entries(env)) {
    savedEnv[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}
function restoreEnv(): void {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

interface Rig {
  h: DetectorHarness;
  fake: FakeGuardDuty;
  /** Calls the explicit first poll made. */
  firstPoll: FakeGuardDutyCall[];
  firstPollCount: number;
}

/**
 * Detector (mode given) + fake GuardDuty, evidence stored, then the findings
 * loaded into the fake and one poll made. The detector's own poll at start
 * runs first against an empty fake, so no finding is decided before its evidence is in.
 */
async function rig(mode: 'archive' | 'report'): Promise<Rig> {
  const fake = await startFakeGuardDuty({ detectorId: DETECTOR_ID, pageSize: 2 });
  const h = await startDetector({
    config: async (dir) => {
      await writeFile(join(dir, 'guardduty-ca.pem'), fake.caPem);
      return {
        store: { retention: '100000h' },
        correlation: { window: '5m', heartbeat_stale: '2m', grace: '300ms' },
        guardduty: {
          mode,
          region: 'us-east-1',
          detector_id: DETECTOR_ID,
          endpoint: fake.endpoint,
          ca_file: join(dir, 'guardduty-ca.pem'),
          poll_interval: '1h',
        },
      };
    },
  });
  await waitFor(
    async () => (await h.metric('egress_witness_detector_guardduty_polls_total', { outcome: 'success' })) >= 1,
    'the start-up poll',
  );
  expect(fake.calls.map((c) => c.op)).toEqual(['ListFindings']);

  const routed = (key: string) => [
    observation({ accessKeyId: key, at: FIRST - 20 * SEC }),
    observation({ accessKeyId: key, at: LAST - 40 * SEC }),
  ];
  await h.ingest('gw1', [
    ...[FIRST - 30 * SEC, FIRST + 10 * MIN, FIRST + 20 * MIN, FIRST + 30 * MIN, LAST - 30 * SEC, LAST + 30 * SEC].map((t) =>
      heartbeat('gw1', t),
    ),
    ...routed('ASIAGDATTESTED234567'),
    ...routed('ASIAGDEXTERNAL234567'),
    ...routed('ASIAGDUNROUTED234567'),
    ...routed('ASIAGDEVENTBRIDGE234'),
    observation({ accessKeyId: 'ASIAGDUNROUTED234567', clientIp: '192.168.77.7', network: null, at: FIRST + 5 * MIN }),
  ]);
  // CloudTrail shows ASIAGDEXTERNAL… used from an address that is no gateway's, inside the span.
  const ct = await h.postJson(
    '/v1/cloudtrail',
    cloudTrailRecord({ key: 'ASIAGDEXTERNAL234567', sourceIp: EXTERNAL_IP, time: FIRST + 10 * MIN }),
  );
  expect(ct.json).toMatchObject({ records: 1, decided: 1 });

  fake.put(...ALL);
  const from = fake.calls.length;
  const firstPollCount = await h.app.guarddutyProcessor.poll();
  return { h, fake, firstPoll: fake.calls.slice(from), firstPollCount };
}

async function guardDutyDecisions(h: DetectorHarness) {
  return (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 1000 })).filter((d) => d.kind === 'guardduty');
}

async function latestDecisionOf(h: DetectorHarness, findingId: string): Promise<GuardDutyDecision | null> {
  const d = (await guardDutyDecisions(h)).find((x) => x.subjectId.startsWith(`${findingId}@`));
  return d ? (d.detail as GuardDutyDecision) : null;
}

beforeAll(() => useTestCredentials());
afterAll(() => restoreEnv());

describe('sdkGuardDutyApi against the fake endpoint', () => {
  let fake: FakeGuardDuty;
  beforeAll(async () => {
    fake = await startFakeGuardDuty({ detectorId: DETECTOR_ID, pageSize: 4 });
    fake.put(...ALL);
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('lists the unarchived OutsideAWS findings page by page and returns them in the wire shape', async () => {
    const api = sdkGuardDutyApi({ endpoint: fake.endpoint, extraCa: fake.caPem });
    try {
      const got = (await api.listOutsideAwsFindings(DETECTOR_ID, 'us-east-1')) as JsonDoc[];
      expect(got.map((f) => String(f.id))).toEqual(LISTED);
      const attested = got[0]!;
      const source = ALL.find((f) => f.id === ID.attested)!;
      expect(attested).toMatchObject({
        id: source.id,
        type: OUTSIDE_AWS,
        region: 'us-east-1',
        accountId: '111122223333',
        severity: 8,
        updatedAt: source.updatedAt,
        resource: { accessKeyDetails: { accessKeyId: 'ASIAGDATTESTED234567' }, instanceDetails: { instanceId: 'i-0a1b2c3d4e5f67890' } },
        service: {
          detectorId: DETECTOR_ID,
          eventFirstSeen: source.service.eventFirstSeen,
          eventLastSeen: source.service.eventLastSeen,
          count: 14,
          archived: false,
          action: { awsApiCallAction: { remoteIpDetails: { ipAddressV4: '203.0.113.10' } } },
        },
      });
      const lists = fake.calls.filter((c) => c.op === 'ListFindings');
      expect(lists.map((c): unknown => c.body.nextToken ?? null)).toEqual([null, expect.any(String)]);
      expect(lists[0]!.body).toMatchObject({
        maxResults: 50,
        findingCriteria: { criterion: { type: { equals: [OUTSIDE_AWS] }, 'service.archived': { equals: ['false'] } } },
      });
      const gets = fake.calls.filter((c) => c.op === 'GetFindings');
      expect(gets.map((c): unknown => c.body.findingIds)).toEqual([LISTED]);
      for (const c of fake.calls)
        expect(c.authorization).toMatch(
          new RegExp(`^AWS4-HMAC-SHA256 Credential=${TEST_ACCESS_KEY}/\\d{8}/us-east-1/guardduty/aws4_request, `),
        );
    } finally {
      api.close();
    }
  });

  it('archives in calls of at most 50 ids', async () => {
    const api = sdkGuardDutyApi({ endpoint: fake.endpoint, extraCa: fake.caPem });
    const ids = Array.from({ length: 120 }, (_, i) => i.toString(16).padStart(32, '0'));
    try {
      const before = fake.calls.length;
      await api.archive(DETECTOR_ID, 'us-east-1', ids);
      const calls = fake.calls.slice(before);
      expect(calls.map((c): unknown[] => [c.op, c.path, c.body.findingIds.length])).toEqual([
        ['ArchiveFindings', `/detector/${DETECTOR_ID}/findings/archive`, 50],
        ['ArchiveFindings', `/detector/${DETECTOR_ID}/findings/archive`, 50],
        ['ArchiveFindings', `/detector/${DETECTOR_ID}/findings/archive`, 20],
      ]);
      expect(calls.flatMap((c) => c.body.findingIds as string[])).toEqual(ids);
    } finally {
      api.close();
    }
  });

  it('verifies the endpoint certificate: without the extra CA the call fails', async () => {
    const api = sdkGuardDutyApi({ endpoint: fake.endpoint, extraCa: null, maxAttempts: 1 });
    try {
      const before = fake.calls.length;
      await expect(api.listOutsideAwsFindings(DETECTOR_ID, 'us-east-1')).rejects.toThrow(/certificate/i);
      expect(fake.calls.length).toBe(before);
    } finally {
      api.close();
    }
  });
});

describe('guardduty.mode: archive', () => {
  let r: Rig;
  beforeAll(async () => {
    r = await rig('archive');
  });
  afterAll(async () => {
    await r?.h.cleanup();
    await r?.fake.close();
  });

  it('polls ListFindings (paged, OutsideAWS and unarchived only) and GetFindings', () => {
    expect(r.firstPollCount).toBe(LISTED.length);
    const lists = r.firstPoll.filter((c) => c.op === 'ListFindings');
    expect(lists).toHaveLength(3);
    expect(lists[0]!.body.nextToken ?? null).toBeNull();
    expect(lists[1]!.body.nextToken).toEqual(expect.any(String));
    expect(lists[2]!.body.nextToken).not.toBe(lists[1]!.body.nextToken);
    const gets = r.firstPoll.filter((c) => c.op === 'GetFindings');
    expect(gets[0]!.body.findingIds).toEqual(LISTED);
    // …and once more for the one finding about to be archived (its read-back, below).
    expect(gets.slice(1).map((c): unknown => c.body.findingIds)).toEqual([[ID.attested]]);
    expect(r.firstPoll.every((c) => c.status === 200)).toBe(true);
  });

  it('decides every finding with its reason and evidence', async () => {
    for (const [id, [decision, reason, gatewayId]] of Object.entries(EXPECTED)) {
      expect({ id, ...(await latestDecisionOf(r.h, id)) }, id).toMatchObject({ id, findingId: id, decision, reason, gatewayId });
    }
    const attested = (await latestDecisionOf(r.h, ID.attested))!;
    expect(attested.evidence.start[0]).toMatchObject({ gatewayId: 'gw1', clientIp: '10.20.3.4', network: 'vpc-prod' });
    expect(attested.evidence.end[0]).toMatchObject({ gatewayId: 'gw1', clientIp: '10.20.3.4', network: 'vpc-prod' });
    expect(attested).toMatchObject({
      accessKeyId: 'ASIAGDATTESTED234567',
      remoteIp: '203.0.113.10',
      spanStart: '2024-05-01T12:01:07.000Z',
      spanEnd: '2024-05-01T12:41:07.000Z',
    });
    expect((await latestDecisionOf(r.h, ID.external))!.evidence.externalEvents).toEqual([
      expect.objectContaining({ sourceIPAddress: EXTERNAL_IP }),
    ]);
    expect((await latestDecisionOf(r.h, ID.unrouted))!.evidence.start[0]).toMatchObject({ clientIp: '192.168.77.7', network: null });
    expect(await latestDecisionOf(r.h, ID.otherType)).toBeNull();
    expect(await latestDecisionOf(r.h, ID.archived)).toBeNull();
  });

  it('archives exactly the attested finding via ArchiveFindings, right after reading it back from the configured detector', async () => {
    expect(r.fake.archivedIds()).toEqual([ID.attested]);
    const at = r.fake.calls.findIndex((c) => c.op === 'ArchiveFindings');
    const call = r.fake.calls[at]!;
    expect(call).toMatchObject({ path: `/detector/${DETECTOR_ID}/findings/archive`, body: { findingIds: [ID.attested] }, status: 200 });
    expect(r.fake.calls[at - 1]).toMatchObject({
      op: 'GetFindings',
      path: `/detector/${DETECTOR_ID}/findings/get`,
      body: { findingIds: [ID.attested] },
      status: 200,
    });
    expect(r.fake.finding(ID.attested)!.service.archived).toBe(true);
    expect(await r.h.app.db.guardDutyArchived(ID.attested)).toBe(true);
    expect(await r.h.metric('egress_witness_detector_guardduty_archive_calls_total', { outcome: 'success' })).toBe(1);
    expect(await r.h.metric('egress_witness_detector_guardduty_findings_total', { decision: 'archive', reason: 'attested' })).toBe(1);
    for (const reason of ['external-use-seen', 'gateway-silent', 'not-a-gateway-address', 'unrouted-client', 'malformed']) {
      expect(await r.h.metric('egress_witness_detector_guardduty_findings_total', { decision: 'keep', reason }), reason).toBe(1);
    }
    expect(r.h.logs.find('guardduty_archived').map((l) => l.finding_id)).toEqual([ID.attested]);
  });

  it('is idempotent: a second poll archives nothing new, nor does a redelivery of the archived finding', async () => {
    const decisionsBefore = (await guardDutyDecisions(r.h)).length;
    expect(await r.h.app.guarddutyProcessor.poll()).toBe(LISTED.length - 1);
    expect(r.fake.archivedIds()).toEqual([ID.attested]);
    expect(await guardDutyDecisions(r.h)).toHaveLength(decisionsBefore);

    // GuardDuty updated the finding (new updatedAt) and EventBridge delivers it again.
    const again = structuredClone(ALL.find((f) => f.id === ID.attested)!);
    again.updatedAt = '2024-05-01T13:02:00.000Z';
    again.service.count = 15;
    r.fake.put(again);
    const a = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(again));
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, findings: 1, archive: 1 });
    expect(await guardDutyDecisions(r.h)).toHaveLength(decisionsBefore + 1);
    await sleep(50);
    expect(r.fake.archivedIds()).toEqual([ID.attested]);
    expect(await r.h.metric('egress_witness_detector_guardduty_archive_calls_total', { outcome: 'success' })).toBe(1);

    // The very same event twice is seen once.
    const same = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(again));
    expect(same.json).toEqual({ accepted: true, findings: 1, seen: 1 });
  });

  it('EventBridge input: archives an attested finding (retrying a failed ArchiveFindings) and skips what is not a GuardDuty finding', async () => {
    r.fake.put(EVENTBRIDGE.detail);
    r.fake.failNext('ArchiveFindings', 400, 'BadRequestException');
    const notGuardDuty = { ...EVENTBRIDGE, source: 'aws.securityhub', 'detail-type': 'Security Hub Findings - Imported' };
    const noId = { ...EVENTBRIDGE, detail: { ...EVENTBRIDGE.detail, id: undefined } };
    const skippedBefore = await r.h.metric('egress_witness_detector_guardduty_findings_total', { decision: 'skipped', reason: 'invalid' });
    const a = await r.h.postJson('/v1/guardduty', [EVENTBRIDGE, notGuardDuty, noId]);
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, findings: 3, archive: 1, invalid: 2 });
    expect(await r.h.metric('egress_witness_detector_guardduty_findings_total', { decision: 'skipped', reason: 'invalid' })).toBe(
      skippedBefore + 2,
    );
    expect(await r.h.metric('egress_witness_detector_guardduty_archive_calls_total', { outcome: 'failure' })).toBe(1);
    expect(await r.h.app.db.guardDutyArchived(ID.eventBridge)).toBe(false);
    // The fake records the call before the detector has read the answer and marked the finding.
    await waitFor(
      async () => r.fake.archivedIds().includes(ID.eventBridge) && (await r.h.app.db.guardDutyArchived(ID.eventBridge)),
      'the retried ArchiveFindings',
      8_000,
    );
    expect(r.fake.archivedIds()).toEqual([ID.attested, ID.eventBridge]);
    expect(await r.h.app.db.guardDutyArchived(ID.eventBridge)).toBe(true);
    expect(await r.h.metric('egress_witness_detector_guardduty_archive_calls_total', { outcome: 'success' })).toBe(2);
    expect(await latestDecisionOf(r.h, ID.eventBridge)).toMatchObject({
      decision: 'archive',
      reason: 'attested',
      gatewayId: 'gw1',
      remoteIp: '203.0.113.11',
    });
  });

  // Regression: GuardDutyProcessor.process returns 'seen' for a finding version already
  // decided before it checks whether an 'archive' decision was carried out, and the retry queue
  // lives in memory. An ArchiveFindings that failed before a restart is never made again, although
  // every poll lists the finding as active.
  it('an archive that failed before a restart is made by a later poll', async () => {
    const finding = structuredClone(EVENTBRIDGE.detail) as JsonDoc;
    finding.id = '4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90';
    r.fake.put(finding);
    r.fake.failNext('ArchiveFindings', 400, 'BadRequestException');
    const a = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(finding));
    expect(a.json).toMatchObject({ archive: 1 });
    expect(await r.h.app.db.guardDutyArchived(finding.id as string)).toBe(false);
    await r.h.restart();
    await r.h.app.guarddutyProcessor.poll();
    await sleep(100);
    expect(r.fake.archivedIds()).toContain(finding.id);
  });

  it("a failed archive call waits in the store's outbox: after a restart it is made with no poll listing the finding", async () => {
    const finding = structuredClone(EVENTBRIDGE.detail) as JsonDoc;
    const id = '6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c';
    finding.id = id;
    r.fake.put(finding);
    r.fake.failNext('ArchiveFindings', 400, 'BadRequestException');
    const a = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(finding));
    expect(a.json).toMatchObject({ archive: 1 });
    expect(await r.h.app.db.guardDutyArchived(id)).toBe(false);
    expect(await r.h.app.status()).toMatchObject({ guardduty_archive_outbox: { pending: 1, failed: 0 } });
    expect(r.h.logs.find('guardduty_archive_retry').at(-1)).toMatchObject({ finding_id: id, attempt: 1 });
    // The start-up poll after the restart fails: only the outbox can make the call.
    r.fake.failNext('ListFindings', 400, 'BadRequestException');
    await r.h.restart();
    await waitFor(async () => r.h.app.db.guardDutyArchived(id), 'the queued archive call after the restart', 8_000);
    expect(r.fake.archivedIds()).toContain(id);
    expect(await r.h.metric('egress_witness_detector_guardduty_polls_total', { outcome: 'failure' })).toBe(1);
    // The finding is marked archived when the call succeeds; its outbox row goes once the cycle settles.
    await waitFor(
      async () => ((await r.h.app.status()).guardduty_archive_outbox as { pending: number }).pending === 0,
      'the outbox row acknowledged',
    );
    expect(await r.h.app.status()).toMatchObject({ guardduty_archive_outbox: { pending: 0, failed: 0 } });
  });
});

describe('guardduty.mode: report', () => {
  let r: Rig;
  beforeAll(async () => {
    r = await rig('report');
  });
  afterAll(async () => {
    await r?.h.cleanup();
    await r?.fake.close();
  });

  it('decides the same way but archives nothing', async () => {
    expect(r.firstPollCount).toBe(LISTED.length);
    for (const [id, [decision, reason, gatewayId]] of Object.entries(EXPECTED)) {
      expect({ id, ...(await latestDecisionOf(r.h, id)) }, id).toMatchObject({ id, decision, reason, gatewayId });
    }
    r.fake.put(EVENTBRIDGE.detail);
    const a = await r.h.postJson('/v1/guardduty', [EVENTBRIDGE]);
    expect(a.json).toEqual({ accepted: true, findings: 1, archive: 1 });
    // Polled later, the same finding (same updatedAt) is not decided twice.
    const decisions = (await guardDutyDecisions(r.h)).length;
    expect(await r.h.app.guarddutyProcessor.poll()).toBe(LISTED.length + 1);
    expect(await guardDutyDecisions(r.h)).toHaveLength(decisions);
    await sleep(50);
    expect(r.fake.calls.filter((c) => c.op === 'ArchiveFindings')).toEqual([]);
    expect(r.fake.finding(ID.attested)!.service.archived).toBe(false);
    expect(await r.h.app.db.guardDutyArchived(ID.attested)).toBe(false);
    expect(await r.h.metric('egress_witness_detector_guardduty_findings_total', { decision: 'archive', reason: 'attested' })).toBe(2);
    expect(await r.h.metric('egress_witness_detector_guardduty_archive_calls_total')).toBe(0);
    expect(r.h.logs.find('guardduty_decision').every((l) => l.mode === 'report')).toBe(true);
  });

  it('lists GuardDuty decisions with `detector decisions --disposition keep`-style store queries', async () => {
    const keep = (await r.h.app.db.listDecisions({ sinceMs: 0, disposition: 'keep', limit: 100 })).filter((d) => d.kind === 'guardduty');
    expect(keep.map((d) => d.rule).sort()).toEqual([
      'external-use-seen',
      'gateway-silent',
      'malformed',
      'not-a-gateway-address',
      'unrouted-client',
    ]);
  });

  // Regression: decide.ts isExternalSource() counts every private source as explained,
  // while the correlation engine (vpc-endpoint rule) explains a private source only with a
  // vpcEndpointId and otherwise raises an external finding. The GuardDuty decision thus archives a
  // finding although the detector itself raised a High finding for the key inside the span.
  it('keeps a finding whose key the detector saw used from a private source without a VPC endpoint inside the span', async () => {
    const key = 'ASIAGDPRIVATESRC2345';
    await r.h.ingest('gw1', [
      observation({ accessKeyId: key, at: FIRST - 20 * SEC }),
      observation({ accessKeyId: key, at: LAST - 40 * SEC }),
    ]);
    const ct = cloudTrailRecord({ key, sourceIp: '10.9.9.9', time: FIRST + 15 * MIN });
    await r.h.postJson('/v1/cloudtrail', ct);
    const own = (await r.h.app.db.listDecisions({ sinceMs: 0, disposition: 'finding', limit: 1000 })).find(
      (d) => d.subjectId === ct.eventID,
    );
    expect(own).toMatchObject({ disposition: 'finding', rule: 'external', sourceIp: '10.9.9.9' });
    const finding = structuredClone(ALL.find((f) => f.id === ID.attested)!);
    finding.id = '5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b';
    finding.resource.accessKeyDetails.accessKeyId = key;
    r.fake.put(finding);
    const a = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(finding));
    expect(a.json).toEqual({ accepted: true, findings: 1, keep: 1 });
  });

  // Regression: the documented workflow is `report` first, `archive` once trusted. Findings
  // decided 'archive' in report mode are 'seen' afterwards, so switching the mode never archives them.
  it('switching report → archive archives the attested findings still active in GuardDuty', async () => {
    const raw = JSON.parse(readFileSync(r.h.configPath, 'utf8')) as JsonDoc;
    expect(await r.h.app.reload({ ok: true, value: validDetectorConfig(deepMerge(raw, { guardduty: { mode: 'archive' } })) })).toBe(true);
    expect(await r.h.app.status()).toMatchObject({ guardduty_mode: 'archive' });
    await r.h.app.guarddutyProcessor.poll();
    await sleep(100);
    expect(r.fake.archivedIds()).toEqual(expect.arrayContaining([ID.attested, ID.eventBridge]));
  });
});

describe("GuardDuty's word only (archive mode)", () => {
  let r: Rig;
  beforeAll(async () => {
    r = await rig('archive');
  });
  afterAll(async () => {
    await r?.h.cleanup();
    await r?.fake.close();
  });

  /** GuardDuty's own copy of a finding: the key was used from an address that is no gateway's. */
  function realFinding(id: string, key: string): JsonDoc {
    const f = structuredClone(ALL.find((x) => x.id === ID.notGateway)!);
    f.id = id;
    f.arn = `arn:aws:guardduty:us-east-1:111122223333:detector/${DETECTOR_ID}/finding/${id}`;
    f.resource.accessKeyDetails.accessKeyId = key;
    return f;
  }

  /** What an attacker posts: a finding id on the attested finding's content (key, address, span), in the detector and region it names. */
  function forgedCopy(id: string, where = { detectorId: DETECTOR_ID, region: 'us-east-1' }): JsonDoc {
    const f = structuredClone(ALL.find((x) => x.id === ID.attested)!);
    f.id = id;
    f.region = where.region;
    f.service.detectorId = where.detectorId;
    f.arn = `arn:aws:guardduty:${where.region}:111122223333:detector/${where.detectorId}/finding/${id}`;
    f.updatedAt = '2024-05-01T13:30:00.000Z';
    return f;
  }

  const readBacks = (outcome: string) => r.h.metric('egress_witness_detector_guardduty_read_backs_total', { outcome });

  it('a forged finding carrying a real finding id with attested-looking content is decided on GuardDuty’s copy and not archived', async () => {
    const id = '7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d';
    r.fake.put(realFinding(id, 'ASIAGDFORGEDREAL2345'));
    const from = r.fake.calls.length;
    const confirmedBefore = await readBacks('confirmed');
    const a = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(forgedCopy(id)));
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, findings: 1, keep: 1 });
    expect(await latestDecisionOf(r.h, id)).toMatchObject({
      findingId: id,
      decision: 'keep',
      reason: 'not-a-gateway-address',
      accessKeyId: 'ASIAGDFORGEDREAL2345',
      remoteIp: EXTERNAL_IP,
    });
    // The decision is stored under GuardDuty's version, not the one the poster claimed.
    expect((await guardDutyDecisions(r.h)).filter((d) => d.subjectId.startsWith(`${id}@`)).map((d) => d.subjectId)).toEqual([
      `${id}@${ALL.find((x) => x.id === ID.notGateway)!.updatedAt}`,
    ]);
    await sleep(100);
    const calls = r.fake.calls.slice(from);
    expect(calls.map((c): unknown[] => [c.op, c.detectorId, c.body.findingIds])).toEqual([['GetFindings', DETECTOR_ID, [id]]]);
    expect(calls[0]!.authorization).toMatch(/\/us-east-1\/guardduty\/aws4_request, /);
    expect(r.fake.archivedIds()).not.toContain(id);
    expect(r.fake.finding(id)!.service.archived).toBe(false);
    expect(await readBacks('confirmed')).toBe(confirmedBefore + 1);
  });

  it('a pushed finding the configured detector does not hold, or that cannot be read back, is kept undecided and counted', async () => {
    const unknown = '8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e';
    const notFoundBefore = await readBacks('not_found');
    const keptBefore = await r.h.metric('egress_witness_detector_guardduty_findings_total', { decision: 'keep', reason: 'unconfirmed' });
    const from = r.fake.calls.length;
    const elsewhere = forgedCopy(unknown, { detectorId: 'ffffffffffffffffffffffffffffffff', region: 'eu-west-1' });
    const a = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(elsewhere));
    expect(a.json).toEqual({ accepted: true, findings: 1, unconfirmed: 1 });
    // Read back where the detector is configured to look, never where the finding says.
    expect(r.fake.calls.slice(from).map((c): unknown[] => [c.op, c.detectorId, c.body.findingIds])).toEqual([
      ['GetFindings', DETECTOR_ID, [unknown]],
    ]);
    expect(r.fake.calls[from]!.authorization).toMatch(/\/us-east-1\/guardduty\/aws4_request, /);
    expect(await readBacks('not_found')).toBe(notFoundBefore + 1);
    expect(await latestDecisionOf(r.h, unknown)).toBeNull();
    expect(r.h.logs.find('guardduty_finding_unconfirmed').at(-1)).toMatchObject({ finding_id: unknown, why: 'not_found' });

    const real = '9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f';
    const attested = structuredClone(ALL.find((x) => x.id === ID.attested)!);
    attested.id = real;
    r.fake.put(attested);
    const failedBefore = await readBacks('failed');
    r.fake.failNext('GetFindings', 400, 'BadRequestException');
    const b = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(attested));
    expect(b.json).toEqual({ accepted: true, findings: 1, unconfirmed: 1 });
    expect(await readBacks('failed')).toBe(failedBefore + 1);
    expect(await latestDecisionOf(r.h, real)).toBeNull();
    expect(await r.h.metric('egress_witness_detector_guardduty_findings_total', { decision: 'keep', reason: 'unconfirmed' })).toBe(
      keptBefore + 2,
    );
    await sleep(100);
    expect(r.fake.archivedIds()).not.toContain(real);
  });

  it('an archive retried after GuardDuty changed the finding is decided on the new copy: withdrawn', async () => {
    const id = 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5';
    const attested = structuredClone(ALL.find((x) => x.id === ID.attested)!);
    attested.id = id;
    r.fake.put(attested);
    r.fake.failNext('ArchiveFindings', 400, 'BadRequestException');
    const a = await r.h.postJson('/v1/guardduty', guardDutyEventBridge(attested));
    expect(a.json).toEqual({ accepted: true, findings: 1, archive: 1 });
    // Meanwhile the key is used from elsewhere: GuardDuty updates the finding with the new address.
    const updated = realFinding(id, 'ASIAGDATTESTED234567');
    updated.updatedAt = '2024-05-01T14:00:00.000Z';
    r.fake.put(updated);
    await waitFor(() => r.h.logs.find('guardduty_archive_withdrawn').some((l) => l.finding_id === id), 'the withdrawn archive', 8_000);
    expect(r.fake.archivedIds()).not.toContain(id);
    expect(await r.h.app.db.guardDutyArchived(id)).toBe(false);
    expect(await latestDecisionOf(r.h, id)).toMatchObject({ decision: 'keep', reason: 'not-a-gateway-address', remoteIp: EXTERNAL_IP });
    expect(await r.h.metric('egress_witness_detector_guardduty_archive_calls_total', { outcome: 'withdrawn' })).toBe(1);
  });
});
