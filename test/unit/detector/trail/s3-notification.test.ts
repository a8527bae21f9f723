/** What an SQS message of a trail's bucket asks for, which keys are log files, and the folders a backfill lists. */
import { describe, expect, it } from 'vitest';
import {
  dayFolders,
  decodeNotificationKey,
  isCloudTrailLogKey,
  keyTimeMs,
  parseQueueMessage,
  parseS3Url,
} from '../../../../detector/trail/s3-notification.js';

const KEY =
  'AWSLogs/o-aa111bb222/111122223333/CloudTrail/us-east-1/2026/11/04/111122223333_CloudTrail_us-east-1_20261104T1205Z_abcDEF123.json.gz';

function s3Event(bucket: string, encodedKey: string, eventName = 'ObjectCreated:Put'): string {
  return JSON.stringify({
    Records: [
      { eventVersion: '2.1', eventSource: 'aws:s3', eventName, s3: { bucket: { name: bucket }, object: { key: encodedKey, size: 1234 } } },
    ],
  });
}

describe('parseQueueMessage', () => {
  it('reads an S3 event notification, decoding the form-encoded key', () => {
    expect(parseQueueMessage(s3Event('org-trail', 'prefix+with+space/' + KEY.replace(/:/g, '%3A')))).toEqual({
      kind: 'objects',
      objects: [{ bucket: 'org-trail', key: `prefix with space/${KEY}`, size: 1234 }],
    });
  });

  it('unwraps SNS, and reads CloudTrail’s own notification plain or wrapped', () => {
    const wrapped = JSON.stringify({
      Type: 'Notification',
      MessageId: 'm1',
      TopicArn: 'arn:aws:sns:us-east-1:111122223333:t',
      Message: s3Event('org-trail', KEY),
    });
    expect(parseQueueMessage(wrapped)).toEqual({ kind: 'objects', objects: [{ bucket: 'org-trail', key: KEY, size: 1234 }] });
    const trail = JSON.stringify({ s3Bucket: 'org-trail', s3ObjectKey: [KEY, KEY.replace('abcDEF123', 'other')] });
    expect(parseQueueMessage(trail)).toMatchObject({
      kind: 'objects',
      objects: [{ key: KEY, size: null }, { key: expect.stringContaining('other') }],
    });
    expect(parseQueueMessage(JSON.stringify({ Type: 'Notification', Message: trail }))).toMatchObject({ kind: 'objects' });
  });

  it('knows the test event, plain and wrapped', () => {
    const test = JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Time: '2026-11-04T12:00:00.000Z', Bucket: 'org-trail' });
    expect(parseQueueMessage(test)).toEqual({ kind: 'test' });
    expect(parseQueueMessage(JSON.stringify({ Type: 'Notification', Message: test }))).toEqual({ kind: 'test' });
  });

  it('skips records that are not object creations', () => {
    expect(parseQueueMessage(s3Event('org-trail', KEY, 'ObjectRemoved:Delete'))).toEqual({ kind: 'objects', objects: [] });
  });

  it.each([
    ['not JSON', 'hello'],
    ['a JSON array', '[1,2]'],
    ['an unrelated object', '{"foo":1}'],
    ['SNS without a Message', '{"Type":"Notification"}'],
    ['SNS with a Message that is not JSON', '{"Type":"Notification","Message":"x"}'],
    ['a record without a key', '{"Records":[{"s3":{"bucket":{"name":"org-trail"}}}]}'],
    ['a key that does not decode', s3Event('org-trail', '%E0%A4%A')],
    ['a bucket that is not one', s3Event('Org_Trail', KEY)],
    ['CloudTrail keys that are not strings', '{"s3Bucket":"org-trail","s3ObjectKey":[1]}'],
  ])('calls %s invalid, with a reason', (_what, body) => {
    const m = parseQueueMessage(body);
    expect(m.kind).toBe('invalid');
    expect(m.kind === 'invalid' && m.reason.length).toBeGreaterThan(5);
  });
});

describe('keys', () => {
  it('takes log files of organization and account trails, not digests, Insights or other objects', () => {
    expect(isCloudTrailLogKey(KEY)).toBe(true);
    expect(isCloudTrailLogKey(KEY.replace('o-aa111bb222/', ''))).toBe(true);
    expect(isCloudTrailLogKey(`some/prefix/${KEY.replace('.json.gz', '.json')}`)).toBe(true);
    expect(isCloudTrailLogKey(KEY.replace('/CloudTrail/', '/CloudTrail-Digest/').replace('_CloudTrail_', '_CloudTrail-Digest_'))).toBe(
      false,
    );
    expect(isCloudTrailLogKey(KEY.replace('/CloudTrail/', '/CloudTrail-Insight/'))).toBe(false);
    expect(isCloudTrailLogKey('AWSLogs/111122223333/elasticloadbalancing/us-east-1/2026/11/04/x.log.gz')).toBe(false);
    expect(isCloudTrailLogKey(KEY.replace('.json.gz', '.txt'))).toBe(false);
  });

  it('decodes + as a space and %XX escapes', () => {
    expect(decodeNotificationKey('a+b%2Bc%3D')).toBe('a b+c=');
    expect(decodeNotificationKey('%')).toBeNull();
  });

  it('reads the delivery time in the file name', () => {
    expect(keyTimeMs(KEY)).toBe(Date.parse('2026-11-04T12:05:00Z'));
    expect(keyTimeMs('AWSLogs/x.json.gz')).toBeNull();
  });
});

describe('backfill layout', () => {
  it('parses s3:// URLs', () => {
    expect(parseS3Url('s3://org-trail/AWSLogs/')).toEqual({ bucket: 'org-trail', prefix: 'AWSLogs/' });
    expect(parseS3Url('s3://org-trail')).toEqual({ bucket: 'org-trail', prefix: '' });
    expect(parseS3Url('https://org-trail/')).toMatchObject({ error: expect.stringContaining('s3://') });
    expect(parseS3Url('s3://No_Bucket/')).toMatchObject({ error: expect.stringContaining('bucket') });
  });

  it('lists one folder per UTC day, and the day before when the range starts in the first hour', () => {
    const region = 'AWSLogs/111122223333/CloudTrail/eu-west-1/';
    expect(dayFolders(region, Date.parse('2026-11-01T05:00:00Z'), Date.parse('2026-11-03T01:00:00Z'))).toEqual([
      `${region}2026/11/01/`,
      `${region}2026/11/02/`,
      `${region}2026/11/03/`,
    ]);
    expect(dayFolders(region, Date.parse('2026-11-01T00:10:00Z'), Date.parse('2026-11-01T02:00:00Z'))).toEqual([
      `${region}2026/10/31/`,
      `${region}2026/11/01/`,
    ]);
  });
});
