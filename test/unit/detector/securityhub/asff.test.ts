import { describe, expect, it } from 'vitest';
import { decide } from '../../../../detector/correlate/decide.js';
import { findingFromDecision, mergeFinding, type Finding } from '../../../../detector/findings/shape.js';
import {
  asffTypes,
  defaultProductArn,
  OUTSIDE_AWS_ASFF_TYPE,
  severityLabel,
  toAsff,
  type AsffTarget,
} from '../../../../detector/securityhub/asff.js';
import type { AwsSecurityFinding } from '@aws-sdk/client-securityhub';
import { asffProblem } from '../../../helpers/fake-securityhub.js';
import { context, KEY, observation, stsCall, T, SEC } from '../scenario.js';

const target: AsffTarget = { region: 'eu-west-1', accountId: '444455556666', productArn: defaultProductArn('eu-west-1', '444455556666') };
/** What Security Hub (as the loopback fake judges it) would refuse in this finding, or null. */
const problemOf = (a: AwsSecurityFinding): string | null => asffProblem(a);
const ctx = { accountId: '111122223333', region: 'us-east-1', nowIso: '2024-05-01T12:11:07.000Z' };

function findingFor(patch: Parameters<typeof stsCall>[0], records = [observation()], alive = ['gw1', 'gw2']): Finding {
  const event = stsCall(patch);
  const d = decide(event, context(records, { alive }));
  expect(d.disposition).toBe('finding');
  return findingFromDecision(d, event, ctx);
}

describe('toAsff', () => {
  it('maps an external use to a complete ASFF finding Security Hub accepts', () => {
    const f = findingFor({ sourceIPAddress: '192.0.2.55' });
    const a = toAsff(f, target);
    expect(problemOf(a)).toBeNull();
    expect(a).toMatchObject({
      SchemaVersion: '2018-10-08',
      Id: `egress-witness/${f.id}`,
      ProductArn: 'arn:aws:securityhub:eu-west-1:444455556666:product/444455556666/default',
      GeneratorId: 'egress-witness/rule/external',
      AwsAccountId: '444455556666',
      Types: [OUTSIDE_AWS_ASFF_TYPE],
      CreatedAt: ctx.nowIso,
      UpdatedAt: ctx.nowIso,
      FirstObservedAt: '2024-05-01T12:01:07.000Z',
      LastObservedAt: '2024-05-01T12:01:07.000Z',
      Severity: { Label: 'HIGH', Original: '8' },
      FindingProviderFields: { Severity: { Label: 'HIGH', Original: '8' }, Types: [OUTSIDE_AWS_ASFF_TYPE] },
      Title: f.title,
      RecordState: 'ACTIVE',
      Action: {
        ActionType: 'AWS_API_CALL',
        AwsApiCallAction: {
          Api: 'GetCallerIdentity',
          ServiceName: 'sts.amazonaws.com',
          CallerType: 'remoteip',
          RemoteIpDetails: { IpAddressV4: '192.0.2.55' },
        },
      },
    });
    // The key and the instance are resources, in the account and region of the call (not the importing account's).
    expect(a.Resources).toEqual([
      {
        Type: 'AwsIamAccessKey',
        Id: `AWS::IAM::AccessKey:${KEY}`,
        Partition: 'aws',
        Region: 'us-east-1',
        Details: {
          AwsIamAccessKey: {
            AccessKeyId: KEY,
            AccountId: '111122223333',
            PrincipalType: 'AssumedRole',
            PrincipalId: 'AROAEXAMPLEROLEID7ABC:i-0a1b2c3d4e5f67890',
            PrincipalName: 'app-server-role',
          },
        },
      },
      {
        Type: 'AwsEc2Instance',
        Id: 'arn:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f67890',
        Partition: 'aws',
        Region: 'us-east-1',
      },
    ]);
    expect(a.ProductFields).toMatchObject({
      'egress-witness/findingId': f.id,
      'egress-witness/rule': 'external',
      'egress-witness/count': '1',
      'egress-witness/accountId': '111122223333',
      'egress-witness/region': 'us-east-1',
      'egress-witness/sourceIpAddress': '192.0.2.55',
      'egress-witness/eventIds': '0b6c5f3a-2e1d-4c7b-9a8f-3e2d1c0b9a87',
      'egress-witness/evidence/1': expect.stringMatching(
        /^gw1 saw 10\.20\.3\.4 \(vpc-prod\) .* ×3 sts\.us-east-1\.amazonaws\.com sts us-east-1 GetCallerIdentity inspect, 10 s from the event$/,
      ),
    });
    expect(a.ProductFields!['egress-witness/gatewayId']).toBeUndefined();
    expect(a.Note).toEqual({
      Text: expect.stringMatching(/^egress-witness external: key ASIA…MPLE used from 192\.0\.2\.55/),
      UpdatedBy: 'egress-witness',
      UpdatedAt: ctx.nowIso,
    });
  });

  it('the Id stays with the finding across updates, and a merge changes UpdatedAt and the count only', () => {
    const f = findingFor({ sourceIPAddress: '192.0.2.55' });
    const later = findingFor({ sourceIPAddress: '192.0.2.55', eventId: 'e2', eventTime: '2024-05-01T12:31:07Z' });
    const merged = { ...mergeFinding(f, later), updatedAt: '2024-05-01T12:40:00.000Z' };
    const [a, b] = [toAsff(f, target), toAsff(merged, target)];
    expect(b.Id).toBe(a.Id);
    expect(b.CreatedAt).toBe(a.CreatedAt);
    expect(b.UpdatedAt).toBe('2024-05-01T12:40:00.000Z');
    expect(b.LastObservedAt).toBe('2024-05-01T12:31:07.000Z');
    expect(b.ProductFields!['egress-witness/count']).toBe('2');
  });

  it('gateway findings carry the gateway, an IPv6 source in ProductFields, and their own type', () => {
    // gw2's IPv6 range, gw2 silent: gateway-unverified (Medium).
    const f = findingFor({ sourceIPAddress: '2001:db8:42::7' }, [], ['gw1']);
    expect(f.egressWitness.rule).toBe('gateway-unverified');
    const a = toAsff(f, target);
    expect(problemOf(a)).toBeNull();
    expect(a.Severity).toEqual({ Label: 'MEDIUM', Original: '5' });
    expect(a.Types).toEqual([OUTSIDE_AWS_ASFF_TYPE, 'Unusual Behaviors/Network Flow/EgressWitness-GatewayUnverified']);
    expect(a.Action!.AwsApiCallAction!.RemoteIpDetails).toBeUndefined(); // ASFF has no IPv6 there
    expect(a.ProductFields).toMatchObject({ 'egress-witness/gatewayId': 'gw2', 'egress-witness/sourceIpAddress': '2001:db8:42::7' });
  });

  it('a resolved finding is ARCHIVED, with the resolution in ProductFields', () => {
    const f = findingFor({ sourceIPAddress: '203.0.113.10' }, [], ['gw1']);
    const resolved: Finding = {
      ...f,
      updatedAt: '2024-05-01T13:00:00.000Z',
      service: { ...f.service, archived: true },
      egressWitness: {
        ...f.egressWitness,
        resolution: { resolvedAt: '2024-05-01T13:00:00.000Z', rule: 'attested', reason: 'gateway gw1 saw key ASIA…MPLE', evidence: [] },
      },
    };
    const a = toAsff(resolved, target);
    expect(problemOf(a)).toBeNull();
    expect(a.RecordState).toBe('ARCHIVED');
    expect(a.ProductFields).toMatchObject({
      'egress-witness/resolvedAt': '2024-05-01T13:00:00.000Z',
      'egress-witness/resolution': 'attested: gateway gw1 saw key ASIA…MPLE',
    });
  });

  it('keeps within ASFF limits whatever the CloudTrail record held', () => {
    const f = findingFor({ sourceIPAddress: '192.0.2.55', userAgent: 'x'.repeat(10_000) });
    const long: Finding = {
      ...f,
      title: 't'.repeat(1000),
      description: 'd'.repeat(5000),
      egressWitness: { ...f.egressWitness, reason: 'r'.repeat(5000) },
    };
    const a = toAsff(long, target);
    expect(problemOf(a)).toBeNull();
    expect(a.Title).toHaveLength(256);
    expect(a.Description).toHaveLength(1024);
    expect(a.Note!.Text).toHaveLength(512);
    expect(a.ProductFields!['egress-witness/userAgent']).toHaveLength(2048);
  });

  it('a call without a key still names a resource', () => {
    const f = findingFor({ sourceIPAddress: '192.0.2.55' });
    const keyless: Finding = {
      ...f,
      resource: {
        ...f.resource,
        accessKeyDetails: { ...f.resource.accessKeyDetails, accessKeyId: null },
        instanceDetails: { instanceId: null },
      },
    };
    expect(toAsff(keyless, target).Resources).toEqual([
      { Type: 'Other', Id: 'AROAEXAMPLEROLEID7ABC:i-0a1b2c3d4e5f67890', Partition: 'aws', Region: 'us-east-1' },
    ]);
  });
});

