import { describe, expect, it } from 'vitest';
import { PassthroughMemory } from '../../../../agent/inspect/passthrough-memory.js';
import { rejectionAlert } from '../../../../agent/inspect/inspector.js';

function memory(maxEntries = 3, ttlMs = 1_000) {
  let now = 0;
  const sizes: number[] = [];
  const m = new PassthroughMemory({ maxEntries, ttlMs, now: () => now, onSize: (n) => sizes.push(n) });
  return { m, sizes, advance: (ms: number) => (now += ms) };
}

describe('PassthroughMemory', () => {
  it('remembers a (client, host) pair, not the host and not the client', () => {
    const { m } = memory();
    m.add('10.0.0.1', 'sts.us-east-1.amazonaws.com');
    expect(m.has('10.0.0.1', 'sts.us-east-1.amazonaws.com')).toBe(true);
    expect(m.has('10.0.0.2', 'sts.us-east-1.amazonaws.com')).toBe(false);
    expect(m.has('10.0.0.1', 'kms.us-east-1.amazonaws.com')).toBe(false);
  });

  it('forgets a pair after the TTL and reports the new size', () => {
    const { m, sizes, advance } = memory(3, 1_000);
    m.add('10.0.0.1', 'a.amazonaws.com');
    advance(999);
    expect(m.has('10.0.0.1', 'a.amazonaws.com')).toBe(true);
    advance(1);
    expect(m.has('10.0.0.1', 'a.amazonaws.com')).toBe(false);
    expect(m.size).toBe(0);
    expect(sizes).toEqual([1, 0]);
  });

  it('re-adding a pair starts its TTL again', () => {
    const { m, advance } = memory(3, 1_000);
    m.add('10.0.0.1', 'a.amazonaws.com');
    advance(800);
    m.add('10.0.0.1', 'a.amazonaws.com');
    advance(800);
    expect(m.has('10.0.0.1', 'a.amazonaws.com')).toBe(true);
    expect(m.size).toBe(1);
  });

  it('is bounded: the least recently used pair goes first', () => {
    const { m } = memory(3);
    m.add('10.0.0.1', 'a');
    m.add('10.0.0.2', 'a');
    m.add('10.0.0.3', 'a');
    expect(m.has('10.0.0.1', 'a')).toBe(true); // used: now the most recent
    m.add('10.0.0.4', 'a');
    expect(m.size).toBe(3);
    expect(m.has('10.0.0.2', 'a')).toBe(false);
    expect(m.has('10.0.0.1', 'a')).toBe(true);
    expect(m.has('10.0.0.3', 'a')).toBe(true);
    expect(m.has('10.0.0.4', 'a')).toBe(true);
  });

  it('keeps at most maxEntries under a flood of distinct pairs', () => {
    const { m } = memory(100);
    for (let i = 0; i < 10_000; i++) m.add(`10.0.${i >> 8}.${i & 255}`, 'sts.amazonaws.com');
    expect(m.size).toBe(100);
  });

  it('does not confuse pairs whose parts run together', () => {
    const { m } = memory();
    m.add('10.0.0.1', '1.a');
    expect(m.has('10.0.0.11', '.a')).toBe(false);
  });
});

describe('rejectionAlert', () => {
  const err = (code: string | undefined, message: string) => Object.assign(new Error(message), code ? { code } : {});

  it('maps the four certificate-rejection alerts by code', () => {
    expect(rejectionAlert(err('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'tlsv1 alert unknown ca'))).toBe('unknown-ca');
    expect(rejectionAlert(err('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'sslv3 alert bad certificate'))).toBe('bad-certificate');
    expect(rejectionAlert(err('ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'x'))).toBe('certificate-unknown');
    expect(rejectionAlert(err('ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'x'))).toBe('access-denied');
  });

  it('maps them by alert number when the code is unknown', () => {
    expect(rejectionAlert(err(undefined, 'routines:ssl3_read_bytes:whatever:SSL alert number 48'))).toBe('unknown-ca');
    expect(rejectionAlert(err('ERR_SOMETHING', 'SSL alert number 42'))).toBe('bad-certificate');
  });

  it('is null for every other error: resets, other alerts, garbage', () => {
    expect(rejectionAlert(err('ECONNRESET', 'read ECONNRESET'))).toBeNull();
    expect(rejectionAlert(err('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'SSL alert number 40'))).toBeNull();
    expect(rejectionAlert(err('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'))).toBeNull();
    expect(rejectionAlert(err('ERR_SSL_DECRYPT_ERROR', 'SSL alert number 51'))).toBeNull();
  });
});
