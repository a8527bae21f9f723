/**
 * Correlation end to end through the running detector: signed telemetry in
 * over /v1/telemetry, CloudTrail in over /v1/cloudtrail, decisions out of the
 * store, findings out of `findings.file`, and the `detector decisions`
 * command (child process) over the same store. One scenario per row of the
 * decision table (detector/correlate/decide.ts), then the edges: the window,
 * two gateways, the grace period, aggregation.
 *
 * Times are "now": events 30 s old are past the grace period (final at
 * once); events of this second are provisional.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Heartbeat, Observation } from '../../../protocol/telemetry.js';
import { heartbeat, observation, tunnelObservation } from '../../unit/detector/scenario.js';
import {
  AWS_RANGES_FIXTURE,
  cloudTrailEventBridge,
  cloudTrailRecord,
  EXTERNAL_IP,
  GW1_IP,
  GW2_IP,
  GW3_IP,
  GW4_IP,
  INSIDE_AWS_IP,
  latestFindings,
  newAccessKeyId,
  startDetector,
  waitFor,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const OUTSIDE_AWS = 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS';
const WINDOW_MS = 60_000;
const GRACE_MS = 1_500;

let h: DetectorHarness;
const usedKeys: string[] = [];

beforeAll(async () => {
  h = await startDetector({
    config: async (dir) => {
      await writeFile(join(dir, 'ip-ranges.json'), JSON.stringify(AWS_RANGES_FIXTURE));
      return { aws_ip_ranges: join(dir, 'ip-ranges.json'), correlation: { window: '60s', grace: `${GRACE_MS}ms`, heartbeat_stale: '2m' } };
    },
  });
});

afterAll(async () => {
  await h?.cleanup();
});

/** A whole second, 30 s ago: CloudTrail's resolution, and past the grace period. */
function past(seconds = 30): number {
  return Math.floor(Date.now() / 1000) * 1000 - seconds * 1000;
}

function key(): string {
  const k = newAccessKeyId();
  usedKeys.push(k);
  return k;
}

async function decisionFor(eventId: string) {
  return (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 100_000 })).find((d) => d.subjectId === eventId) ?? null;
}

async function decided(eventId: string) {
  return waitFor(async () => await decisionFor(eventId), `the decision on ${eventId}`);
}

async function postRecords(...records: JsonDoc[]) {
  const a = await h.postJson(
    '/v1/cloudtrail',
    records.length === 1 ? cloudTrailEventBridge(records[0]!) : records.map(cloudTrailEventBridge),
  );
  expect(a.status, a.text).toBe(200);
  const { accepted, ...counts } = a.json as Record<string, unknown>;
  expect(accepted).toBe(true);
  return counts;
}

async function findingsOfKey(k: string) {
  const text = await readFile(h.findingsFile, 'utf8').catch(() => '');
  return [...latestFindings(text).values()].filter((f) => f.resource.accessKeyDetails.accessKeyId === k);
}

interface Row {
  name: string;
  /** Telemetry stored before the event arrives (per gateway). */
  telemetry?: (k: string, t: number) => [string, (Observation | Heartbeat)[]][];
  record: (k: string, t: number) => JsonDoc;
  disposition: 'ignored' | 'suppressed' | 'finding';
  rule: string;
  gatewayId: string | null;
  severity?: number;
  evidence?: Record<string, unknown>;
}

