/** The row kept for an event: its fingerprint worked out when first read, the same as eventFingerprint's, and kept. */
import { describe, expect, it } from 'vitest';
import { normalizeRecord } from '../../../../detector/cloudtrail/parse.js';
import { eventFingerprint } from '../../../../detector/correlate/event-identity.js';
import { eventRow } from '../../../../detector/engine/correlation-engine.js';
import { fixture, stsCall } from '../scenario.js';

describe('eventRow', () => {
  it('has the fingerprint eventFingerprint gives, in the format rows already stored have', () => {
    const n = normalizeRecord(fixture('instance-role-imdsv2-sts-getcalleridentity'));
    if (n.kind !== 'event') throw new Error('fixture does not normalize');
    const row = eventRow(n.event, 'trail', 1_000);
    // Stored by earlier versions: a different digest would make every copy kept before an upgrade a conflict.
    expect(row.fingerprint).toBe('9__tix1tuFBDPB0W6M6N8W-E8jwRHQipTYnMbfloXF4');
    expect(row.fingerprint).toBe(eventFingerprint(n.event));
  });

  it('keeps the fingerprint once read, and hands it to whatever copies or serializes the row', () => {
    const event = stsCall();
    const row = eventRow(event, 'pushed', 2_000);
    const first = row.fingerprint;
    expect(row.fingerprint).toBe(first);
    expect({ ...row }.fingerprint).toBe(first);
    expect((JSON.parse(JSON.stringify(row)) as { fingerprint: string }).fingerprint).toBe(first);
    expect(eventRow(event, 'pushed', 2_000)).toEqual({ ...row });
  });

  it('holds the other columns as the event has them', () => {
    const event = stsCall({ vpcEndpointId: 'vpce-0123456789abcdef0' });
    const row = eventRow(event, 'trail', 3_000);
    expect(row).toMatchObject({
      eventId: event.eventId,
      accessKeyId: event.identity.accessKeyId,
      sourceIp: event.sourceIPAddress,
      eventTimeMs: event.eventTimeMs,
      vpcEndpointId: 'vpce-0123456789abcdef0',
      origin: 'trail',
      seenMs: 3_000,
    });
    expect(row.summary).toMatchObject({ origin: 'trail', accessKeyId: event.identity.accessKeyId });
  });
});
