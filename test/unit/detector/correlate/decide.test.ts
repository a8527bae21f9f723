/** One scenario per row of the decision table, then the edges between rows. */
import { describe, expect, it } from 'vitest';
import { compileRegistry, decide, isProvisional } from '../../../../detector/correlate/decide.js';
import { context, eventOf, heartbeat, KEY, MIN, observation, SEC, stsCall, T, tunnelObservation } from '../scenario.js';

describe('decide: ignored', () => {
  it.each([
    ['iam-user-akia', 'IAMUser identity arn:aws:iam::111122223333:user/ci-deployer is not instance-role credentials'],
    [
      'sso-user',
      'AssumedRole identity arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/user@example.com is not instance-role credentials',
    ],
    [
      'instance-identity-aws-ec2-instance',
      'instance identity role aws:ec2-instance (used by AWS agents on i-0a1b2c3d4e5f67890), not the launch role',
    ],
  ])('not-instance-credential: %s', (name, reason) => {
    const d = decide(eventOf(name), context());
    expect(d).toMatchObject({ disposition: 'ignored', rule: 'not-instance-credential', severity: null, reason });
  });

  it('aws-internal: "AWS Internal" and a service name', () => {
    expect(decide(eventOf('aws-internal'), context())).toMatchObject({
      disposition: 'ignored',
      rule: 'aws-internal',
      reason: 'called by AWS internally (source "AWS Internal")',
    });
    expect(decide(eventOf('service-source-ec2-amazonaws-com'), context())).toMatchObject({
      disposition: 'ignored',
      rule: 'aws-internal',
      reason: "called by the AWS service ec2.amazonaws.com on the caller's behalf",
    });
  });

  it('vpc-endpoint: private source with a vpcEndpointId', () => {
    const d = decide(eventOf('vpc-endpoint-private-source'), context());
    expect(d).toMatchObject({
      disposition: 'ignored',
      rule: 'vpc-endpoint',
      reason: 'private source 10.20.3.4 through VPC endpoint vpce-0a1b2c3d4e5f67890',
    });
  });

  it('a private source without a vpcEndpointId is not explained by an endpoint', () => {
    const d = decide(eventOf('vpc-endpoint-private-source', { vpcEndpointId: null }), context());
    expect(d).toMatchObject({ disposition: 'finding', rule: 'external' });
  });

  it('inside-aws: source in the AWS ranges', () => {
    expect(decide(stsCall({ sourceIPAddress: '3.5.140.2' }), context())).toMatchObject({ disposition: 'ignored', rule: 'inside-aws' });
    expect(decide(stsCall({ sourceIPAddress: '2600:1f18::1' }), context())).toMatchObject({ disposition: 'ignored', rule: 'inside-aws' });
    // Without loaded ranges the same address is an external use.
    expect(decide(stsCall({ sourceIPAddress: '3.5.140.2' }), context([], { policy: { awsRanges: null } }))).toMatchObject({
      disposition: 'finding',
      rule: 'external',
    });
  });
});

