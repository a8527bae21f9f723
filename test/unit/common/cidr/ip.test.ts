import { isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp, formatIp, formatIpv4, formatIpv6, parseIp, parseIpv4, parseIpv6 } from '../../../../common/cidr/ip.js';

const MAX_V6 = (1n << 128n) - 1n;
const v6 = fc.bigInt({ min: 0n, max: MAX_V6 });
/** IPv6 values with long zero runs, where compression rules matter. */
const sparseV6 = fc
  .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((groups) => groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n));

/** How WHATWG URL (and so Node) serializes an IPv6 host: RFC 5952 compression, lower case. */
function urlCanonical(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

describe('parseIpv4', () => {
  it.each([
    ['0.0.0.0', 0],
    ['1.2.3.4', 0x01020304],
    ['10.0.0.0', 0x0a000000],
    ['127.0.0.1', 0x7f000001],
    ['203.0.113.15', 0xcb00710f],
    ['255.255.255.255', 0xffffffff],
  ])('%s is %d', (text, value) => {
    expect(parseIpv4(text)).toBe(value);
  });

  it.each([
    ['leading zero', '01.2.3.4'],
    ['leading zero in the last octet', '10.0.0.01'],
    ['double zero', '10.0.0.00'],
    ['octal-looking', '010.0.0.1'],
    ['256', '256.1.1.1'],
    ['256 in the last octet', '1.1.1.256'],
    ['four digits', '1000.1.1.1'],
    ['three parts (shorthand)', '1.2.3'],
    ['two parts (shorthand)', '127.1'],
    ['one number', '16909060'],
    ['five parts', '1.2.3.4.5'],
    ['empty part', '1..2.3'],
    ['trailing dot', '1.2.3.4.'],
    ['leading dot', '.1.2.3.4'],
    ['hex', '0x7f.0.0.1'],
    ['sign', '+1.2.3.4'],
    ['space', '1.2.3.4 '],
    ['port', '1.2.3.4:80'],
    ['CIDR', '1.2.3.4/32'],
    ['empty', ''],
    ['IPv6', '::1'],
  ])('rejects %s: %j', (_why, text) => {
    expect(parseIpv4(text)).toBeNull();
  });

  it('accepts exactly what node:net isIPv4 accepts, on dotted strings of tricky octets', () => {
    const octet = fc.constantFrom(
      '0',
      '00',
      '01',
      '1',
      '9',
      '10',
      '99',
      '100',
      '199',
      '249',
      '255',
      '256',
      '299',
      '999',
      '1000',
      '',
      'a',
      '-1',
    );
    fc.assert(
      fc.property(fc.array(octet, { minLength: 0, maxLength: 6 }), (parts) => {
        const text = parts.join('.');
        expect(parseIpv4(text) !== null).toBe(isIPv4(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips with formatIpv4 for every uint32', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), (v) => {
        expect(parseIpv4(formatIpv4(v))).toBe(v);
      }),
    );
  });

  it('parses every address fast-check generates, and rejects the extended (octal, hex, shorthand) forms Node rejects', () => {
    fc.assert(
      fc.property(fc.ipV4(), (text) => {
        expect(parseIpv4(text)).not.toBeNull();
        expect(formatIpv4(parseIpv4(text)!)).toBe(text);
      }),
    );
    fc.assert(
      fc.property(fc.ipV4Extended(), (text) => {
        expect(parseIpv4(text) !== null).toBe(isIPv4(text));
      }),
    );
  });
});

describe('parseIpv6', () => {
  it.each([
    ['::', 0n],
    ['::1', 1n],
    ['1::', 1n << 112n],
    ['2001:db8::1', 0x20010db8000000000000000000000001n],
    ['2001:DB8::1', 0x20010db8000000000000000000000001n],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 0x20010db8000000000000000000000001n],
    ['1:2:3:4:5:6:7:8', 0x00010002000300040005000600070008n],
    ['1:2:3:4:5:6:7::', 0x00010002000300040005000600070000n],
    ['::2:3:4:5:6:7:8', 0x00000002000300040005000600070008n],
    ['fe80::1:2', 0xfe800000000000000000000000010002n],
    ['[2001:db8::1]', 0x20010db8000000000000000000000001n],
    ['fe80::1%eth0', 0xfe800000000000000000000000000001n],
    ['[fe80::1%25]', 0xfe800000000000000000000000000001n],
    ['::ffff:1.2.3.4', 0xffff01020304n],
    ['::ffff:0102:0304', 0xffff01020304n],
    ['::1.2.3.4', 0x01020304n],
    ['64:ff9b::192.0.2.33', 0x0064ff9b0000000000000000c0000221n],
    ['1:2:3:4:5:6:1.2.3.4', 0x00010002000300040005000601020304n],
  ])('%s', (text, value) => {
    expect(parseIpv6(text)).toBe(value);
  });

  it.each([
    ['empty', ''],
    ['a single colon', ':'],
    ['three colons', ':::'],
    ['two "::"', '1::2::3'],
    ['nine groups', '1:2:3:4:5:6:7:8:9'],
    ['seven groups without "::"', '1:2:3:4:5:6:7'],
    ['"::" with eight groups', '1:2:3:4::5:6:7:8'],
    ['five hex digits', '12345::'],
    ['a non-hex digit', '::g'],
    ['a leading single colon', ':1::'],
    ['a trailing single colon', '1:'],
    ['IPv4 not at the end', '1.2.3.4::'],
    ['IPv4 in the middle', '::1.2.3.4:5'],
    ['IPv4 with a leading zero', '::ffff:01.2.3.4'],
    ['IPv4 shorthand', '::ffff:1.2.3'],
    ['IPv4 with 256', '::ffff:1.2.3.256'],
    ['IPv4 plus eight groups', '1:2:3:4:5:6:7:1.2.3.4'],
    ['an unclosed bracket', '[::1'],
    ['a bracket and a port', '[::1]:443'],
    ['a space', ' ::1'],
    ['a prefix length', '2001:db8::/32'],
    ['plain IPv4', '1.2.3.4'],
    ['only a zone', '%eth0'],
  ])('rejects %s: %j', (_why, text) => {
    expect(parseIpv6(text)).toBeNull();
  });

  // An empty zone id, or one with a second "%", is invalid (node:net isIPv6 and inet_pton agree).
  it.each(['::1%', '[::1%]', 'fe80::1%%eth0', 'fe80::1%eth0%', 'fe80::1%eth%0', '::1%25%'])('rejects the zone id of %j', (text) => {
    expect(parseIpv6(text)).toBeNull();
    expect(parseIp(text)).toBeNull();
    expect(isIPv6(text)).toBe(false);
  });

  it.each(['fe80::1%eth0', 'fe80::1%1', 'fe80::1%25', 'fe80::1%eth0.100', '[fe80::1%eth0]'])('accepts the zone id of %j', (text) => {
    expect(parseIpv6(text)).toBe(0xfe800000000000000000000000000001n);
  });

  it('agrees with node:net isIPv6 on strings assembled from tricky groups', () => {
    const group = fc.constantFrom(
      '0',
      '1',
      '00',
      '0000',
      'ffff',
      'FFFF',
      'db8',
      '12345',
      'g',
      '',
      '1.2.3.4',
      '01.2.3.4',
      '256.0.0.1',
      '1.2.3',
    );
    const text = fc
      .tuple(fc.array(group, { maxLength: 9 }), fc.integer({ min: -1, max: 9 }), fc.constantFrom('', '%eth0', '%1'))
      .map(
        ([parts, at, zone]) =>
          (at >= 0 && at <= parts.length ? `${parts.slice(0, at).join(':')}::${parts.slice(at).join(':')}` : parts.join(':')) + zone,
      );
    fc.assert(
      fc.property(text, (s) => {
        expect(parseIpv6(s) !== null).toBe(isIPv6(s));
      }),
      { numRuns: 3000 },
    );
  });

  it('parses every address fast-check generates, to the value URL normalization gives', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const value = parseIpv6(text);
        expect(value).not.toBeNull();
        expect(formatIpv6(value!)).toBe(urlCanonical(text));
      }),
    );
  });
});

