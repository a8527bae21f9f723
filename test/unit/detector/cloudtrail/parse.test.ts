import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  classifySource,
  instanceCredentialKind,
  instanceIdOf,
  normalizeRecord,
  parseCloudTrailFile,
  parseCloudTrailInput,
  unwrapEventBridge,
  type CloudTrailEvent,
} from '../../../../detector/cloudtrail/parse.js';
import { eventOf, fixture } from '../scenario.js';

function eventFrom(raw: unknown): CloudTrailEvent {
  const n = normalizeRecord(raw);
  if (n.kind !== 'event') throw new Error(n.reason);
  return n.event;
}

describe('normalizeRecord', () => {
  it('normalises an IMDSv2 instance-role STS call', () => {
    expect(eventFrom(fixture('instance-role-imdsv2-sts-getcalleridentity'))).toEqual({
      eventId: '0b6c5f3a-2e1d-4c7b-9a8f-3e2d1c0b9a87',
      eventTime: '2024-05-01T12:01:07Z',
      eventTimeMs: Date.parse('2024-05-01T12:01:07Z'),
      eventSource: 'sts.amazonaws.com',
      eventName: 'GetCallerIdentity',
      awsRegion: 'us-east-1',
      sourceIPAddress: '203.0.113.10',
      userAgent: expect.stringContaining('aws-cli/2.15.30'),
      errorCode: null,
      recipientAccountId: '111122223333',
      vpcEndpointId: null,
      requestHost: 'sts.us-east-1.amazonaws.com',
      identity: {
        type: 'AssumedRole',
        arn: 'arn:aws:sts::111122223333:assumed-role/app-server-role/i-0a1b2c3d4e5f67890',
        principalId: 'AROAEXAMPLEROLEID7ABC:i-0a1b2c3d4e5f67890',
        accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
        accountId: '111122223333',
        sessionName: 'i-0a1b2c3d4e5f67890',
        roleName: 'app-server-role',
        ec2RoleDelivery: '2.0',
        sessionIssuerArn: 'arn:aws:iam::111122223333:role/app-server-role',
        sessionCreationDate: '2024-05-01T11:32:10Z',
      },
    });
  });

  it.each([
    ['instance-role-imdsv1-ec2-describeinstances', 'instance-role', 'i-0123456789abcdef0', '1.0'],
    ['instance-role-s3-getobject-data-event', 'instance-role', 'i-0a1b2c3d4e5f67890', '2.0'],
    ['instance-role-session-name-only', 'instance-role', 'i-0fedcba987654321f', null],
    ['instance-identity-aws-ec2-instance', 'instance-identity', 'i-0a1b2c3d4e5f67890', '2.0'],
    ['sso-user', 'other', null, null],
    ['iam-user-akia', 'other', null, null],
    ['vpc-endpoint-private-source', 'instance-role', 'i-0a1b2c3d4e5f67890', '2.0'],
    ['aws-internal', 'instance-role', 'i-0a1b2c3d4e5f67890', '2.0'],
    ['service-source-ec2-amazonaws-com', 'instance-role', 'i-0a1b2c3d4e5f67890', '2.0'],
  ] as const)('%s is %s', (name, kind, instanceId, delivery) => {
    const e = eventOf(name);
    expect(instanceCredentialKind(e)).toBe(kind);
    expect(instanceIdOf(e)).toBe(instanceId);
    expect(e.identity.ec2RoleDelivery).toBe(delivery);
  });

  it('splits the instance identity role name, which contains a colon', () => {
    const e = eventOf('instance-identity-aws-ec2-instance');
    expect(e.identity.roleName).toBe('aws:ec2-instance');
    expect(e.identity.sessionName).toBe('i-0a1b2c3d4e5f67890');
  });

  it('reads the SSO session name (an e-mail address) and the data event host', () => {
    expect(eventOf('sso-user').identity).toMatchObject({
      sessionName: 'user@example.com',
      roleName: 'AWSReservedSSO_AdministratorAccess_0123456789abcdef',
    });
    expect(eventOf('iam-user-akia').identity).toMatchObject({
      type: 'IAMUser',
      sessionName: null,
      roleName: null,
      accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
    });
    expect(eventOf('instance-role-s3-getobject-data-event').requestHost).toBe('example-reports.s3.eu-west-1.amazonaws.com');
    expect(eventOf('vpc-endpoint-private-source').vpcEndpointId).toBe('vpce-0a1b2c3d4e5f67890');
  });

  it('rejects every garbage record with a reason', () => {
    const garbage = fixture('garbage') as unknown[];
    const reasons = garbage.map((g) => {
      const n = normalizeRecord(g);
      return n.kind === 'invalid' ? n.reason : 'VALID';
    });
    expect(reasons).not.toContain('VALID');
    expect(reasons[0]).toBe('record is not an object');
    expect(reasons[5]).toBe('eventVersion: eventVersion major must be 1');
    expect(reasons[6]).toMatch(/^eventTime: /);
    expect(reasons[7]).toMatch(/^userIdentity: /);
    expect(reasons[8]).toMatch(/^sourceIPAddress: /);
    expect(reasons[9]).toMatch(/^userIdentity\.accessKeyId: /);
  });

  it('accepts any 1.x eventVersion and rejects other majors', () => {
    const raw = fixture('instance-role-imdsv2-sts-getcalleridentity') as Record<string, unknown>;
    expect(normalizeRecord({ ...raw, eventVersion: '1.99' }).kind).toBe('event');
    expect(normalizeRecord({ ...raw, eventVersion: '11.0' }).kind).toBe('invalid');
    expect(normalizeRecord({ ...raw, eventVersion: 1.11 }).kind).toBe('invalid');
  });

  it('never throws on arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const n = normalizeRecord(v);
        expect(['event', 'invalid']).toContain(n.kind);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on a real record with one field replaced by arbitrary JSON', () => {
    const raw = fixture('instance-role-imdsv2-sts-getcalleridentity') as Record<string, unknown>;
    const identity = raw['userIdentity'] as Record<string, unknown>;
    const fields = [...Object.keys(raw).map((k) => ['top', k] as const), ...Object.keys(identity).map((k) => ['identity', k] as const)];
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue(), ([where, field], value) => {
        const mutated = where === 'top' ? { ...raw, [field]: value } : { ...raw, userIdentity: { ...identity, [field]: value } };
        const n = normalizeRecord(mutated);
        if (n.kind === 'event') expect(typeof n.event.eventTimeMs).toBe('number');
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseCloudTrailFile', () => {
  it('returns the records of a log file', () => {
    const text = JSON.stringify(fixture('log-file'));
    const r = parseCloudTrailFile(text);
    expect('records' in r && r.records.map((x) => normalizeRecord(x).kind)).toEqual(['event', 'event', 'event', 'event']);
  });

  it('tolerates a byte-order mark', () => {
    expect(parseCloudTrailFile('\ufeff{"Records":[]}')).toEqual({ records: [] });
  });

  it.each([
    ['not json', /^not JSON/],
    ['[]', /expected an object/],
    ['{"records":[]}', /"Records" is missing/],
    ['{"Records":{}}', /"Records" is missing or not an array/],
  ])('rejects %s', (text, message) => {
    const r = parseCloudTrailFile(text);
    expect('error' in r && r.error).toMatch(message);
  });
});

describe('parseCloudTrailInput: what the watch directory and replay --cloudtrail read', () => {
  const events = fixture('eventbridge-events') as Record<string, unknown>[];
  const names = (r: { records: unknown[] } | { error: string }) =>
    'records' in r ? r.records.map((x) => (x as { eventName?: string }).eventName ?? x) : r.error;

  it('a log file, an EventBridge array, one event, bare records, and JSON lines of events give the same records', () => {
    const log = { Records: events.filter((e) => e['detail-type'] === 'AWS API Call via CloudTrail').map((e) => e['detail']) };
    expect(names(parseCloudTrailInput(JSON.stringify(log)))).toEqual(['GetCallerIdentity', 'GetObject']);
    expect(names(parseCloudTrailInput(JSON.stringify(events)))).toEqual(['GetCallerIdentity', 'GetObject']);
    expect(names(parseCloudTrailInput(JSON.stringify(events[0])))).toEqual(['GetCallerIdentity']);
    expect(names(parseCloudTrailInput(JSON.stringify(log.Records)))).toEqual(['GetCallerIdentity', 'GetObject']);
    expect(names(parseCloudTrailInput(JSON.stringify(log.Records[0])))).toEqual(['GetCallerIdentity']);
    expect(names(parseCloudTrailInput(`\ufeff${events.map((e) => JSON.stringify(e)).join('\n')}\n`))).toEqual([
      'GetCallerIdentity',
      'GetObject',
    ]);
  });

  it('keeps a JSON line that does not parse as text (an invalid record), and refuses what is no CloudTrail at all', () => {
    expect(names(parseCloudTrailInput(`${JSON.stringify(events[0])}\n{"truncated": \n`))).toEqual(['GetCallerIdentity', '{"truncated": ']);
    expect(names(parseCloudTrailInput('not json'))).toMatch(/^not JSON/);
    expect(names(parseCloudTrailInput('{"Records": [ {"eventVersion": "1.11", '))).toMatch(/^not JSON/);
    expect(names(parseCloudTrailInput('{"records":[]}'))).toMatch(/"Records" is missing/);
    expect(names(parseCloudTrailInput('{"Records":{}}'))).toMatch(/"Records" is missing or not an array/);
  });
});

describe('unwrapEventBridge', () => {
  it('returns the details of CloudTrail API call events and skips other detail-types', () => {
    const records = unwrapEventBridge(fixture('eventbridge-events'));
    expect(records.map((r) => eventFrom(r).eventName)).toEqual(['GetCallerIdentity', 'GetObject']);
  });

  it('accepts one envelope, a bare record, or an array of bare records', () => {
    const events = fixture('eventbridge-events') as unknown[];
    const bare = fixture('iam-user-akia');
    expect(unwrapEventBridge(events[0])).toHaveLength(1);
    expect(unwrapEventBridge(bare)).toEqual([bare]);
    expect(unwrapEventBridge([bare, bare])).toHaveLength(2);
    expect(unwrapEventBridge({ 'detail-type': 'AWS API Call via CloudTrail', detail: 'x' })).toEqual([]);
  });
});

describe('classifySource', () => {
  it.each([
    ['AWS Internal', 'aws-service'],
    ['ec2.amazonaws.com', 'aws-service'],
    ['elasticmapreduce.amazonaws.com', 'aws-service'],
    ['cloudformation.amazonaws.com.cn', 'aws-service'],
    ['203.0.113.10', 'ip'],
    ['2001:db8::1', 'ip'],
    ['::ffff:203.0.113.10', 'ip'],
    ['amazonaws.com', 'invalid'],
    ['evil.amazonaws.com.example.net', 'invalid'],
    ['AWS internal', 'invalid'],
    ['', 'invalid'],
    ['203.0.113.300', 'invalid'],
  ] as const)('%s → %s', (source, expected) => {
    expect(classifySource(source)).toBe(expected);
  });
});
