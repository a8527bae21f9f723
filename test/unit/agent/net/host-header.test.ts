import { describe, expect, it } from 'vitest';
import { headAmbiguity, parseHostHeader } from '../../../../agent/net/authority.js';

describe('parseHostHeader (routing redirected plain HTTP)', () => {
  it.each([
    ['s3.us-east-1.amazonaws.com', { host: 's3.us-east-1.amazonaws.com', isIp: false, port: null }],
    ['S3.US-EAST-1.amazonaws.com.', { host: 's3.us-east-1.amazonaws.com', isIp: false, port: null }],
    ['bucket.s3.amazonaws.com:8080', { host: 'bucket.s3.amazonaws.com', isIp: false, port: 8080 }],
    ['203.0.113.7', { host: '203.0.113.7', isIp: true, port: null }],
    ['[2001:db8::1]:80', { host: '2001:db8::1', isIp: true, port: 80 }],
    ['[2001:db8::1]', { host: '2001:db8::1', isIp: true, port: null }],
  ])('%s', (value, expected) => {
    expect(parseHostHeader(value)).toEqual(expected);
  });

  it.each([undefined, '', 'host:0', 'host:99999', 'host:', 'a b', '2001:db8::1', '[nope]:80', 'user@host', '127.1', 'host:80:80'])(
    'refuses %s',
    (value) => {
      expect(parseHostHeader(value)).toBeNull();
    },
  );
});

describe('headAmbiguity (a request head the agent could not record as it is forwarded)', () => {
  const target = { host: 'sts.us-east-1.amazonaws.com', port: 443 };
  it.each([
    [['Host', 'sts.us-east-1.amazonaws.com', 'Authorization', 'AWS4-HMAC-SHA256 x'], null],
    [['host', 'STS.us-east-1.amazonaws.com.', 'authorization', 'a'], null],
    [['Host', 'sts.us-east-1.amazonaws.com:443'], null],
    [['X-Amz-Date', '20261125T120000Z'], null],
    [['Authorization', 'a', 'X-Other', 'b', 'AUTHORIZATION', 'c'], 'repeated-authorization'],
    [['Host', 'sts.us-east-1.amazonaws.com', 'host', 'sts.us-east-1.amazonaws.com'], 'repeated-host'],
    [['Host', 'other.us-east-1.amazonaws.com'], 'host-mismatch'],
    [['Host', 'sts.us-east-1.amazonaws.com:8443'], 'host-mismatch'],
    [['Host', 'not a host'], 'host-mismatch'],
    [['Host', ''], 'host-mismatch'],
  ])('%j', (raw, expected) => {
    expect(headAmbiguity(raw, target)).toBe(expected);
  });

  it('compares IP literals in their canonical form', () => {
    expect(headAmbiguity(['Host', '[2001:DB8:0::1]:443'], { host: '2001:db8::1', port: 443 })).toBeNull();
    expect(headAmbiguity(['Host', '203.0.113.7'], { host: '203.0.113.8', port: 80 })).toBe('host-mismatch');
  });
});
