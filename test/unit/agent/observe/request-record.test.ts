// The pure part of the one record: which decision line it gives, and which observation (if any).
import { describe, expect, it } from 'vitest';
import { newRecord, observationOf, type RequestRecord } from '../../../../agent/observe/model/request-record.js';
import { decisionEvent } from '../../../../agent/observe/canonical-log.js';

const who = { startedAt: 1_000, clientIp: '10.0.0.5', network: 'lab', capture: 'explicit' as const };
const sts = { service: 'sts', region: 'us-east-1', partition: 'aws' };

function record(over: Partial<RequestRecord> = {}): RequestRecord {
  return { ...newRecord('connect', 'tunnel', who, { host: 'sts.us-east-1.amazonaws.com', port: 443 }, sts), endedAt: 5_000, ...over };
}

describe('the request record', () => {
  it('a refusal before a target is known is a decision line and no observation', () => {
    const r = { ...newRecord('invalid', 'http', who, null, null), outcome: 'client_error' as const, reason: 'malformed' };
    expect(r.observed).toBe(false);
    expect(observationOf(r)).toBeNull();
    expect(decisionEvent(r)).toBe('refused');
  });

  it('each way out names its line', () => {
    expect(decisionEvent(record())).toBe('tunnel_closed');
    expect(decisionEvent(record({ outcome: 'denied', reason: 'destination-denied:private' }))).toBe('refused');
    expect(decisionEvent(record({ outcome: 'connect_timeout' }))).toBe('refused');
    expect(decisionEvent(record({ mode: 'inspect', observed: false }))).toBe('inspected_closed');
    expect(decisionEvent(record({ mode: 'inspect', outcome: 'tls_intercept_failed', reason: 'cert-rejected' }))).toBe('intercept_failed');
    expect(decisionEvent(record({ kind: 'inspected', mode: 'inspect' }))).toBe('request');
    expect(decisionEvent(record({ kind: 'http', mode: 'http', outcome: 'upstream_error' }))).toBe('request');
    expect(decisionEvent(record({ kind: 'transparent', host: null, port: null, outcome: 'client_error', reason: 'no-sni' }))).toBe(
      'refused',
    );
  });

  it('an inspected connection is not observed itself: its decrypted requests are', () => {
    expect(observationOf(record({ mode: 'inspect', observed: false }))).toBeNull();
  });

  it("a tunnel reported in windows is observed with its last window's times and bytes, its line keeps the totals", () => {
    const r = record({ bytesUp: 900, bytesDown: 9_000, lastWindow: { startedAt: 4_000, endedAt: 5_000, bytesUp: 100, bytesDown: 1_000 } });
    expect(observationOf(r)).toMatchObject({ startedAt: 4_000, endedAt: 5_000, bytesUp: 100, bytesDown: 1_000, outcome: 'ok' });
    expect(observationOf(record({ bytesUp: 7, bytesDown: 8 }))).toMatchObject({
      startedAt: 1_000,
      endedAt: 5_000,
      bytesUp: 7,
      bytesDown: 8,
    });
  });
});