describe('decide: attested', () => {
  it('suppresses with the evidence when gw1 saw the key from a routed client', () => {
    const d = decide(stsCall(), context([observation()]));
    expect(d).toEqual({
      eventId: '0b6c5f3a-2e1d-4c7b-9a8f-3e2d1c0b9a87',
      eventTime: '2024-05-01T12:01:07Z',
      accessKeyId: KEY,
      sourceIPAddress: '203.0.113.10',
      disposition: 'suppressed',
      rule: 'attested',
      severity: null,
      gatewayId: 'gw1',
      instanceId: 'i-0a1b2c3d4e5f67890',
      reason: 'gateway gw1 saw key ASIA…MPLE from 10.20.3.4 (vpc-prod) at 12:00:57Z',
      evidence: [
        {
          gatewayId: 'gw1',
          clientIp: '10.20.3.4',
          network: 'vpc-prod',
          firstSeen: '2024-05-01T12:00:47.000Z',
          lastSeen: '2024-05-01T12:00:57.000Z',
          count: 3,
          host: 'sts.us-east-1.amazonaws.com',
          service: 'sts',
          region: 'us-east-1',
          action: 'GetCallerIdentity',
          mode: 'inspect',
          capture: 'explicit',
          deltaMs: 10 * SEC,
          binding: 'unknown',
          clientInstanceId: null,
        },
      ],
    });
  });

  it('a sighting of a redirected client says so, in the evidence and the reason', () => {
    const d = decide(stsCall(), context([observation({ capture: 'transparent' })]));
    expect(d).toMatchObject({
      disposition: 'suppressed',
      rule: 'attested',
      evidence: [expect.objectContaining({ capture: 'transparent' })],
    });
    expect(d.reason).toBe('gateway gw1 saw key ASIA…MPLE from 10.20.3.4 (vpc-prod, transparent) at 12:00:57Z');
  });

  it('attests the S3 data event and the IMDSv1 EC2 call the same way', () => {
    const s3 = eventOf('instance-role-s3-getobject-data-event');
    const ec2 = eventOf('instance-role-imdsv1-ec2-describeinstances');
    const records = [
      observation({
        at: s3.eventTimeMs - 2 * SEC,
        host: 'example-reports.s3.eu-west-1.amazonaws.com',
        aws: { service: 's3', region: 'eu-west-1', partition: 'aws' },
        action: 'GetObject',
      }),
      observation({
        at: ec2.eventTimeMs + 1 * SEC,
        clientIp: '10.20.9.9',
        accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
        host: 'ec2.eu-west-1.amazonaws.com',
        aws: { service: 'ec2', region: 'eu-west-1', partition: 'aws' },
      }),
    ];
    expect(decide(s3, context(records))).toMatchObject({ rule: 'attested', gatewayId: 'gw1' });
    expect(decide(ec2, context(records))).toMatchObject({
      rule: 'attested',
      reason: 'gateway gw1 saw key ASIA…VV7A from 10.20.9.9 (vpc-prod) at 12:03:42Z',
    });
  });

  it('a sighting exactly windowMs away still attests; one millisecond further does not', () => {
    const at = observation({ at: T - 5 * MIN - 10 * SEC, span: 10 * SEC });
    expect(decide(stsCall(), context([at]))).toMatchObject({ rule: 'attested' });
    const late = observation({ at: T + 5 * MIN + 1 });
    const d = decide(stsCall(), context([late]));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested', severity: 8 });
  });

  it('the key seen just outside the window is not attestation', () => {
    const early = observation({ at: T - 5 * MIN - 11 * SEC, span: 10 * SEC });
    const d = decide(stsCall(), context([early]));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested', gatewayId: 'gw1' });
    expect(d.evidence).toEqual([]);
  });

  it('a sighting by another gateway does not attest gw1 address use', () => {
    const elsewhere = observation({ gatewayId: 'gw2' });
    const d = decide(stsCall(), context([elsewhere]));
    expect(d).toMatchObject({ rule: 'gateway-unattested', gatewayId: 'gw1' });
    expect(d.evidence.map((e) => e.gatewayId)).toEqual(['gw2']);
  });

  it('keeps at most five pieces of evidence, nearest first', () => {
    const records = [0, 1, 2, 3, 4, 5, 6, 7].map((i) =>
      observation({ at: T - (i * 30 + 5) * SEC, span: 2 * SEC, clientIp: `10.20.3.${10 + i}` }),
    );
    const d = decide(stsCall(), context(records.reverse()));
    expect(d.evidence.map((e) => e.clientIp)).toEqual(['10.20.3.10', '10.20.3.11', '10.20.3.12', '10.20.3.13', '10.20.3.14']);
    expect(d.evidence.map((e) => e.deltaMs)).toEqual([3, 33, 63, 93, 123].map((s) => s * SEC));
  });

  it('reports a sighting that spans the event with deltaMs 0 and the event time', () => {
    const d = decide(stsCall(), context([observation({ at: T - 5 * SEC, span: 30 * SEC })]));
    expect(d.evidence[0]?.deltaMs).toBe(0);
    expect(d.reason).toBe('gateway gw1 saw key ASIA…MPLE from 10.20.3.4 (vpc-prod) at 12:01:07Z');
  });
});

