import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CidrSet, parseCidr } from '../../../../common/cidr/cidr-set.js';
import { formatIpv4, formatIpv6, parseIp } from '../../../../common/cidr/ip.js';

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', { cidr: '10.0.0.0/8', family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 }],
    ['203.0.113.0/28', { cidr: '203.0.113.0/28', family: 4, start: 0xcb007100n, end: 0xcb00710fn, prefix: 28 }],
    ['0.0.0.0/0', { cidr: '0.0.0.0/0', family: 4, start: 0n, end: 0xffffffffn, prefix: 0 }],
    ['192.0.2.7/32', { cidr: '192.0.2.7/32', family: 4, start: 0xc0000207n, end: 0xc0000207n, prefix: 32 }],
    [' 10.0.0.0/8 ', { cidr: '10.0.0.0/8', family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 }],
    // A bare address is a /32 or /128.
    ['192.0.2.7', { cidr: '192.0.2.7/32', family: 4, start: 0xc0000207n, end: 0xc0000207n, prefix: 32 }],
    ['::1', { cidr: '::1/128', family: 6, start: 1n, end: 1n, prefix: 128 }],
    [
      '2001:db8::/32',
      { cidr: '2001:db8::/32', family: 6, start: 0x20010db8n << 96n, end: (0x20010db8n << 96n) | ((1n << 96n) - 1n), prefix: 32 },
    ],
    [
      'fd12:3456:789a::/48',
      {
        cidr: 'fd12:3456:789a::/48',
        family: 6,
        start: 0xfd123456789an << 80n,
        end: (0xfd123456789an << 80n) | ((1n << 80n) - 1n),
        prefix: 48,
      },
    ],
    ['::/0', { cidr: '::/0', family: 6, start: 0n, end: (1n << 128n) - 1n, prefix: 0 }],
  ])('%j', (text, expected) => {
    expect(parseCidr(text)).toEqual({ ok: true, ...expected });
  });

  it('takes the network of a CIDR written with host bits set', () => {
    expect(parseCidr('10.1.2.3/8')).toMatchObject({ ok: true, family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 });
  });

  it.each([
    ['10.0.0.1/8', '10.0.0.0/8'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['192.0.2.7/24', '192.0.2.0/24'],
    ['203.0.113.15/28', '203.0.113.0/28'],
    ['255.255.255.255/0', '0.0.0.0/0'],
    ['2001:db8::1/32', '2001:db8::/32'],
    ['2001:db8::ffff/120', '2001:db8::ff00/120'],
    ['2001:DB8:0:0:0:0:0:1/64', '2001:db8::/64'],
  ])('clears the host bits of %j: its canonical cidr is %j', (text, cidr) => {
    const p = parseCidr(text);
    expect(p).toMatchObject({ ok: true, cidr });
    expect(parseCidr(cidr)).toEqual(p);
  });

  it.each([
    '203.0.113.0/33',
    '10.0.0.0/-1',
    '10.0.0.0/',
    '10.0.0.0/ 8',
    '10.0.0.0/8.5',
    '10.0.0.0/8/8',
    '10.0.0.0/x',
    '1.2.3.256/24',
    '1.2.3/24',
    '1.2.3',
    '01.0.0.0/8',
    '2001:db8::/129',
    '2001:db8::g/64',
    '[::1]',
    'abc',
    '',
    // A prefix length with a leading zero.
    '10.0.0.0/08',
    '10.0.0.0/008',
    '0.0.0.0/00',
    '2001:db8::/032',
    '::/00',
    // A zone id: a CIDR names a range, not an interface's link.
    'fe80::1%eth0/128',
    'fe80::%eth0/64',
    'fe80::1%eth0',
  ])('rejects %j with a message naming it', (text) => {
    expect(parseCidr(text)).toEqual({ ok: false, reason: `"${text}" is not a valid CIDR` });
  });
});

