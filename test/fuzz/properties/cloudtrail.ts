/**
 * CloudTrail input (detector/cloudtrail/parse.ts): records from the test
 * fixtures and generated ones (assumed-role ARNs, IMDS delivery, service
 * sources), damaged structurally (fields dropped, retyped, nested 300 deep,
 * "__proto__" keys), through the live path: bounded depth, normalisation,
 * credential kind, source class. Log files and EventBridge envelopes built
 * from them, damaged as text.
 *
 * Properties: never throws; a bounded record always serialises (the store
 * writes it); the hand-written fast path accepts exactly what the schema
 * accepts; the event's access key is the record's own; a log file's records
 * read back exactly as written.
 */
import fc from 'fast-check';
import { boundDepth } from '../../../common/json/bounded-depth.js';
import {
  classifySource,
  cloudTrailRecordSchema,
  instanceCredentialKind,
  instanceIdOf,
  normalizeRecord,
  parseCloudTrailFile,
  unwrapEventBridge,
} from '../../../detector/cloudtrail/parse.js';
import { accessKeyId } from '../lib/aws-request.js';
import { applyTextMutations, mutatedJson, textMutation } from '../lib/mutate.js';
import { readRepoJson } from '../lib/repo-file.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

const FIXTURES = [
  'aws-internal.json',
  'iam-user-akia.json',
  'instance-identity-aws-ec2-instance.json',
  'instance-role-imdsv1-ec2-describeinstances.json',
  'instance-role-imdsv2-sts-getcalleridentity.json',
  'instance-role-s3-getobject-data-event.json',
  'instance-role-session-name-only.json',
  'service-source-ec2-amazonaws-com.json',
  'sso-user.json',
  'vpc-endpoint-private-source.json',
];

function fixtureRecords(): unknown[] {
  const out: unknown[] = FIXTURES.map((f) => readRepoJson(`test/fixtures/cloudtrail/${f}`));
  out.push(...((readRepoJson('test/fixtures/cloudtrail/log-file.json') as { Records: unknown[] }).Records ?? []));
  out.push(...unwrapEventBridge(readRepoJson('test/fixtures/cloudtrail/eventbridge-events.json')));
  out.push(...(readRepoJson('test/fixtures/cloudtrail/garbage.json') as unknown[]));
  return out;
}

let fixtures: unknown[] | null = null;
const fixture = fc.nat().map((i) => {
  fixtures ??= fixtureRecords();
  return structuredClone(fixtures[i % fixtures.length]);
});

const time = fc
  .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z'));
const sourceIp = fc.oneof(
  fc.constantFrom('203.0.113.10', 'AWS Internal', 'ec2.amazonaws.com', 's3.amazonaws.com.cn', '2001:db8::1', 'not-an-ip', ''),
  fc.ipV4(),
  fc.ipV6(),
);
const sessionName = fc.oneof(
  fc.constantFrom('i-0a1b2c3d4e5f67890', 'i-12345678', 'botocore-session-1', 'a/b'),
  fc.string({ maxLength: 20 }),
);
const roleName = fc.oneof(fc.constantFrom('app-role', 'aws:ec2-instance', 'r/s'), fc.string({ maxLength: 12 }));

const generated = fc
  .record({
    eventVersion: fc.constantFrom('1.08', '1.11', '2.0', '1.x'),
    eventID: fc.uuid(),
    eventTime: time,
    eventSource: fc.constantFrom('sts.amazonaws.com', 's3.amazonaws.com', 'ec2.amazonaws.com'),
    eventName: fc.constantFrom('GetCallerIdentity', 'GetObject', 'DescribeInstances'),
    awsRegion: fc.constantFrom('us-east-1', 'eu-west-1'),
    sourceIPAddress: sourceIp,
    userAgent: fc.option(fc.string({ maxLength: 30 }), { nil: undefined }),
    vpcEndpointId: fc.option(fc.constantFrom('vpce-0123456789abcdef0'), { nil: null }),
    tlsDetails: fc.option(fc.record({ clientProvidedHostHeader: fc.constantFrom('sts.us-east-1.amazonaws.com', '') }), { nil: undefined }),
    type: fc.constantFrom('AssumedRole', 'IAMUser', 'AWSService', 'Root'),
    role: roleName,
    session: sessionName,
    key: fc.option(accessKeyId, { nil: null }),
    delivery: fc.option(fc.constantFrom('1.0', '2.0', ''), { nil: undefined }),
  })
  .map((g) => ({
    eventVersion: g.eventVersion,
    userIdentity: {
      type: g.type,
      principalId: `AROAEXAMPLE:${g.session}`,
      arn: `arn:aws:sts::111122223333:assumed-role/${g.role}/${g.session}`,
      accountId: '111122223333',
      accessKeyId: g.key,
      sessionContext: {
        sessionIssuer: { type: 'Role', arn: `arn:aws:iam::111122223333:role/${g.role}`, userName: g.role },
        attributes: { creationDate: g.eventTime, mfaAuthenticated: 'false' },
        ...(g.delivery !== undefined ? { ec2RoleDelivery: g.delivery } : {}),
      },
    },
    eventTime: g.eventTime,
    eventSource: g.eventSource,
    eventName: g.eventName,
    awsRegion: g.awsRegion,
    sourceIPAddress: g.sourceIPAddress,
    ...(g.userAgent !== undefined ? { userAgent: g.userAgent } : {}),
    requestParameters: null,
    responseElements: null,
    eventID: g.eventID,
    vpcEndpointId: g.vpcEndpointId,
    ...(g.tlsDetails !== undefined ? { tlsDetails: g.tlsDetails } : {}),
    recipientAccountId: '111122223333',
  }));

