import { describe, expect, it } from 'vitest';
import {
  decideGuardDutyFinding,
  parseGuardDutyFinding,
  type CloudTrailUse,
  type GuardDutyFindingView,
} from '../../../../detector/guardduty/decide.js';
import { wireFinding } from '../../../../detector/guardduty/wire-shape.js';
import type { InventoryView } from '../../../../detector/correlate/types.js';
import { AddressHistory } from '../../../../detector/inventory/history.js';
import { inventoryView } from '../../../../detector/inventory/view.js';
import { context, heartbeat, KEY, keyResource, MIN, observation, SEC, T } from '../scenario.js';

const FIRST = '2024-05-01T12:01:07.000Z';
const LAST = '2024-05-01T12:41:07.000Z';
const T_LAST = Date.parse(LAST);

/** A GuardDuty OutsideAWS finding as GetFindings / EventBridge deliver it (trimmed to realistic fields). */
function guardDutyFinding(over: { remoteIp?: string; v6?: boolean; type?: string; first?: string; last?: string } = {}) {
  const ip = over.remoteIp ?? '203.0.113.10';
  return {
    schemaVersion: '2.0',
    accountId: '111122223333',
    region: 'us-east-1',
    partition: 'aws',
    id: '7ec7d0f1a2b3c4d5e6f708192a3b4c5d',
    arn: 'arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/7ec7d0f1a2b3c4d5e6f708192a3b4c5d',
    type: over.type ?? 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
    resource: keyResource(),
    service: {
      serviceName: 'guardduty',
      detectorId: '12abc34d567e8fa901bc2d34e56789f0',
      action: {
        actionType: 'AWS_API_CALL',
        awsApiCallAction: {
          api: 'GetCallerIdentity',
          serviceName: 'sts.amazonaws.com',
          callerType: 'Remote IP',
          remoteIpDetails: over.v6
            ? { ipAddressV6: ip }
            : {
                ipAddressV4: ip,
                organization: { asn: '64496', asnOrg: 'EXAMPLE-NET', isp: 'Example ISP', org: 'Example Corp' },
                country: { countryName: 'Germany' },
              },
          affectedResources: {},
        },
      },
      resourceRole: 'TARGET',
      additionalInfo: { value: '{}', type: 'default' },
      eventFirstSeen: over.first ?? FIRST,
      eventLastSeen: over.last ?? LAST,
      archived: false,
      count: 14,
    },
    severity: 8,
    createdAt: '2024-05-01T12:08:31.112Z',
    updatedAt: '2024-05-01T12:48:02.409Z',
    title: 'Credentials for instance role app-server-role used from external IP address.',
    description:
      'Credentials created exclusively for an EC2 instance using instance role app-server-role have been used from external IP address 203.0.113.10.',
  };
}

function view(raw: unknown = guardDutyFinding()): GuardDutyFindingView {
  const p = parseGuardDutyFinding(raw);
  if (p.kind !== 'finding') throw new Error(p.reason);
  return p.finding;
}

/** Routed sightings of KEY at gw1 near both ends of the span, and gw1 alive at both ends. */
const attestedRecords = () => [observation({ at: T - 30 * SEC }), observation({ at: T_LAST - 40 * SEC }), heartbeat('gw1', T_LAST)];

function gdContext(
  records = attestedRecords(),
  uses: CloudTrailUse[] = [],
  alive = ['gw1', 'gw2'],
  ownFindingTimes: number[] = [],
  inventory?: InventoryView,
) {
  const calls: [number, number][] = [];
  return {
    ...context(records, { alive, ...(inventory ? { inventory } : {}) }),
    calls,
    cloudTrailUses: (key: string, from: number, to: number) => {
      calls.push([from, to]);
      return key === KEY ? uses : [];
    },
    ownFindings: (key: string, from: number, to: number) => (key === KEY ? ownFindingTimes.filter((t) => t >= from && t <= to).length : 0),
  };
}