const ROWS: Row[] = [
  {
    name: 'not-instance-credential: the instance identity role aws:ec2-instance',
    record: (_k, t) => cloudTrailRecord({ fixture: 'instance-identity-aws-ec2-instance', time: t }),
    disposition: 'ignored',
    rule: 'not-instance-credential',
    gatewayId: null,
  },
  {
    name: 'aws-internal: source "AWS Internal"',
    record: (k, t) => cloudTrailRecord({ fixture: 'aws-internal', key: k, time: t }),
    disposition: 'ignored',
    rule: 'aws-internal',
    gatewayId: null,
  },
  {
    name: 'vpc-endpoint: private source with a vpcEndpointId',
    record: (k, t) => cloudTrailRecord({ fixture: 'vpc-endpoint-private-source', key: k, time: t }),
    disposition: 'ignored',
    rule: 'vpc-endpoint',
    gatewayId: null,
  },
  {
    name: 'inside-aws: source in aws_ip_ranges',
    record: (k, t) => cloudTrailRecord({ key: k, sourceIp: INSIDE_AWS_IP, time: t }),
    disposition: 'ignored',
    rule: 'inside-aws',
    gatewayId: null,
  },
  {
    name: 'attested: gw1 saw the key from a routed client',
    telemetry: (k, t) => [['gw1', [observation({ accessKeyId: k, at: t - 12_000, span: 4_000 }), heartbeat('gw1', t)]]],
    record: (k, t) => cloudTrailRecord({ key: k, sourceIp: GW1_IP, time: t }),
    disposition: 'suppressed',
    rule: 'attested',
    gatewayId: 'gw1',
    evidence: {
      gatewayId: 'gw1',
      clientIp: '10.20.3.4',
      network: 'vpc-prod',
      mode: 'inspect',
      action: 'GetCallerIdentity',
      deltaMs: 8_000,
    },
  },
  {
    name: 'endpoint-attested: tunnel-only gw2 saw sts us-east-1 from a routed client',
    telemetry: (_k, t) => [['gw2', [tunnelObservation({ at: t - 3_000, span: 6_000 }), heartbeat('gw2', t)]]],
    record: (k, t) => cloudTrailRecord({ key: k, sourceIp: GW2_IP, time: t }),
    disposition: 'suppressed',
    rule: 'endpoint-attested',
    gatewayId: 'gw2',
    evidence: { gatewayId: 'gw2', service: 'sts', region: 'us-east-1', mode: 'tunnel', network: 'vpc-prod', deltaMs: 0 },
  },
  {
    name: 'unrouted-client: gw1 saw the key only from a client in no routed network',
    telemetry: (k, t) => [
      ['gw1', [observation({ accessKeyId: k, clientIp: '192.168.77.7', network: null, at: t - 5_000 }), heartbeat('gw1', t)]],
    ],
    record: (k, t) => cloudTrailRecord({ key: k, sourceIp: GW1_IP, time: t }),
    disposition: 'finding',
    rule: 'unrouted-client',
    gatewayId: 'gw1',
    severity: 8,
    evidence: { clientIp: '192.168.77.7', network: null },
  },
  {
    name: 'gateway-unverified: gw3 sent nothing around the call (Medium 5)',
    record: (k, t) => cloudTrailRecord({ key: k, sourceIp: GW3_IP, time: t }),
    disposition: 'finding',
    rule: 'gateway-unverified',
    gatewayId: 'gw3',
    severity: 5,
  },
  {
    name: 'gateway-unattested: gw1 alive but never saw the key (High 8)',
    telemetry: (k, t) => [['gw1', [heartbeat('gw1', t - 10_000), observation({ accessKeyId: newAccessKeyId(), at: t - 4_000 })]]],
    record: (k, t) => cloudTrailRecord({ key: k, sourceIp: GW1_IP, time: t }),
    disposition: 'finding',
    rule: 'gateway-unattested',
    gatewayId: 'gw1',
    severity: 8,
  },
  {
    name: 'external: outside AWS and every gateway (High 8)',
    record: (k, t) => cloudTrailRecord({ key: k, sourceIp: EXTERNAL_IP, time: t }),
    disposition: 'finding',
    rule: 'external',
    gatewayId: null,
    severity: 8,
  },
];

