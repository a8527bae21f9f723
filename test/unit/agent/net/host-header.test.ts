import { describe, expect, it } from 'vitest';
import { parseHostHeader } from '../../../../agent/net/authority.js';

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