describe('decide: overlapping gateways', () => {
  const registry = compileRegistry({
    gateways: [
      { id: 'gw-a', egressCidrs: ['203.0.113.0/28'], inspect: true },
      { id: 'gw-b', egressCidrs: ['203.0.113.0/24'], inspect: true },
    ],
  });

  it('attested by the gateway that saw the key, whichever CIDR is more specific', () => {
    const d = decide(stsCall(), context([observation({ gatewayId: 'gw-b' })], { registry, alive: ['gw-a', 'gw-b'] }));
    expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw-b' });
  });

  it('when both saw it at the same times, the nearest sighting names the gateway', () => {
    const records = [observation({ gatewayId: 'gw-a', at: T - 3 * MIN }), observation({ gatewayId: 'gw-b', at: T - 20 * SEC })];
    expect(decide(stsCall(), context(records, { registry, alive: ['gw-a', 'gw-b'] }))).toMatchObject({
      rule: 'attested',
      gatewayId: 'gw-b',
    });
  });

  it('one silent gateway makes an unattested use unverifiable', () => {
    const d = decide(stsCall(), context([], { registry, alive: ['gw-a'] }));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'gateway-unverified', severity: 5, gatewayId: 'gw-b' });
  });

  it('both alive and neither saw the key: unattested, naming both', () => {
    const d = decide(stsCall(), context([], { registry, alive: ['gw-a', 'gw-b'] }));
    expect(d).toMatchObject({ rule: 'gateway-unattested', gatewayId: 'gw-a' });
    expect(d.reason).toBe(
      'source 203.0.113.10 is an address of gateway gw-a and gw-b, alive but without a sighting of key ASIA…MPLE within 5m of the call',
    );
  });
});

describe('decide: endpoint-attested (tunnel-only gw2)', () => {
  const viaGw2 = (patch = {}) => stsCall({ sourceIPAddress: '198.51.100.3', ...patch });

  it('accept: suppressed as endpoint-attested', () => {
    const d = decide(viaGw2(), context([tunnelObservation()]));
    expect(d).toMatchObject({ disposition: 'suppressed', rule: 'endpoint-attested', gatewayId: 'gw2', severity: null });
    expect(d.reason).toBe('tunnel-only gateway gw2 saw sts us-east-1 from 10.20.3.4 (vpc-prod) at 12:00:57Z (endpoint, not key, attested)');
    expect(d.evidence).toHaveLength(1);
  });

  it('flag: a High finding gateway-unattested that keeps the endpoint evidence', () => {
    const d = decide(viaGw2(), context([tunnelObservation()], { policy: { endpointAttestation: 'flag' } }));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested', severity: 8, gatewayId: 'gw2' });
    expect(d.reason).toMatch(/cannot attest key ASIA…MPLE \(endpoint attestation is set to flag\)$/);
    expect(d.evidence).toHaveLength(1);
  });

  it('works over IPv6 egress too', () => {
    expect(decide(viaGw2({ sourceIPAddress: '2001:db8:42::7' }), context([tunnelObservation()]))).toMatchObject({
      rule: 'endpoint-attested',
    });
  });

  it('another service, another region, or an unrouted client does not attest', () => {
    const cases = [
      tunnelObservation({ host: 'ec2.us-east-1.amazonaws.com', aws: { service: 'ec2', region: 'us-east-1', partition: 'aws' } }),
      tunnelObservation({ host: 'sts.eu-west-1.amazonaws.com', aws: { service: 'sts', region: 'eu-west-1', partition: 'aws' } }),
      tunnelObservation({ network: null, clientIp: '192.168.50.2' }),
      tunnelObservation({ at: T + 6 * MIN }),
    ];
    for (const record of cases) expect(decide(viaGw2(), context([record]))).toMatchObject({ rule: 'gateway-unattested', gatewayId: 'gw2' });
  });

  it('uses the dialled host: an S3 bucket host matches the agent service s3', () => {
    const e = eventOf('instance-role-s3-getobject-data-event', { sourceIPAddress: '198.51.100.3' });
    const seen = tunnelObservation({
      at: e.eventTimeMs - 5 * SEC,
      host: 'example-reports.s3.eu-west-1.amazonaws.com',
      aws: { service: 's3', region: 'eu-west-1', partition: 'aws' },
    });
    expect(decide(e, context([seen]))).toMatchObject({ rule: 'endpoint-attested' });
  });

  it('matches a global endpoint reported with its signing region, and SES behind email.*', () => {
    const global = tunnelObservation({ host: 'sts.amazonaws.com', aws: { service: 'sts', region: 'us-east-1', partition: 'aws' } });
    expect(decide(viaGw2({ requestHost: 'sts.amazonaws.com' }), context([global]))).toMatchObject({ rule: 'endpoint-attested' });
    const ses = tunnelObservation({
      host: 'email.us-east-1.amazonaws.com',
      aws: { service: 'email', region: 'us-east-1', partition: 'aws' },
    });
    expect(decide(viaGw2({ requestHost: null, eventSource: 'ses.amazonaws.com', eventName: 'SendEmail' }), context([ses]))).toMatchObject({
      rule: 'endpoint-attested',
    });
  });

  it('an inspecting gateway never endpoint-attests', () => {
    const d = decide(stsCall(), context([tunnelObservation({ gatewayId: 'gw1' })]));
    expect(d).toMatchObject({ rule: 'gateway-unattested', gatewayId: 'gw1' });
  });
});