describe('parseGuardDutyFinding', () => {
  it('reads the fields the decision uses', () => {
    expect(view()).toEqual({
      id: '7ec7d0f1a2b3c4d5e6f708192a3b4c5d',
      type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
      accountId: '111122223333',
      region: 'us-east-1',
      severity: 8,
      accessKeyId: KEY,
      principalId: 'AROAEXAMPLEROLEID7ABC:i-0a1b2c3d4e5f67890',
      userName: 'app-server-role',
      instanceId: 'i-0a1b2c3d4e5f67890',
      remoteIp: '203.0.113.10',
      eventFirstSeen: FIRST,
      eventLastSeen: LAST,
      count: 14,
      archived: false,
      updatedAt: '2024-05-01T12:48:02.409Z',
      detectorId: '12abc34d567e8fa901bc2d34e56789f0',
    });
  });

  it('unwraps the EventBridge envelope and rejects other events', () => {
    const envelope = {
      version: '0',
      id: 'c8f0a1b2-…',
      'detail-type': 'GuardDuty Finding',
      source: 'aws.guardduty',
      account: '111122223333',
      time: LAST,
      region: 'us-east-1',
      resources: [],
      detail: guardDutyFinding(),
    };
    expect(view(envelope).id).toBe('7ec7d0f1a2b3c4d5e6f708192a3b4c5d');
    expect(parseGuardDutyFinding({ ...envelope, source: 'aws.securityhub' })).toMatchObject({
      kind: 'invalid',
      reason: expect.stringMatching(/not a GuardDuty finding event/),
    });
  });

  it('malformed findings are invalid', () => {
    expect(parseGuardDutyFinding(null)).toEqual({ kind: 'invalid', reason: 'finding is not an object' });
    expect(parseGuardDutyFinding('{"id":"x"}')).toMatchObject({ kind: 'invalid' });
    expect(parseGuardDutyFinding({ ...guardDutyFinding(), id: 42 })).toEqual({ kind: 'invalid', reason: 'id: required string' });
    expect(parseGuardDutyFinding({ ...guardDutyFinding(), type: undefined })).toEqual({ kind: 'invalid', reason: 'type: required string' });
    expect(parseGuardDutyFinding({ 'detail-type': 'GuardDuty Finding', source: 'aws.guardduty', detail: [] })).toMatchObject({
      kind: 'invalid',
    });
  });

  // The SDK-name fold assigned each member, so a member named "__proto__" became the prototype and the
  // finding's missing fields were read from inside it.
  it('keeps a "__proto__" member of an SDK-shaped finding a plain field', () => {
    const sdk = JSON.parse(
      '{"Id":"f-1","__proto__":{"Type":"UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS","Resource":{"AccessKeyDetails":{"AccessKeyId":"ASIAEXAMPLEEXAMPLE12"}}}}',
    ) as unknown;
    const wire = wireFinding(sdk) as Record<string, unknown>;
    expect(Object.getPrototypeOf(wire)).toBe(Object.prototype);
    expect(Object.keys(wire)).toEqual(['id', '__proto__']);
    expect(parseGuardDutyFinding(wire)).toEqual({ kind: 'invalid', reason: 'type: required string' });
  });

  it('reads an IPv6 remote address', () => {
    expect(view(guardDutyFinding({ remoteIp: '2001:db8:42::7', v6: true })).remoteIp).toBe('2001:db8:42::7');
  });
});

