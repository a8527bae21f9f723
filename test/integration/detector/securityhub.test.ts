/**
 * The Security Hub export, through the running detector and the REAL
 * @aws-sdk/client-securityhub (built by the detector from
 * findings.security_hub.endpoint and ca_file) against a loopback HTTPS
 * Security Hub speaking BatchImportFindings' restJson1 protocol and judging
 * each request as Security Hub does (test/helpers/fake-securityhub.ts).
 *
 * Findings are raised by posting CloudTrail records to /v1/cloudtrail
 * (grace 0 s: final at once): from 198.18.x.y (no gateway's: `external`,
 * severity 8) or from gw3's address while gw3 is silent (`gateway-unverified`,
 * severity 5), which late telemetry from gw3 resolves.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findingId } from '../../../detector/findings/shape.js';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import {
  cloudTrailRecord,
  GW3_IP,
  latestFindings,
  startDetector,
  waitFor,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';
import { startFakeSecurityHub, type FakeSecurityHub } from '../../helpers/fake-securityhub.js';

const ACCOUNT = '111122223333';
const REGION = 'us-east-1';
const T = Date.parse('2024-05-01T12:01:07.000Z');
const SEC = 1000;
const MIN = 60 * SEC;

const savedEnv: Record<string, string | undefined> = {};
beforeAll(() => {
  const env = {
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
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
});
afterAll(() => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** An access key of 20 characters from a short tag (base32 alphabet). */
function key(tag: string): string {
  return `ASIA${tag.toUpperCase().replace(/[^A-Z2-7]/g, 'A')}`.padEnd(20, 'Q').slice(0, 20);
}
function externalIp(n: number): string {
  return `198.18.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}
const asffIdOf = (k: string, source: string, rule: string) => `egress-witness/${findingId(k, source, rule as 'external')}`;

interface Rig {
  h: DetectorHarness;
  fake: FakeSecurityHub;
}

async function rig(): Promise<Rig> {
  const fake = await startFakeSecurityHub({ region: REGION, accountId: ACCOUNT });
  const h = await startDetector({
    config: async (dir) => {
      await writeFile(join(dir, 'securityhub-ca.pem'), fake.caPem);
      return {
        store: { retention: '100000h' },
        correlation: { window: '5m', heartbeat_stale: '2m', grace: '0s' },
        findings: {
          security_hub: { region: REGION, account_id: ACCOUNT, endpoint: fake.endpoint, ca_file: join(dir, 'securityhub-ca.pem') },
        },
      };
    },
    deps: { securityHubBackoff: { initialMs: 50, maxMs: 300, unauthorizedMs: 300 }, findingResolutionIntervalMs: 100 },
  });
  return { h, fake };
}

let current: Rig | null = null;
afterEach(async () => {
  await current?.h.cleanup();
  await current?.fake.close();
  current = null;
});

async function post(h: DetectorHarness, records: JsonDoc[]): Promise<void> {
  const r = await h.postJson('/v1/cloudtrail', records);
  expect(r.status).toBe(200);
}

/** Ids the fake imported successfully, call by call. */
const importedCalls = (fake: FakeSecurityHub) => fake.calls.filter((c) => c.status === 200).map((c) => c.ids);

describe('Security Hub export', () => {
  it('imports a finding as ASFF, then archives it (RecordState ARCHIVED, later UpdatedAt) when late telemetry resolves it', async () => {
    const { h, fake } = (current = await rig());
    const k = key('resolve');
    await post(h, [cloudTrailRecord({ key: k, sourceIp: GW3_IP, time: T })]);
    const id = asffIdOf(k, GW3_IP, 'gateway-unverified');
    await waitFor(() => fake.finding(id) !== undefined, 'the finding imported');

    const first = fake.finding(id)!.current;
    expect(first).toMatchObject({
      SchemaVersion: '2018-10-08',
      Id: id,
      ProductArn: `arn:aws:securityhub:${REGION}:${ACCOUNT}:product/${ACCOUNT}/default`,
      GeneratorId: 'egress-witness/rule/gateway-unverified',
      AwsAccountId: ACCOUNT,
      Types: [
        'TTPs/Initial Access/UnauthorizedAccess:IAMUser-InstanceCredentialExfiltration.OutsideAWS',
        'Unusual Behaviors/Network Flow/EgressWitness-GatewayUnverified',
      ],
      Severity: { Label: 'MEDIUM', Original: '5' },
      FindingProviderFields: { Severity: { Label: 'MEDIUM', Original: '5' } },
      RecordState: 'ACTIVE',
      FirstObservedAt: '2024-05-01T12:01:07.000Z',
      Resources: [
        { Type: 'AwsIamAccessKey', Id: `AWS::IAM::AccessKey:${k}`, Partition: 'aws', Region: REGION },
        { Type: 'AwsEc2Instance', Id: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0a1b2c3d4e5f67890` },
      ],
      Action: { ActionType: 'AWS_API_CALL', AwsApiCallAction: { Api: 'GetCallerIdentity', RemoteIpDetails: { IpAddressV4: GW3_IP } } },
      ProductFields: { 'egress-witness/rule': 'gateway-unverified', 'egress-witness/gatewayId': 'gw3', 'egress-witness/count': '1' },
    });
    expect(first.Note.Text).toMatch(/^egress-witness gateway-unverified: /);
    expect(first.ProductFields['egress-witness/resolution']).toBeUndefined();

    // gw3's agent was cut off; its spool arrives now: gw3 was alive and saw the key from a routed client at T.
    await h.ingest('gw3', [heartbeat('gw3', T - 30 * SEC), observation({ gatewayId: 'gw3', accessKeyId: k, at: T - 5 * SEC })]);
    await waitFor(() => fake.finding(id)?.current.RecordState === 'ARCHIVED', 'the finding archived in Security Hub');

    const stored = fake.finding(id)!;
    expect(stored.versions).toHaveLength(2);
    expect(Date.parse(stored.current.UpdatedAt)).toBeGreaterThan(Date.parse(first.UpdatedAt));
    expect(stored.current.ProductFields['egress-witness/resolution']).toMatch(/^attested: gateway gw3 saw key ASIA…/);
    expect(stored.current.ProductFields['egress-witness/resolution/evidence/1']).toMatch(/^gw3 saw 10\.20\.3\.4 \(vpc-prod\)/);
    expect(stored.current.Note).toEqual(first.Note); // the customer's after creation
    expect(await h.metric('egress_witness_detector_findings_resolved_total', { rule: 'gateway-unverified' })).toBe(1);
    // The findings file has the same update: archived, with the resolution.
    const local = latestFindings(await readFile(h.findingsFile, 'utf8')).get(findingId(k, GW3_IP, 'gateway-unverified'))!;
    expect(local.service.archived).toBe(true);
    expect(local.egressWitness.resolution).toMatchObject({ rule: 'attested' });

    // A new occurrence from the silent gateway reopens it: ACTIVE again, one more update.
    await post(h, [cloudTrailRecord({ key: k, sourceIp: GW3_IP, time: T + 30 * MIN })]);
    await waitFor(() => fake.finding(id)?.current.RecordState === 'ACTIVE', 'the finding reopened');
    expect(fake.finding(id)!.versions).toHaveLength(3);
    expect(fake.finding(id)!.current.ProductFields).toMatchObject({ 'egress-witness/count': '2' });
    expect(fake.finding(id)!.current.ProductFields['egress-witness/resolution']).toBeUndefined();
  });

  it('retries only the findings of a batch that Security Hub failed', async () => {
    const { h, fake } = (current = await rig());
    const keys = ['parta', 'partb', 'partc'].map(key);
    const ids = keys.map((k, i) => asffIdOf(k, externalIp(i), 'external'));
    fake.failFindings([ids[1]!], 'InternalFailure');
    await post(
      h,
      keys.map((k, i) => cloudTrailRecord({ key: k, sourceIp: externalIp(i), time: T })),
    );
    await waitFor(() => ids.every((id) => fake.finding(id) !== undefined), 'all three imported');
    expect(importedCalls(fake)).toEqual([ids, [ids[1]]]);
    expect(fake.calls.map((c) => c.status)).toEqual([200, 200]);
    expect(await h.metric('egress_witness_detector_securityhub_findings_total', { outcome: 'imported' })).toBe(3);
    expect(await h.metric('egress_witness_detector_securityhub_findings_total', { outcome: 'retried' })).toBe(1);
    expect(await h.metric('egress_witness_detector_securityhub_imports_total', { outcome: 'success' })).toBe(2);
    expect(h.logs.find('securityhub_finding_failed')).toHaveLength(1);
    expect(h.logs.find('securityhub_finding_failed')[0]).toMatchObject({
      finding_id: findingId(keys[1]!, externalIp(1), 'external'),
      error_code: 'InternalFailure',
      retry: true,
      level: 'warn',
      failure: 'delivery-failed',
      msg: `Security Hub: finding ${findingId(keys[1]!, externalIp(1), 'external')} not delivered (InternalFailure); it will be retried`,
    });
  });

  it('parks a finding Security Hub refuses for good until it changes, and keeps exporting the others', async () => {
    const { h, fake } = (current = await rig());
    const [bad, good] = [key('refused'), key('fine')];
    const badId = asffIdOf(bad, externalIp(1), 'external');
    fake.failFindings([badId], 'InvalidInput');
    await post(h, [cloudTrailRecord({ key: bad, sourceIp: externalIp(1), time: T })]);
    await waitFor(
      async () => (await h.metric('egress_witness_detector_securityhub_findings_total', { outcome: 'failed' })) === 1,
      'refused',
    );
    await post(h, [cloudTrailRecord({ key: good, sourceIp: externalIp(2), time: T })]);
    await waitFor(() => fake.finding(asffIdOf(good, externalIp(2), 'external')) !== undefined, 'the other one imported');
    // The worker ran again, and did not send the refused finding again.
    expect(fake.calls.map((c) => c.ids)).toEqual([[badId], [asffIdOf(good, externalIp(2), 'external')]]);
    await h.app.refreshGauges();
    expect(await h.metric('egress_witness_detector_securityhub_queued_findings', { state: 'failed' })).toBe(1);
    expect(h.logs.find('securityhub_finding_failed')).toMatchObject([
      {
        error_code: 'InvalidInput',
        retry: false,
        level: 'error',
        failure: 'delivery-refused',
        msg: expect.stringMatching(/sent again only when it changes$/),
      },
    ]);

    // A new occurrence changes it: sent again, and imported.
    await post(h, [cloudTrailRecord({ key: bad, sourceIp: externalIp(1), time: T + MIN })]);
    await waitFor(() => fake.finding(badId) !== undefined, 'the changed finding imported');
    expect(fake.finding(badId)!.current.ProductFields['egress-witness/count']).toBe('2');
  });

  it('sends at most 100 findings per call', async () => {
    const { h, fake } = (current = await rig());
    const records = Array.from({ length: 150 }, (_, i) => cloudTrailRecord({ key: key(`bulk${i}`), sourceIp: externalIp(i), time: T }));
    await post(h, records);
    await waitFor(() => fake.findings().length === 150, 'all 150 imported');
    expect(importedCalls(fake).map((ids) => ids.length)).toEqual([100, 50]);
    expect(new Set(importedCalls(fake).flat()).size).toBe(150);
  });

  it('exports everything exactly once per update after Security Hub was down, across a restart', async () => {
    const { h, fake } = (current = await rig());
    await fake.down();
    const [a, b] = [key('downa'), key('downb')];
    await post(h, [
      cloudTrailRecord({ key: a, sourceIp: externalIp(1), time: T }),
      cloudTrailRecord({ key: b, sourceIp: externalIp(2), time: T }),
    ]);
    await waitFor(
      async () => (await h.metric('egress_witness_detector_securityhub_imports_total', { outcome: 'failure' })) >= 2,
      'failed tries',
    );
    // A changes while Security Hub is away: one update to send, in its latest state.
    await post(h, [cloudTrailRecord({ key: a, sourceIp: externalIp(1), time: T + MIN })]);
    await h.restart();
    await waitFor(
      async () => (await h.metric('egress_witness_detector_securityhub_imports_total', { outcome: 'failure' })) >= 1,
      'tried after the restart',
    );
    expect(await h.app.status()).toMatchObject({ security_hub_outbox: { pending: 2, failed: 0 } });

    await fake.up();
    const [idA, idB] = [asffIdOf(a, externalIp(1), 'external'), asffIdOf(b, externalIp(2), 'external')];
    await waitFor(() => fake.finding(idA) !== undefined && fake.finding(idB) !== undefined, 'both imported after Security Hub came back');
    await waitFor(async () => ((await h.app.status()).security_hub_outbox as { pending: number }).pending === 0, 'the outbox empty');
    expect(fake.finding(idA)!.versions).toHaveLength(1);
    expect(fake.finding(idA)!.current.ProductFields['egress-witness/count']).toBe('2');
    expect(fake.finding(idB)!.versions).toHaveLength(1);
    expect(importedCalls(fake).flat().sort()).toEqual([idA, idB].sort());

    // One more change: exactly one more import.
    await post(h, [cloudTrailRecord({ key: b, sourceIp: externalIp(2), time: T + 2 * MIN })]);
    await waitFor(() => fake.finding(idB)!.versions.length === 2, 'the next update');
    expect(importedCalls(fake).flat().sort()).toEqual([idA, idB, idB].sort());
    expect(fake.findings().every((f) => f.ignored === 0)).toBe(true);
  });

  it('counts a 500, a throttled call and answers it cannot read, retries them, and keeps running', async () => {
    const { h, fake } = (current = await rig());
    fake.failNext(500, 'InternalException');
    fake.failNext(429, 'TooManyRequestsException', 1, '0');
    fake.malformedNext(1);
    fake.malformedNext(1, JSON.stringify({ SuccessCount: 7, FailedCount: 0 }));
    const k = key('flaky');
    await post(h, [cloudTrailRecord({ key: k, sourceIp: externalIp(3), time: T })]);
    const id = asffIdOf(k, externalIp(3), 'external');
    await waitFor(() => fake.finding(id) !== undefined, 'imported in the end');
    const imports = (outcome: string) => h.metric('egress_witness_detector_securityhub_imports_total', { outcome });
    expect(await imports('failure')).toBe(1);
    expect(await imports('throttled')).toBe(1);
    expect(await imports('invalid_response')).toBe(2);
    expect(await imports('success')).toBe(1);
    expect(fake.finding(id)!.versions).toHaveLength(1);
    expect(h.logs.find('securityhub_import_failed').map((l) => l.outcome)).toEqual([
      'failure',
      'throttled',
      'invalid_response',
      'invalid_response',
    ]);
    expect(h.logs.find('securityhub_import_failed').map((l) => [l.failure, l.level])).toEqual(Array(4).fill(['delivery-failed', 'warn']));
    expect(h.logs.find('securityhub_import_failed')[1]!.msg).toBe(
      'Security Hub: 1 finding update(s) not delivered (BatchImportFindings throttled: TooManyRequestsException (429)); they wait for a retry',
    );
    const ready = await fetch(`http://127.0.0.1:${h.ports.admin}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('says what to fix when Security Hub refuses the detector itself, and imports once that is fixed', async () => {
    const { h, fake } = (current = await rig());
    fake.failNext(403, 'AccessDeniedException');
    const k = key('denied');
    await post(h, [cloudTrailRecord({ key: k, sourceIp: externalIp(4), time: T })]);
    const id = asffIdOf(k, externalIp(4), 'external');
    await waitFor(() => fake.finding(id) !== undefined, 'imported after the refusal');
    expect(await h.metric('egress_witness_detector_securityhub_imports_total', { outcome: 'unauthorized' })).toBe(1);
    expect(h.logs.find('securityhub_import_failed')).toMatchObject([
      {
        outcome: 'unauthorized',
        failure: 'delivery-misconfigured',
        level: 'error',
        msg: expect.stringContaining('check findings.security_hub (region, product_arn)'),
      },
    ]);
  });
});