describe('formatIpv6 (RFC 5952)', () => {
  it.each([
    [0n, '::'],
    [1n, '::1'],
    [1n << 112n, '1::'],
    [0x20010db8000000000000000000000001n, '2001:db8::1'],
    // A single zero group is never compressed.
    [0x20010db8000000010001000100010001n, '2001:db8:0:1:1:1:1:1'],
    // The longest run wins.
    [0x20010db8000000010000000000000001n, '2001:db8:0:1::1'],
    // On a tie, the first run wins.
    [0x20010db8000000000001000000000001n, '2001:db8::1:0:0:1'],
    // Lower case, no leading zeros.
    [0x20010db800ab00000000000000000000n, '2001:db8:ab::'],
    [0xfe800000000000000000000000000001n, 'fe80::1'],
    [0x00010002000300040005000600070008n, '1:2:3:4:5:6:7:8'],
    [MAX_V6, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ])('%s is %s', (value, text) => {
    expect(formatIpv6(value)).toBe(text);
  });

  it('matches the WHATWG URL serializer (an independent RFC 5952 implementation)', () => {
    fc.assert(
      fc.property(fc.oneof(v6, sparseV6), (value) => {
        const text = formatIpv6(value);
        expect(text).toBe(urlCanonical(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('parseIpv6(formatIpv6(v)) === v', () => {
    fc.assert(
      fc.property(fc.oneof(v6, sparseV6), (value) => {
        expect(parseIpv6(formatIpv6(value))).toBe(value);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseIp (IPv4-mapped folding)', () => {
  it.each([
    ['1.2.3.4', { family: 4, value: 0x01020304 }],
    ['::ffff:1.2.3.4', { family: 4, value: 0x01020304 }],
    ['::FFFF:1.2.3.4', { family: 4, value: 0x01020304 }],
    ['::ffff:0102:0304', { family: 4, value: 0x01020304 }],
    ['[::ffff:10.0.0.1]', { family: 4, value: 0x0a000001 }],
    ['0:0:0:0:0:ffff:7f00:1', { family: 4, value: 0x7f000001 }],
    ['::ffff:0.0.0.0', { family: 4, value: 0 }],
    ['::ffff:255.255.255.255', { family: 4, value: 0xffffffff }],
    ['::1', { family: 6, value: 1n }],
    // Not mapped: IPv4-compatible (deprecated) and NAT64 stay IPv6.
    ['::1.2.3.4', { family: 6, value: 0x01020304n }],
    ['64:ff9b::1.2.3.4', { family: 6, value: 0x0064ff9b000000000000000001020304n }],
    ['::fffe:1.2.3.4', { family: 6, value: 0xfffe01020304n }],
    ['fe80::1%eth0', { family: 6, value: 0xfe800000000000000000000000000001n }],
  ])('%s', (text, expected) => {
    expect(parseIp(text)).toEqual(expected);
  });

  it.each(['', 'abc', '1.2.3', '01.2.3.4', '::ffff:1.2.3', 'localhost', '1.2.3.4/32', '[1.2.3.4]'])('rejects %j', (text) => {
    expect(parseIp(text)).toBeNull();
  });

  it('folds every mapped address to the same value as its IPv4 form', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.boolean(), (v4, hex) => {
        const n = parseIpv4(v4)!;
        const mapped = hex ? `::ffff:${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}` : `::ffff:${v4}`;
        expect(parseIp(mapped)).toEqual({ family: 4, value: n });
        expect(canonicalIp(mapped)).toBe(v4);
      }),
    );
  });

  it('formatIp and canonicalIp give the canonical text of either family', () => {
    expect(formatIp({ family: 4, value: 0xc0000201 })).toBe('192.0.2.1');
    expect(formatIp({ family: 6, value: 0x20010db8000000000000000000000001n })).toBe('2001:db8::1');
    expect(canonicalIp('2001:0DB8:0000::0001')).toBe('2001:db8::1');
    expect(canonicalIp('[::ffff:192.0.2.1]')).toBe('192.0.2.1');
    expect(canonicalIp('fe80::1%eth0')).toBe('fe80::1');
    expect(canonicalIp('not an ip')).toBeNull();
  });
});