describe('CidrSet.match: the longest prefix wins, with its tag', () => {
  const set = CidrSet.compile<string>([
    { cidr: '10.0.0.0/8', tag: 'corp' },
    { cidr: '10.1.2.0/24', tag: 'lab' },
    { cidr: '10.1.0.0/16', tag: 'site' },
    { cidr: '10.1.2.128/25', tag: 'rack' },
    { cidr: '192.0.2.7', tag: 'host' },
    { cidr: '::/0', tag: 'v6-any' },
    { cidr: '2001:db8::/32', tag: 'doc' },
    { cidr: '2001:db8:1::/48', tag: 'doc-1' },
  ]);

  it.each([
    ['10.1.2.200', 'rack'],
    ['10.1.2.127', 'lab'],
    ['10.1.2.0', 'lab'],
    ['10.1.3.1', 'site'],
    ['10.1.255.255', 'site'],
    ['10.2.0.0', 'corp'],
    ['10.255.255.255', 'corp'],
    ['192.0.2.7', 'host'],
    ['::ffff:10.1.2.200', 'rack'],
    ['[::ffff:192.0.2.7]', 'host'],
    ['2001:db8:1::5', 'doc-1'],
    ['2001:db8:2::5', 'doc'],
    ['::1', 'v6-any'],
    ['fe80::1%eth0', 'v6-any'],
  ])('%s → %s', (address, tag) => {
    expect(set.match(address)?.tag).toBe(tag);
    expect(set.contains(address)).toBe(true);
  });

  it.each(['9.255.255.255', '11.0.0.0', '192.0.2.8', 'not-an-ip', '', '10.1.2'])('%j matches nothing', (address) => {
    expect(set.match(address)).toBeNull();
    expect(set.contains(address)).toBe(false);
  });

  it('returns the normalized entry, and keeps the entries in input order', () => {
    expect(set.match('192.0.2.7')).toEqual({
      cidr: '192.0.2.7/32',
      family: 4,
      start: 0xc0000207n,
      end: 0xc0000207n,
      prefix: 32,
      tag: 'host',
    });
    expect(set.entries.map((e) => e.tag)).toEqual(['corp', 'lab', 'site', 'rack', 'host', 'v6-any', 'doc', 'doc-1']);
    expect(set.size).toBe(8);
  });

  it('does not let an IPv4 set match IPv6 addresses or the reverse', () => {
    const v4only = CidrSet.of(['0.0.0.0/0']);
    expect(v4only.contains('::1')).toBe(false);
    expect(v4only.contains('2001:db8::1')).toBe(false);
    expect(v4only.contains('::ffff:8.8.8.8')).toBe(true);
    const v6only = CidrSet.of(['::/0']);
    expect(v6only.contains('8.8.8.8')).toBe(false);
    expect(v6only.contains('::ffff:8.8.8.8')).toBe(false);
  });

  it('is empty when built empty', () => {
    const empty = CidrSet.empty<string>();
    expect(empty.size).toBe(0);
    expect(empty.match('10.0.0.1')).toBeNull();
    expect(empty.contains('::1')).toBe(false);
  });

  it('refuses to compile an invalid CIDR', () => {
    expect(() => CidrSet.of(['10.0.0.0/8', '203.0.113.0/33'])).toThrow('"203.0.113.0/33" is not a valid CIDR');
  });
});