export const cloudTrailRecord: fc.Arbitrary<unknown> = fc.oneof(fixture, generated);

interface RecordCase {
  value: unknown;
}

const recordCase: fc.Arbitrary<RecordCase> = mutatedJson(cloudTrailRecord, 5).map(({ value }) => ({ value }));

function keyOf(raw: unknown): unknown {
  const id = (raw as { userIdentity?: unknown } | null)?.userIdentity;
  return typeof id === 'object' && id !== null ? ((id as { accessKeyId?: unknown }).accessKeyId ?? null) : undefined;
}

function checkRecord(input: unknown): void {
  const bounded = callParser('boundDepth', () => boundDepth(input));
  ensure(bounded !== undefined, 'no answer');
  callParser('JSON.stringify of a bounded record', () => JSON.stringify(bounded.value));
  const raw = bounded.value;
  const n = callParser('normalizeRecord', () => normalizeRecord(raw));
  ensure(n !== undefined, 'no answer');
  const schemaAccepts = cloudTrailRecordSchema.safeParse(raw).success;
  ensure(
    schemaAccepts === (n.kind === 'event'),
    () => `fast path ${n.kind === 'event' ? 'accepted' : 'refused'} what the schema ${schemaAccepts ? 'accepts' : 'refuses'}`,
  );
  if (n.kind === 'invalid') {
    ensure(typeof n.reason === 'string' && n.reason !== '', 'invalid without a reason');
    return;
  }
  const e = n.event;
  ensure(
    e.identity.accessKeyId === keyOf(raw),
    () => `event key ${e.identity.accessKeyId} is not the record's ${fc.stringify(keyOf(raw))}`,
  );
  ensure(Number.isFinite(e.eventTimeMs), 'event time is not a number');
  callParser('instanceCredentialKind', () => instanceCredentialKind(e));
  const instance = callParser('instanceIdOf', () => instanceIdOf(e));
  ensure(instance === null || /^i-[0-9a-f]{8,17}$/.test(instance ?? ''), () => `instance id ${instance}`);
  callParser('classifySource', () => classifySource(e.sourceIPAddress));
}

export const cloudTrailRecordTarget: FuzzTarget<RecordCase> = {
  name: 'cloudtrail-record',
  title: 'CloudTrail record (normalisation, credential kind, source class)',
  arbitrary: recordCase,
  check({ value }) {
    checkRecord(value);
  },
};

// ── log files and EventBridge envelopes ──────────────────────────────────────

interface FileCase {
  text: string;
  records: unknown[];
  mutated: boolean;
  envelope: boolean;
}

const fileCase: fc.Arbitrary<FileCase> = fc
  .tuple(
    fc.array(cloudTrailRecord, { maxLength: 4 }),
    fc.boolean(),
    fc.boolean(),
    fc.constantFrom(0, 0, 2),
    fc.array(textMutation, { maxLength: 3 }),
  )
  .map(([records, envelope, bom, indent, ms]) => {
    const doc = envelope
      ? records.map((detail, i) => ({
          version: '0',
          id: `e-${i}`,
          'detail-type': i === 3 ? 'AWS Console Sign In via CloudTrail' : 'AWS API Call via CloudTrail',
          source: 'aws.sts',
          detail,
        }))
      : { Records: records };
    const text = (bom ? '\ufeff' : '') + JSON.stringify(doc, null, indent);
    return { text: applyTextMutations(text, ms), records, mutated: ms.length > 0, envelope };
  });

export const cloudTrailFileTarget: FuzzTarget<FileCase> = {
  name: 'cloudtrail-file',
  title: 'CloudTrail log file and EventBridge events',
  arbitrary: fileCase,
  check({ text, records, mutated, envelope }) {
    let found: unknown[] = [];
    if (!envelope) {
      const file = callParser('parseCloudTrailFile', () => parseCloudTrailFile(text));
      ensure(file !== undefined, 'no answer');
      if ('error' in file) {
        ensure(mutated, () => `an intact log file was refused: ${file.error}`);
        ensure(typeof file.error === 'string' && file.error !== '', 'error without a reason');
      } else {
        found = file.records;
        if (!mutated) ensure(deepEqual(found, records), 'records did not read back as written');
      }
    } else {
      let value: unknown;
      try {
        value = JSON.parse(text.replace(/^\ufeff/, ''));
      } catch {
        ensure(mutated, 'intact EventBridge events are not JSON');
        return;
      }
      found = callParser('unwrapEventBridge', () => unwrapEventBridge(value)) ?? [];
      const sent = records.slice(0, 3).filter((r) => typeof r === 'object' && r !== null && !Array.isArray(r));
      if (!mutated) ensure(deepEqual(found, sent), 'EventBridge details did not read back as sent');
    }
    for (const r of found.slice(0, 8)) checkRecord(r);
  },
};