describe('severity, types, product', () => {
  it.each([
    [0, 'INFORMATIONAL'],
    [1, 'LOW'],
    [3.9, 'LOW'],
    [4, 'MEDIUM'],
    [5, 'MEDIUM'],
    [6.9, 'MEDIUM'],
    [7, 'HIGH'],
    [8, 'HIGH'],
    [8.9, 'HIGH'],
    [9, 'CRITICAL'],
    [10, 'CRITICAL'],
  ])('GuardDuty severity %s is %s', (sev, label) => {
    expect(severityLabel(sev)).toBe(label);
  });

  it('every rule that raises findings has types Security Hub accepts', () => {
    for (const rule of ['external', 'gateway-unattested', 'gateway-unverified', 'unrouted-client'] as const) {
      const types = asffTypes(rule);
      expect(types[0]).toBe(OUTSIDE_AWS_ASFF_TYPE);
      for (const t of types) expect(t.split('/')).toHaveLength(3);
    }
    expect(asffTypes('unrouted-client')[1]).toBe('Unusual Behaviors/IP address/EgressWitness-UnroutedClient');
    expect(asffTypes('gateway-unattested')[1]).toBe('Unusual Behaviors/Network Flow/EgressWitness-GatewayUnattested');
  });

  it('the default product follows the partition of the region', () => {
    expect(defaultProductArn('us-east-1', '123456789012')).toBe('arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default');
    expect(defaultProductArn('cn-north-1', '123456789012')).toBe(
      'arn:aws-cn:securityhub:cn-north-1:123456789012:product/123456789012/default',
    );
    expect(defaultProductArn('us-gov-west-1', '123456789012')).toMatch(/^arn:aws-us-gov:securityhub:us-gov-west-1:/);
  });

  it('the evidence line gives the distance from the event', () => {
    const f = findingFor({ sourceIPAddress: '192.0.2.55' }, [observation({ at: T - 100 * SEC, span: 10 * SEC })]);
    expect(toAsff(f, target).ProductFields!['egress-witness/evidence/1']).toMatch(/, 90 s from the event$/);
  });
});