describe('CidrSet.contains over merged ranges', () => {
  it('handles overlapping, nested, duplicate and adjacent ranges', () => {
    const set = CidrSet.of([
      '10.0.0.0/25',
      '10.0.0.128/25', // adjacent halves of a /24
      '10.0.2.0/24',
      '10.0.2.0/26',
      '10.0.2.0/24', // nested and duplicate
      '10.0.4.0/23',
      '10.0.5.0/24', // overlapping
      '192.0.2.1',
      '192.0.2.2',
      '192.0.2.3', // adjacent single addresses
      '255.255.255.255',
      '0.0.0.0',
    ]);
    const inside = [
      '10.0.0.0',
      '10.0.0.127',
      '10.0.0.128',
      '10.0.0.255',
      '10.0.2.0',
      '10.0.2.255',
      '10.0.4.0',
      '10.0.5.255',
      '192.0.2.1',
      '192.0.2.2',
      '192.0.2.3',
      '255.255.255.255',
      '0.0.0.0',
    ];
    const outside = [
      '9.255.255.255',
      '10.0.1.0',
      '10.0.3.0',
      '10.0.1.255',
      '10.0.6.0',
      '192.0.2.0',
      '192.0.2.4',
      '255.255.255.254',
      '0.0.0.1',
    ];
    for (const a of inside) expect(set.contains(a), a).toBe(true);
    for (const a of outside) expect(set.contains(a), a).toBe(false);
  });

  it('handles adjacent and overlapping IPv6 ranges at both ends of the space', () => {
    const set = CidrSet.of([
      '::/127',
      '::2/127',
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127',
      '2001:db8::/33',
      '2001:db8:8000::/33',
      '2001:db8:4000::/34',
    ]);
    for (const a of [
      '::',
      '::1',
      '::2',
      '::3',
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      '2001:db8::',
      '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
      '2001:db8:7fff::1',
    ]) {
      expect(set.contains(a), a).toBe(true);
    }
    for (const a of ['::4', '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db9::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd']) {
      expect(set.contains(a), a).toBe(false);
    }
  });

  // Random CIDRs inside a small window so that overlaps, nesting and adjacency are common.
  const v4Cidr = fc.tuple(fc.integer({ min: 0, max: 0x3ff }), fc.integer({ min: 22, max: 32 })).map(([offset, prefix]) => {
    const base = (0x0a000000 + offset) >>> 0;
    return `${formatIpv4(base)}/${prefix}`;
  });
  const v4Probe = fc.integer({ min: -16, max: 0x400 + 16 }).map((o) => formatIpv4((0x0a000000 + o) >>> 0));

  function naiveContains(cidrs: string[], address: string): boolean {
    const ip = parseIp(address);
    if (!ip) return false;
    return cidrs.some((c) => {
      const p = parseCidr(c);
      if (!p.ok || p.family !== ip.family) return false;
      const v = BigInt(ip.value);
      return v >= p.start && v <= p.end;
    });
  }

  /** Random sets of `cidr` against random `probe`s: `contains` answers as the naive linear check does. */
  function agreesWithNaiveContains(cidr: fc.Arbitrary<string>, probe: fc.Arbitrary<string>): void {
    fc.assert(
      fc.property(fc.array(cidr, { maxLength: 30 }), fc.array(probe, { minLength: 1, maxLength: 40 }), (cidrs, probes) => {
        const set = CidrSet.of(cidrs);
        for (const p of probes) expect(set.contains(p), p).toBe(naiveContains(cidrs, p));
      }),
      { numRuns: 300 },
    );
  }

  /** The longest prefix among the CIDRs that contain the address, by masking (independent of the set's ranges). */
  function naiveLongestPrefix(cidrs: string[], address: string): number | null {
    const ip = parseIp(address)!.value as number;
    let best: number | null = null;
    for (const cidr of cidrs) {
      const [addr, bits] = cidr.split('/');
      const prefix = Number(bits);
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
      const net = ((parseIp(addr!)!.value as number) & mask) >>> 0;
      if ((ip & mask) >>> 0 === net && (best === null || prefix > best)) best = prefix;
    }
    return best;
  }

  it('agrees with a naive linear check on random IPv4 ranges', () => agreesWithNaiveContains(v4Cidr, v4Probe));

  it('match agrees with a naive longest-prefix search, and contains agrees with match', () => {
    fc.assert(
      fc.property(fc.array(v4Cidr, { maxLength: 20 }), fc.array(v4Probe, { minLength: 1, maxLength: 20 }), (cidrs, probes) => {
        const set = CidrSet.compile(cidrs.map((cidr, tag) => ({ cidr, tag })));
        for (const p of probes) {
          const hit = set.match(p);
          expect(hit?.prefix ?? null, p).toBe(naiveLongestPrefix(cidrs, p));
          if (hit) expect(cidrs[hit.tag], p).toMatch(new RegExp(`/${hit.prefix}$`));
          expect(set.contains(p), p).toBe(hit !== null);
        }
      }),
      { numRuns: 300 },
    );
  });

  const v6Cidr = fc
    .tuple(fc.bigInt({ min: 0n, max: 0xfffn }), fc.integer({ min: 116, max: 128 }))
    .map(([offset, prefix]) => `${formatIpv6((0x20010db8n << 96n) + offset)}/${prefix}`);
  const v6Probe = fc.bigInt({ min: -16n, max: 0x1000n + 16n }).map((o) => formatIpv6((0x20010db8n << 96n) + o));

  it('agrees with a naive linear check on random IPv6 ranges', () => agreesWithNaiveContains(v6Cidr, v6Probe));
});

