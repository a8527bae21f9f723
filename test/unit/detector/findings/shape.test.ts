import { describe, expect, it } from 'vitest';
import { decide } from '../../../../detector/correlate/decide.js';
import { findingFromDecision, findingId, mergeFinding, partitionOf } from '../../../../detector/findings/shape.js';
import { context, KEY, keyResource, observation, stsCall } from '../scenario.js';

const ctx = { accountId: '111122223333', region: 'us-east-1', nowIso: '2024-05-01T12:11:07.000Z' };

function externalFinding(patch: Parameters<typeof stsCall>[0] = {}, nowIso = ctx.nowIso) {
  const event = stsCall({ sourceIPAddress: '192.0.2.55', ...patch });
  return findingFromDecision(decide(event, context([observation()])), event, { ...ctx, nowIso });
}

describe('findingFromDecision', () => {
  it('shapes an external use as GuardDuty does, plus egressWitness', () => {
    const f = externalFinding();
    expect(f).toEqual({
      schemaVersion: '2.0',
      accountId: '111122223333',
      region: 'us-east-1',
      partition: 'aws',
      id: findingId(KEY, '192.0.2.55', 'external'),
      type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
      severity: 8,
      title: 'Credentials of EC2 instance role app-server-role used from external IP address 192.0.2.55.',
      description: expect.stringMatching(
        /^key ASIA…MPLE used from 192\.0\.2\.55, outside AWS and every gateway\. EC2 instance-role credentials were used/,
      ),
      createdAt: ctx.nowIso,
      updatedAt: ctx.nowIso,
      resource: keyResource(),
      service: {
        serviceName: 'egress-witness',
        action: {
          actionType: 'AWS_API_CALL',
          awsApiCallAction: {
            api: 'GetCallerIdentity',
            serviceName: 'sts.amazonaws.com',
            callerType: 'Remote IP',
            remoteIpDetails: { ipAddressV4: '192.0.2.55' },
            userAgent: expect.stringContaining('aws-cli/2.15.30'),
          },
        },
        count: 1,
        eventFirstSeen: '2024-05-01T12:01:07Z',
        eventLastSeen: '2024-05-01T12:01:07Z',
        archived: false,
      },
      egressWitness: {
        schema: 1,
        rule: 'external',
        disposition: 'finding',
        accessKeyId: KEY,
        sourceIp: '192.0.2.55',
        gatewayId: null,
        evidence: [expect.objectContaining({ gatewayId: 'gw1', clientIp: '10.20.3.4' })],
        reason: 'key ASIA…MPLE used from 192.0.2.55, outside AWS and every gateway',
        eventIds: ['0b6c5f3a-2e1d-4c7b-9a8f-3e2d1c0b9a87'],
      },
    });
    expect(f.id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('carries IPv6 sources, error codes, the gateway and the partition', () => {
    const event = stsCall({ sourceIPAddress: '2001:db8:42::7', errorCode: 'AccessDenied', userAgent: null });
    const f = findingFromDecision(decide(event, context([])), event, { ...ctx, region: 'cn-north-1' });
    expect(f.partition).toBe('aws-cn');
    expect(f.service.action.awsApiCallAction).toMatchObject({
      remoteIpDetails: { ipAddressV6: '2001:db8:42::7' },
      errorCode: 'AccessDenied',
    });
    expect(f.service.action.awsApiCallAction).not.toHaveProperty('userAgent');
    expect(f.egressWitness).toMatchObject({ rule: 'gateway-unattested', gatewayId: 'gw2' });
    expect(f.severity).toBe(8);
  });

  it('shapes a suppression as an archived finding', () => {
    const event = stsCall();
    const f = findingFromDecision(decide(event, context([observation()])), event, ctx);
    expect(f.service.archived).toBe(true);
    expect(f.egressWitness).toMatchObject({ rule: 'attested', disposition: 'suppressed', gatewayId: 'gw1' });
  });

  it('keeps the id stable per key, source and rule', () => {
    expect(externalFinding().id).toBe(externalFinding({ eventId: 'another', eventTime: '2024-05-01T13:00:00Z' }).id);
    expect(externalFinding().id).not.toBe(externalFinding({ sourceIPAddress: '192.0.2.56' }).id);
    expect(findingId(KEY, '192.0.2.55', 'external')).not.toBe(findingId(KEY, '192.0.2.55', 'gateway-unattested'));
  });

  it.each([
    ['us-gov-west-1', 'aws-us-gov'],
    ['cn-northwest-1', 'aws-cn'],
    ['eu-central-2', 'aws'],
  ])('partition of %s is %s', (region, partition) => {
    expect(partitionOf(region)).toBe(partition);
  });
});

describe('mergeFinding', () => {
  it('adds counts, widens the span and takes the latest action', () => {
    const first = externalFinding({ eventId: 'e1', eventTime: '2024-05-01T12:01:07Z' }, '2024-05-01T12:11:00.000Z');
    const second = externalFinding(
      { eventId: 'e2', eventTime: '2024-05-01T12:30:00Z', eventName: 'ListBuckets', eventSource: 's3.amazonaws.com' },
      '2024-05-01T12:40:00.000Z',
    );
    const merged = mergeFinding(first, second);
    expect(merged.id).toBe(first.id);
    expect(merged.createdAt).toBe('2024-05-01T12:11:00.000Z');
    expect(merged.updatedAt).toBe('2024-05-01T12:40:00.000Z');
    expect(merged.service).toMatchObject({ count: 2, eventFirstSeen: '2024-05-01T12:01:07Z', eventLastSeen: '2024-05-01T12:30:00Z' });
    expect(merged.service.action.awsApiCallAction).toMatchObject({ api: 'ListBuckets', serviceName: 's3.amazonaws.com' });
    expect(merged.egressWitness.eventIds).toEqual(['e1', 'e2']);
  });

  it('an older event arriving late widens the span but does not replace the latest action', () => {
    const latest = externalFinding({ eventId: 'e2', eventTime: '2024-05-01T12:30:00Z', eventName: 'ListBuckets' });
    const older = externalFinding({ eventId: 'e1', eventTime: '2024-05-01T11:00:00Z' });
    const merged = mergeFinding(latest, older);
    expect(merged.service).toMatchObject({ count: 2, eventFirstSeen: '2024-05-01T11:00:00Z', eventLastSeen: '2024-05-01T12:30:00Z' });
    expect(merged.service.action.awsApiCallAction.api).toBe('ListBuckets');
  });

  it('keeps the last 20 event ids without duplicates', () => {
    let f = externalFinding({ eventId: 'e0' });
    for (let i = 1; i < 30; i++)
      f = mergeFinding(
        f,
        externalFinding({ eventId: `e${i}`, eventTime: new Date(Date.parse('2024-05-01T12:01:07Z') + i * 1000).toISOString() }),
      );
    f = mergeFinding(f, externalFinding({ eventId: 'e29' }));
    expect(f.egressWitness.eventIds).toHaveLength(20);
    expect(f.egressWitness.eventIds[0]).toBe('e10');
    expect(f.egressWitness.eventIds.at(-1)).toBe('e29');
    expect(f.service.count).toBe(31);
  });
});