describe('decide: findings', () => {
  it('unrouted-client: the agent saw the key only from a client in no routed network', () => {
    const d = decide(stsCall(), context([observation({ clientIp: '192.168.9.9', network: null })]));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'unrouted-client', severity: 8, gatewayId: 'gw1' });
    expect(d.reason).toBe('gateway gw1 saw key ASIA…MPLE only from 192.168.9.9, which is in no routed network, at 12:00:57Z');
    expect(d.evidence[0]).toMatchObject({ clientIp: '192.168.9.9', network: null });
  });

  it('a routed sighting outranks an unrouted one in the same window', () => {
    const records = [observation({ clientIp: '192.168.9.9', network: null }), observation({ at: T - 2 * MIN })];
    expect(decide(stsCall(), context(records))).toMatchObject({ rule: 'attested' });
  });

  it('unrouted-client outranks endpoint attestation on a tunnel-only gateway', () => {
    const records = [tunnelObservation(), observation({ gatewayId: 'gw2', mode: 'http', clientIp: '192.168.9.9', network: null })];
    expect(decide(stsCall({ sourceIPAddress: '198.51.100.3' }), context(records))).toMatchObject({
      rule: 'unrouted-client',
      gatewayId: 'gw2',
    });
  });

  it('gateway-unverified: no heartbeat within heartbeatStaleMs', () => {
    const d = decide(stsCall(), context([], { alive: [] }));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'gateway-unverified', severity: 5, gatewayId: 'gw1' });
    expect(d.reason).toBe(
      "source 203.0.113.10 is gateway gw1's address but gw1 sent nothing within 2m of 12:01:07Z, so the call cannot be verified",
    );
  });

  it('a heartbeat just outside heartbeatStaleMs is silence; just inside, and any observation, is life', () => {
    expect(decide(stsCall(), context([heartbeat('gw1', T - 2 * MIN - 1)], { alive: [] }))).toMatchObject({ rule: 'gateway-unverified' });
    expect(decide(stsCall(), context([heartbeat('gw1', T + 2 * MIN)], { alive: [] }))).toMatchObject({ rule: 'gateway-unattested' });
    const other = observation({ accessKeyId: 'ASIAOTHERKEY7EXAMPLE', at: T + 30 * SEC });
    expect(decide(stsCall(), context([other], { alive: [] }))).toMatchObject({ rule: 'gateway-unattested' });
  });

  it('gateway-unattested: gw1 alive, key not seen', () => {
    const d = decide(stsCall(), context());
    expect(d).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested', severity: 8, gatewayId: 'gw1', evidence: [] });
  });

  it('external: any other source, with the key sightings as context', () => {
    const d = decide(stsCall({ sourceIPAddress: '192.0.2.55' }), context([observation()]));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'external', severity: 8, gatewayId: null });
    expect(d.reason).toBe('key ASIA…MPLE used from 192.0.2.55, outside AWS and every gateway');
    expect(d.evidence.map((e) => e.gatewayId)).toEqual(['gw1']);
  });

  it('external: an unrecognised source fails closed', () => {
    const d = decide(stsCall({ sourceIPAddress: 'somewhere.example.com' }), context());
    expect(d).toMatchObject({ rule: 'external', reason: 'key ASIA…MPLE used from an unrecognised source "somewhere.example.com"' });
  });

  it('the session-name-only (pre-ec2RoleDelivery) instance role is decided too', () => {
    const e = eventOf('instance-role-session-name-only');
    expect(decide(e, context())).toMatchObject({
      rule: 'external',
      instanceId: 'i-0fedcba987654321f',
      accessKeyId: 'ASIAQNZGKIQY56JQ7WML',
    });
  });
});

describe('isProvisional', () => {
  const finding = decide(stsCall(), context());
  const suppressed = decide(stsCall(), context([observation()]));

  it('a finding is provisional until eventTime + grace', () => {
    expect(isProvisional(finding, T + 9 * MIN, T, 10 * MIN)).toBe(true);
    expect(isProvisional(finding, T + 10 * MIN, T, 10 * MIN)).toBe(false);
  });

  it('suppressions and ignores are final at once', () => {
    expect(isProvisional(suppressed, T, T, 10 * MIN)).toBe(false);
    expect(isProvisional(decide(eventOf('iam-user-akia'), context()), T, T, 10 * MIN)).toBe(false);
  });
});