describe('IPv4-mapped CIDRs', () => {
  // ip-cidr alone turned "::ffff:10.0.0.0/104" into the single address 10.0.0.0 (start === end)
  // while reporting prefix 8, so the set missed the rest of 10/8.
  it('"::ffff:10.0.0.0/104" covers 10.0.0.0/8', () => {
    expect(parseCidr('::ffff:10.0.0.0/104')).toMatchObject({ ok: true, family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 });
    expect(CidrSet.of(['::ffff:10.0.0.0/104']).contains('10.1.2.3')).toBe(true);
  });

  // The hex spelling of a mapped range must become family 4 too: parseIp folds every mapped
  // address to family 4, so a family-6 entry could never match.
  it('"::ffff:a00:0/104" (hex spelling) covers 10.0.0.0/8 too', () => {
    const set = CidrSet.of(['::ffff:a00:0/104']);
    expect(set.contains('10.1.2.3')).toBe(true);
    expect(set.contains('::ffff:10.1.2.3')).toBe(true);
  });

  it('a single mapped address is folded to IPv4', () => {
    expect(parseCidr('::ffff:10.0.0.1')).toMatchObject({ ok: true, family: 4, start: 0x0a000001n, end: 0x0a000001n, prefix: 32 });
    expect(CidrSet.of(['::ffff:10.0.0.1']).contains('10.0.0.1')).toBe(true);
  });

  it.each([
    ['::ffff:10.0.0.0/104', { cidr: '10.0.0.0/8', family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 }],
    ['::ffff:a00:0/104', { cidr: '10.0.0.0/8', family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 }],
    ['::FFFF:A00:0/104', { cidr: '10.0.0.0/8', family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 }],
    ['::ffff:0:0/96', { cidr: '0.0.0.0/0', family: 4, start: 0n, end: 0xffffffffn, prefix: 0 }],
    ['::ffff:10.1.2.3/104', { cidr: '10.0.0.0/8', family: 4, start: 0x0a000000n, end: 0x0affffffn, prefix: 8 }],
    ['::ffff:192.0.2.0/120', { cidr: '192.0.2.0/24', family: 4, start: 0xc0000200n, end: 0xc00002ffn, prefix: 24 }],
    ['::ffff:10.0.0.1', { cidr: '10.0.0.1/32', family: 4, start: 0x0a000001n, end: 0x0a000001n, prefix: 32 }],
    ['::ffff:10.0.0.1/128', { cidr: '10.0.0.1/32', family: 4, start: 0x0a000001n, end: 0x0a000001n, prefix: 32 }],
  ])('%j is the IPv4 range it maps (family 4, prefix - 96)', (text, expected) => {
    expect(parseCidr(text)).toEqual({ ok: true, ...expected });
  });

  it('"::ffff:0:0/96" covers every IPv4 address, in either spelling, and no other IPv6 address', () => {
    const set = CidrSet.of(['::ffff:0:0/96']);
    for (const a of ['0.0.0.0', '8.8.8.8', '255.255.255.255', '::ffff:8.8.8.8', '::ffff:808:808']) expect(set.contains(a), a).toBe(true);
    for (const a of ['::1', '::fffe:808:808', '2001:db8::1', '::8.8.8.8']) expect(set.contains(a), a).toBe(false);
  });

  it('leaves ranges next to the mapped block in IPv6', () => {
    expect(parseCidr('::fffe:0:0/96')).toMatchObject({ ok: true, family: 6, cidr: '::fffe:0:0/96', prefix: 96 });
    expect(parseCidr('::1:0:0:0/96')).toMatchObject({ ok: true, family: 6, prefix: 96 });
  });
});