describe('decideGuardDutyFinding', () => {
  it('archives when gw1 attested the key at both ends and CloudTrail shows no other use', () => {
    const ctx = gdContext(attestedRecords(), [
      { eventId: 'a', eventTime: '2024-05-01T12:01:07Z', sourceIPAddress: '203.0.113.10' },
      { eventId: 'b', eventTime: '2024-05-01T12:05:00Z', sourceIPAddress: 'AWS Internal' },
      { eventId: 'c', eventTime: '2024-05-01T12:06:00Z', sourceIPAddress: '10.20.3.4', vpcEndpointId: 'vpce-0a1b2c3d4e5f60718' },
      { eventId: 'd', eventTime: '2024-05-01T12:07:00Z', sourceIPAddress: '3.5.140.2' },
      { eventId: 'e', eventTime: '2024-05-01T12:08:00Z', sourceIPAddress: '198.51.100.3' },
    ]);
    const d = decideGuardDutyFinding(view(), ctx);
    expect(d).toMatchObject({
      findingId: '7ec7d0f1a2b3c4d5e6f708192a3b4c5d',
      decision: 'archive',
      reason: 'attested',
      gatewayId: 'gw1',
      accessKeyId: KEY,
      remoteIp: '203.0.113.10',
      spanStart: FIRST,
      spanEnd: LAST,
    });
    expect(d.evidence.start).toHaveLength(1);
    expect(d.evidence.end).toHaveLength(1);
    expect(d.evidence.start[0]?.deltaMs).toBe(20 * SEC);
    expect(ctx.calls).toEqual([[T - 5 * MIN, T_LAST + 5 * MIN]]);
  });

  it('keeps an attested finding when egress-witness raised its own finding for the key in the span', () => {
    const d = decideGuardDutyFinding(view(), gdContext(attestedRecords(), [], ['gw1', 'gw2'], [T + MIN]));
    expect(d).toMatchObject({ decision: 'keep', reason: 'detector-finding', gatewayId: 'gw1' });
    expect(d.evidence.start).toHaveLength(1);
    // a finding of its own outside the widened span does not count
    expect(decideGuardDutyFinding(view(), gdContext(attestedRecords(), [], ['gw1', 'gw2'], [T - 60 * MIN])).decision).toBe('archive');
  });

  it('keeps when CloudTrail shows a use from outside in the span', () => {
    const outside = { eventId: 'x', eventTime: '2024-05-01T12:20:00Z', sourceIPAddress: '192.0.2.55' };
    const d = decideGuardDutyFinding(view(), gdContext(attestedRecords(), [outside]));
    expect(d).toMatchObject({ decision: 'keep', reason: 'external-use-seen', gatewayId: 'gw1' });
    expect(d.evidence.externalEvents).toEqual([outside]);
  });

  it('an unrecognised CloudTrail source counts as external', () => {
    const d = decideGuardDutyFinding(
      view(),
      gdContext(attestedRecords(), [{ eventId: 'x', eventTime: '2024-05-01T12:20:00Z', sourceIPAddress: 'somewhere.example.com' }]),
    );
    expect(d.reason).toBe('external-use-seen');
  });

  it('keeps when attested only at the start', () => {
    const d = decideGuardDutyFinding(view(), gdContext([observation({ at: T - 30 * SEC }), heartbeat('gw1', T_LAST)]));
    expect(d).toMatchObject({ decision: 'keep', reason: 'not-attested', gatewayId: 'gw1' });
    expect(d.evidence.start).toHaveLength(1);
    expect(d.evidence.end).toEqual([]);
  });

  it('keeps when the gateway was silent at an end of the span', () => {
    const d = decideGuardDutyFinding(view(), gdContext([observation({ at: T - 30 * SEC })], []));
    expect(d).toMatchObject({ decision: 'keep', reason: 'gateway-silent', gatewayId: 'gw1' });
  });

  it('keeps when the remote IP is outside every gateway', () => {
    const d = decideGuardDutyFinding(view(guardDutyFinding({ remoteIp: '192.0.2.55' })), gdContext());
    expect(d).toMatchObject({ decision: 'keep', reason: 'not-a-gateway-address', gatewayId: null });
  });

  it('keeps when the key was seen only from an unrouted client', () => {
    const records = [
      observation({ at: T - 30 * SEC, network: null, clientIp: '192.168.9.9' }),
      observation({ at: T_LAST - 40 * SEC, network: null, clientIp: '192.168.9.9' }),
    ];
    const d = decideGuardDutyFinding(view(), gdContext(records));
    expect(d).toMatchObject({ decision: 'keep', reason: 'unrouted-client', gatewayId: 'gw1' });
    expect(d.evidence.start[0]).toMatchObject({ clientIp: '192.168.9.9', network: null });
  });

  it('keeps when an unrouted client used the key mid-span, even if both ends are attested', () => {
    const records = [...attestedRecords(), observation({ at: T + 20 * MIN, network: null, clientIp: '192.168.9.9' })];
    expect(decideGuardDutyFinding(view(), gdContext(records))).toMatchObject({ decision: 'keep', reason: 'unrouted-client' });
  });

  describe('instance binding', () => {
    const OWN = 'i-0a1b2c3d4e5f67890';
    const OTHER = 'i-0def4567890abcdef';
    const inv = (translated: string[] = []) =>
      inventoryView(
        AddressHistory.empty().withSource(
          'file:t',
          [
            { instanceId: OWN, addresses: ['10.20.3.4'], sinceMs: null, untilMs: null },
            { instanceId: OTHER, addresses: ['10.20.7.7'], sinceMs: null, untilMs: null },
          ],
          T - 60 * MIN,
        ),
        translated,
      );

    it("archives a span the key's own instance attests at both ends", () => {
      expect(decideGuardDutyFinding(view(), gdContext(attestedRecords(), [], undefined, [], inv()))).toMatchObject({
        decision: 'archive',
        reason: 'attested',
      });
    });

    it('keeps a span that includes a use from another routed host (wrong-client), even with both ends attested', () => {
      const records = [...attestedRecords(), observation({ at: T + 20 * MIN, clientIp: '10.20.7.7' })];
      const d = decideGuardDutyFinding(view(), gdContext(records, [], undefined, [], inv()));
      expect(d).toMatchObject({ decision: 'keep', reason: 'wrong-client', gatewayId: 'gw1' });
      expect(d.evidence.start[0]).toMatchObject({ clientIp: '10.20.7.7', binding: 'other', clientInstanceId: OTHER });
    });

    it('a translated network binds to nothing, and without an inventory nothing is checked', () => {
      const records = [...attestedRecords(), observation({ at: T + 20 * MIN, clientIp: '10.20.7.7' })];
      expect(decideGuardDutyFinding(view(), gdContext(records, [], undefined, [], inv(['vpc-prod'])))).toMatchObject({
        decision: 'archive',
      });
      expect(decideGuardDutyFinding(view(), gdContext(records))).toMatchObject({ decision: 'archive' });
    });
  });

  it('keeps other finding types and malformed OutsideAWS findings', () => {
    const inside = view(guardDutyFinding({ type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS' }));
    expect(decideGuardDutyFinding(inside, gdContext())).toMatchObject({ decision: 'keep', reason: 'not-outside-aws-type' });
    const noTimes = view(guardDutyFinding({ first: 'sometime' }));
    expect(decideGuardDutyFinding(noTimes, gdContext())).toMatchObject({ decision: 'keep', reason: 'malformed' });
    const backwards = view(guardDutyFinding({ first: LAST, last: FIRST }));
    expect(decideGuardDutyFinding(backwards, gdContext())).toMatchObject({ decision: 'keep', reason: 'malformed' });
  });

  it('archives on an IPv6 gateway address', () => {
    const records = [
      observation({ gatewayId: 'gw2', at: T - 30 * SEC }),
      observation({ gatewayId: 'gw2', at: T_LAST - 40 * SEC }),
      heartbeat('gw2', T_LAST),
    ];
    const d = decideGuardDutyFinding(view(guardDutyFinding({ remoteIp: '2001:db8:42::7', v6: true })), gdContext(records));
    expect(d).toMatchObject({ decision: 'archive', reason: 'attested', gatewayId: 'gw2' });
  });
});