describe('the decision table, one row each, through the daemon', () => {
  it.each(ROWS)('$name', async (row) => {
    const k = key();
    const t = past();
    for (const [gw, records] of row.telemetry?.(k, t) ?? []) await h.ingest(gw, records);
    const record = row.record(k, t);
    const counts = await postRecords(record);
    expect(counts).toEqual({ records: 1, decided: 1 });
    const d = await decided(record.eventID);
    expect(d).toMatchObject({
      kind: 'cloudtrail',
      disposition: row.disposition,
      rule: row.rule,
      gatewayId: row.gatewayId,
      sourceIp: record.sourceIPAddress,
      timeMs: t,
    });
    const detail = d.detail as { severity: number | null; evidence: Record<string, unknown>[]; reason: string };
    expect(detail.severity).toBe(row.severity ?? null);
    if (row.evidence) expect(detail.evidence[0]).toMatchObject(row.evidence);
    if (row.disposition === 'suppressed') expect(detail.evidence.length).toBeGreaterThan(0);

    const findings = await (row.disposition === 'finding'
      ? waitFor(async () => ((await findingsOfKey(k)).length > 0 ? await findingsOfKey(k) : null), 'the finding in findings.file')
      : await findingsOfKey(k));
    if (row.disposition !== 'finding') {
      expect(findings).toEqual([]);
      return;
    }
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({
      type: OUTSIDE_AWS,
      severity: row.severity,
      resource: { resourceType: 'AccessKey', accessKeyDetails: { accessKeyId: k }, instanceDetails: { instanceId: 'i-0a1b2c3d4e5f67890' } },
      service: {
        action: {
          awsApiCallAction: {
            api: 'GetCallerIdentity',
            serviceName: 'sts.amazonaws.com',
            remoteIpDetails: { ipAddressV4: record.sourceIPAddress },
          },
        },
        count: 1,
        archived: false,
      },
      egressWitness: { rule: row.rule, disposition: 'finding', eventIds: [record.eventID] },
    });
    expect(await h.app.db.getFinding(findings[0]!.id as string)).toEqual(findings[0]);
  });

  it('does not decide (or store) credentials that are not an instance role', async () => {
    const before = await h.metric('egress_witness_detector_cloudtrail_records_total', { outcome: 'not_instance_credential' });
    const r = cloudTrailRecord({ fixture: 'iam-user-akia', time: past() });
    expect(await postRecords(r)).toEqual({ records: 1, 'not-instance-credential': 1 });
    expect(await decisionFor(r.eventID)).toBeNull();
    expect(await h.metric('egress_witness_detector_cloudtrail_records_total', { outcome: 'not_instance_credential' })).toBe(before + 1);
  });

  it('counts final decisions by disposition and rule', async () => {
    expect(
      await h.metric('egress_witness_detector_decisions_total', { disposition: 'suppressed', rule: 'attested' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await h.metric('egress_witness_detector_decisions_total', { disposition: 'finding', rule: 'gateway-unverified' }),
    ).toBeGreaterThanOrEqual(1);
    expect(await h.metric('egress_witness_detector_findings_total', { rule: 'external' })).toBeGreaterThanOrEqual(1);
  });
});

describe('edges', () => {
  it('a sighting just outside the window does not attest; just inside it does', async () => {
    const t = past(40);
    const outside = key();
    const inside = key();
    const after = key();
    await h.ingest('gw1', [
      heartbeat('gw1', t),
      observation({ accessKeyId: outside, at: t - WINDOW_MS - 6_000, span: 4_000 }), // ends 62 s before
      observation({ accessKeyId: inside, at: t - WINDOW_MS - 2_000, span: 4_000 }), // ends 58 s before
      observation({ accessKeyId: after, at: t + WINDOW_MS + 2_000, span: 4_000 }), // starts 62 s after
    ]);
    const rOut = cloudTrailRecord({ key: outside, sourceIp: GW1_IP, time: t });
    const rIn = cloudTrailRecord({ key: inside, sourceIp: GW1_IP, time: t });
    const rAfter = cloudTrailRecord({ key: after, sourceIp: GW1_IP, time: t });
    await postRecords(rOut, rIn, rAfter);
    expect(await decided(rOut.eventID)).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested', gatewayId: 'gw1' });
    expect(await decided(rAfter.eventID)).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested' });
    const d = await decided(rIn.eventID);
    expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw1' });
    expect((d.detail as { evidence: { deltaMs: number }[] }).evidence[0]!.deltaMs).toBe(WINDOW_MS - 2_000);
  });

  it('two gateways seeing the same key at overlapping times: each event is attested by the gateway it left through', async () => {
    const t = past();
    const k = key();
    await h.ingest('gw1', [heartbeat('gw1', t), observation({ accessKeyId: k, at: t - 20_000, span: 15_000 })]);
    await h.ingest('gw4', [
      heartbeat('gw4', t),
      observation({ accessKeyId: k, clientIp: '10.30.1.1', network: 'dc4-servers', at: t - 15_000, span: 15_000 }),
    ]);
    const via1 = cloudTrailRecord({ key: k, sourceIp: GW1_IP, time: t });
    const via4 = cloudTrailRecord({ key: k, sourceIp: GW4_IP, time: t });
    await postRecords(via1, via4);
    const d1 = await decided(via1.eventID);
    const d4 = await decided(via4.eventID);
    expect(d1).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw1' });
    expect(d4).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw4' });
    const ev = (d: typeof d1) => (d.detail as { evidence: { gatewayId: string; clientIp: string }[] }).evidence;
    expect(ev(d1).map((e) => [e.gatewayId, e.clientIp])).toEqual([['gw1', '10.20.3.4']]);
    expect(ev(d4).map((e) => [e.gatewayId, e.clientIp])).toEqual([['gw4', '10.30.1.1']]);

    // A sighting by gw1 does not vouch for a call that left through gw4.
    const k2 = key();
    await h.ingest('gw1', [observation({ accessKeyId: k2, at: t - 5_000 })]);
    const only1 = cloudTrailRecord({ key: k2, sourceIp: GW4_IP, time: t });
    await postRecords(only1);
    const d = await decided(only1.eventID);
    expect(d).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested', gatewayId: 'gw4' });
    expect((d.detail as { evidence: { gatewayId: string }[] }).evidence.map((e) => e.gatewayId)).toEqual(['gw1']);
  });

  it('a finding waits for the grace period, and telemetry arriving meanwhile turns it into a suppression', async () => {
    await h.ingest('gw1', [heartbeat('gw1', Date.now())]);
    const now = Math.floor(Date.now() / 1000) * 1000;
    const late = key();
    const never = key();
    const rLate = cloudTrailRecord({ key: late, sourceIp: GW1_IP, time: now });
    const rNever = cloudTrailRecord({ key: never, sourceIp: GW1_IP, time: now });
    expect(await postRecords(rLate, rNever)).toEqual({ records: 2, pending: 2 });
    expect(await h.app.db.pendingCount()).toBeGreaterThanOrEqual(2);
    expect(await decisionFor(rLate.eventID)).toBeNull();

    await h.ingest('gw1', [observation({ accessKeyId: late, at: now - 2_000, span: 2_000 })]);
    const dLate = await decided(rLate.eventID);
    expect(dLate).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw1' });
    expect(dLate.decidedMs).toBeGreaterThanOrEqual(now + GRACE_MS);
    const dNever = await decided(rNever.eventID);
    expect(dNever).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested' });
    expect(dNever.decidedMs).toBeGreaterThanOrEqual(now + GRACE_MS);
    await waitFor(async () => (await findingsOfKey(never)).length === 1, 'the finding for the unattested key');
    expect(await findingsOfKey(late)).toEqual([]);
    await waitFor(async () => (await h.app.db.pendingCount()) === 0, 'no pending decision left');
  });

  it('repeats of one key and source aggregate into one finding with a count and the span', async () => {
    const k = key();
    const t = past(60);
    const times = [t + 10_000, t, t + 20_000];
    const records = times.map((at) => cloudTrailRecord({ key: k, sourceIp: EXTERNAL_IP, time: at }));
    await postRecords(...records);
    const f = await waitFor(async () => {
      const fs = await findingsOfKey(k);
      return fs.length === 1 && fs[0]!.service.count === 3 ? fs[0]! : null;
    }, 'one finding counting three calls');
    expect(f.service.eventFirstSeen).toBe(records[1]!.eventTime);
    expect(f.service.eventLastSeen).toBe(records[2]!.eventTime);
    expect(f.egressWitness.rule).toBe('external');
    expect([...(f.egressWitness.eventIds as string[])].sort()).toEqual(records.map((r) => r.eventID as string).sort());
    // Every emission is a line; the latest state is the last line for the id.
    const lines = (await readFile(h.findingsFile, 'utf8')).split('\n').filter((l) => l.includes(f.id as string));
    expect(lines.map((l) => (JSON.parse(l) as { service: { count: number } }).service.count)).toEqual([1, 2, 3]);
    // A different source is a different finding.
    const other = cloudTrailRecord({ key: k, sourceIp: '198.51.100.201', time: t });
    await postRecords(other);
    await waitFor(async () => (await findingsOfKey(k)).length === 2, 'a second finding for the second source');
  });

  it('`egress-witness detector decisions --disposition suppressed` lists the suppressed ones with their evidence', async () => {
    const t = past();
    const k = key();
    await h.ingest('gw1', [heartbeat('gw1', t), observation({ accessKeyId: k, at: t - 3_000, span: 2_000 })]);
    const r = cloudTrailRecord({ key: k, sourceIp: GW1_IP, time: t });
    const ext = cloudTrailRecord({ key: k, sourceIp: EXTERNAL_IP, time: t });
    await postRecords(r, ext);
    await decided(r.eventID);
    await decided(ext.eventID);
    const { stdout } = await execFileAsync(
      process.execPath,
      [join(root, 'dist/cli/main.js'), 'detector', 'decisions', '--config', h.configPath, '--disposition', 'suppressed', '--since', '1h'],
      { cwd: root },
    );
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as JsonDoc);
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(lines.every((l) => l.disposition === 'suppressed')).toBe(true);
    const mine = lines.find((l) => l.id === r.eventID);
    expect(mine).toMatchObject({
      kind: 'cloudtrail',
      disposition: 'suppressed',
      rule: 'attested',
      accessKeyId: k,
      sourceIp: GW1_IP,
      gatewayId: 'gw1',
      time: new Date(t).toISOString(),
    });
    expect(mine!.detail.evidence[0]).toMatchObject({ gatewayId: 'gw1', clientIp: '10.20.3.4', network: 'vpc-prod', count: 3 });
    expect(lines.some((l) => l.id === ext.eventID)).toBe(false);
    expect(lines.some((l) => l.rule === 'endpoint-attested')).toBe(true);
  });

  it('never writes a whole access key to the log', () => {
    expect(usedKeys.length).toBeGreaterThan(10);
    const leaks = h.logs.raw.filter((line) => usedKeys.some((k) => line.includes(k)));
    expect(leaks).toEqual([]);
    expect(h.logs.find('decision').length).toBeGreaterThan(10);
  });
});
