import { describe, expect, it } from 'vitest';
import { normalizeRecord } from '../../../../detector/cloudtrail/parse.js';
import { copySummary, eventFingerprint, judgeCopy, type EventOrigin } from '../../../../detector/correlate/event-identity.js';
import { fixture, stsCall } from '../scenario.js';

const copy = (origin: EventOrigin, fingerprint: string) => ({ origin, fingerprint });

describe('judgeCopy', () => {
  it('decides a copy of an event ID seen for the first time', () => {
    expect(judgeCopy(null, copy('pushed', 'a'))).toEqual({ kind: 'new' });
    expect(judgeCopy(null, copy('trail', 'a'))).toEqual({ kind: 'new' });
  });

  it('takes the same content as a duplicate, noting the trail when it vouches for a pushed copy', () => {
    expect(judgeCopy(copy('pushed', 'a'), copy('trail', 'a'))).toEqual({ kind: 'duplicate', promote: true });
    expect(judgeCopy(copy('trail', 'a'), copy('pushed', 'a'))).toEqual({ kind: 'duplicate', promote: false });
    expect(judgeCopy(copy('trail', 'a'), copy('trail', 'a'))).toEqual({ kind: 'duplicate', promote: false });
    expect(judgeCopy(copy('pushed', 'a'), copy('pushed', 'a'))).toEqual({ kind: 'duplicate', promote: false });
  });

  it('lets a trail copy supersede a pushed copy that differs, never the other way round', () => {
    expect(judgeCopy(copy('pushed', 'a'), copy('trail', 'b'))).toEqual({ kind: 'supersede' });
    expect(judgeCopy(copy('trail', 'a'), copy('pushed', 'b'))).toEqual({ kind: 'conflict' });
    expect(judgeCopy(copy('trail', 'a'), copy('trail', 'b'))).toEqual({ kind: 'conflict' });
    expect(judgeCopy(copy('pushed', 'a'), copy('pushed', 'b'))).toEqual({ kind: 'conflict' });
  });

  it('adopts the next copy as the identity of a row an older detector kept without one', () => {
    expect(judgeCopy({ origin: null, fingerprint: null }, copy('pushed', 'a'))).toEqual({ kind: 'adopt' });
    expect(judgeCopy({ origin: null, fingerprint: null }, copy('trail', 'a'))).toEqual({ kind: 'adopt' });
  });
});

describe('eventFingerprint', () => {
  it('is the same for a log file record and the EventBridge detail of one call (extra fields do not count)', () => {
    const record = fixture('instance-role-imdsv2-sts-getcalleridentity') as Record<string, unknown>;
    const detail = { ...record, requestParameters: { anything: 1 }, responseElements: null, eventType: 'AwsApiCall' };
    const a = normalizeRecord(record);
    const b = normalizeRecord(detail);
    if (a.kind !== 'event' || b.kind !== 'event') throw new Error('fixture does not normalize');
    expect(eventFingerprint(a.event)).toBe(eventFingerprint(b.event));
  });

  it('keeps the format rows already stored have: a different digest would make every copy kept before an upgrade a conflict', () => {
    const n = normalizeRecord(fixture('instance-role-imdsv2-sts-getcalleridentity'));
    if (n.kind !== 'event') throw new Error('fixture does not normalize');
    expect(eventFingerprint(n.event)).toBe('9__tix1tuFBDPB0W6M6N8W-E8jwRHQipTYnMbfloXF4');
  });

  it('changes with any field a decision or a finding reads', () => {
    const base = stsCall();
    const variants = [
      stsCall({ sourceIPAddress: 'AWS Internal' }),
      stsCall({ eventTime: '2024-05-01T12:01:08Z' }),
      stsCall({ vpcEndpointId: 'vpce-0123456789abcdef0' }),
      stsCall({ eventName: 'GetSessionToken' }),
      stsCall({ awsRegion: 'eu-west-1' }),
      stsCall({ identity: { accessKeyId: 'ASIAOTHERKEY00000000' } }),
      stsCall({ identity: { arn: 'arn:aws:sts::111122223333:assumed-role/other/i-0a1b2c3d4e5f67890' } }),
      stsCall({ identity: { ec2RoleDelivery: null } }),
    ];
    const prints = new Set([base, ...variants].map(eventFingerprint));
    expect(prints.size).toBe(variants.length + 1);
  });
});

describe('copySummary', () => {
  it('names the origin and the fields that tell two copies apart', () => {
    expect(copySummary(stsCall(), 'pushed')).toMatchObject({
      origin: 'pushed',
      sourceIPAddress: '203.0.113.10',
      eventName: 'GetCallerIdentity',
      accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
    });
  });
});
