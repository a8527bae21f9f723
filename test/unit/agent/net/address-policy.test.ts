import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyAddress, DestinationPolicy, type AddressClass } from '../../../../agent/net/address-policy.js';

type Expected = 'public' | Exclude<AddressClass, { kind: 'public' }>['reason'];

// [address, expected class, why] — smokescreen-style: one row per edge.
const TABLE: readonly [string, Expected, string][] = [
  // IPv4 public
  ['52.94.0.1', 'public', 'AWS'],
  ['54.239.28.85', 'public', 'AWS'],
  ['8.8.8.8', 'public', 'public resolver'],
  ['1.1.1.1', 'public', 'public resolver'],
  ['223.255.255.255', 'public', 'last unicast before multicast'],
  // unspecified and "this network"
  ['0.0.0.0', 'unspecified', 'IPv4 any'],
  ['0.1.2.3', 'reserved', '0.0.0.0/8'],
  // RFC 1918 and its edges
  ['9.255.255.255', 'public', 'just below 10/8'],
  ['10.0.0.1', 'private', '10/8'],
  ['10.255.255.255', 'private', 'top of 10/8'],
  ['11.0.0.0', 'public', 'just above 10/8'],
  ['172.15.255.255', 'public', 'just below 172.16/12'],
  ['172.16.0.0', 'private', 'bottom of 172.16/12'],
  ['172.31.255.255', 'private', 'top of 172.16/12'],
  ['172.32.0.0', 'public', 'just above 172.16/12'],
  ['192.167.255.255', 'public', 'just below 192.168/16'],
  ['192.168.0.1', 'private', '192.168/16'],
  ['192.168.255.255', 'private', 'top of 192.168/16'],
  ['192.169.0.0', 'public', 'just above 192.168/16'],
  // CGNAT and its edges
  ['100.63.255.255', 'public', 'just below 100.64/10'],
  ['100.64.0.0', 'cgnat', 'bottom of 100.64/10'],
  ['100.127.255.255', 'cgnat', 'top of 100.64/10'],
  ['100.128.0.0', 'public', 'just above 100.64/10'],
  // loopback
  ['127.0.0.1', 'loopback', 'localhost'],
  ['127.255.255.254', 'loopback', '127/8'],
  // link-local and credential endpoints
  ['169.254.169.254', 'metadata', 'EC2 IMDS'],
  ['169.254.170.2', 'metadata', 'ECS task credentials'],
  ['169.254.170.23', 'metadata', 'EKS Pod Identity'],
  ['169.254.169.253', 'link-local', 'Amazon DNS (not a credential endpoint)'],
  ['169.254.0.1', 'link-local', '169.254/16'],
  ['169.253.255.255', 'public', 'just below 169.254/16'],
  ['169.255.0.0', 'public', 'just above 169.254/16'],
  // reserved, documentation, benchmarking
  ['192.0.0.1', 'reserved', 'IETF protocol assignments'],
  ['192.0.2.1', 'reserved', 'TEST-NET-1'],
  ['198.51.100.7', 'reserved', 'TEST-NET-2'],
  ['203.0.113.9', 'reserved', 'TEST-NET-3'],
  ['192.88.99.1', 'reserved', '6to4 relay anycast'],
  ['198.17.255.255', 'public', 'just below 198.18/15'],
  ['198.18.0.1', 'reserved', 'benchmarking'],
  ['198.19.255.255', 'reserved', 'top of benchmarking'],
  ['198.20.0.0', 'public', 'just above 198.18/15'],
  // multicast, class E, broadcast
  ['224.0.0.1', 'multicast', 'all hosts'],
  ['239.255.255.250', 'multicast', 'SSDP'],
  ['240.0.0.1', 'reserved', 'class E'],
  ['255.255.255.254', 'reserved', 'class E top'],
  ['255.255.255.255', 'broadcast', 'limited broadcast'],
  // IPv6 public
  ['2600:1f18::1', 'public', 'AWS us-east-1'],
  ['2a05:d018::1', 'public', 'AWS eu-west-1'],
  ['2606:4700:4700::1111', 'public', 'public resolver'],
  ['2001:4860:4860::8888', 'public', 'outside 2001::/23'],
  ['[2600:1f18::1]', 'public', 'bracketed'],
  // IPv6 special
  ['::1', 'loopback', 'IPv6 loopback'],
  ['[::1]', 'loopback', 'bracketed loopback'],
  ['::', 'unspecified', 'IPv6 any'],
  ['fe80::1', 'link-local', 'fe80::/10'],
  ['fe80::1%eth0', 'link-local', 'with zone id'],
  ['febf:ffff::1', 'link-local', 'top of fe80::/10'],
  ['fd00:ec2::254', 'metadata', 'EC2 IMDS over IPv6'],
  ['[fd00:ec2::254]', 'metadata', 'bracketed IMDS'],
  ['fd00:ec2::23', 'metadata', 'EKS Pod Identity over IPv6'],
  ['fd00:ec2::253', 'ula', 'Amazon DNS over IPv6'],
  ['fc00::1', 'ula', 'bottom of fc00::/7'],
  ['fdff:ffff::1', 'ula', 'top of fc00::/7'],
  ['ff02::1', 'multicast', 'all nodes'],
  ['ff05::1:3', 'multicast', 'DHCP'],
  ['2001:db8::1', 'reserved', 'documentation'],
  ['3fff::1', 'reserved', 'documentation (RFC 9637)'],
  ['100::1', 'reserved', 'discard-only'],
  ['2001:2::1', 'reserved', 'benchmarking'],
  ['fec0::1', 'reserved', 'deprecated site-local'],
  ['4000::1', 'reserved', 'outside 2000::/3'],
  ['1::1', 'reserved', 'outside 2000::/3'],
  ['1fff:ffff::1', 'reserved', 'just below 2000::/3'],
  ['3fff:fff:ffff::1', 'reserved', 'top of 3fff::/20'],
  ['3fff:1000::1', 'public', 'just above 3fff::/20'],
  // IPv4-mapped: folded, so the IPv4 class applies unchanged
  ['::ffff:10.0.0.1', 'private', 'mapped private'],
  ['::ffff:169.254.169.254', 'metadata', 'mapped IMDS'],
  ['::ffff:52.94.0.1', 'public', 'mapped public'],
  ['::ffff:127.0.0.1', 'loopback', 'mapped loopback'],
  ['[::ffff:7f00:1]', 'loopback', 'mapped loopback in hex'],
  ['::ffff:0.0.0.0', 'unspecified', 'mapped any'],
  // IPv4 embedded in IPv6
  ['64:ff9b::a00:1', 'ipv4-embedded', 'NAT64 → 10.0.0.1'],
  ['64:ff9b::10.0.0.1', 'ipv4-embedded', 'NAT64 dotted tail'],
  ['64:ff9b::a9fe:a9fe', 'ipv4-embedded', 'NAT64 → IMDS'],
  ['64:ff9b::7f00:1', 'ipv4-embedded', 'NAT64 → loopback'],
  ['64:ff9b::345e:1', 'public', 'NAT64 → 52.94.0.1'],
  ['64:ff9b:1::a00:1', 'ipv4-embedded', 'local-use NAT64, /96 layout → 10.0.0.1'],
  ['64:ff9b:1::52.94.0.1', 'ipv4-embedded', 'local-use NAT64: the /64 layout reads 0.0.0.52'],
  ['64:ff9b:1:345e:34:5e00:345e:1', 'public', 'local-use NAT64, public under every layout'],
  ['2002:a00:1::', 'ipv4-embedded', '6to4 → 10.0.0.1'],
  ['2002:a9fe:a9fe::1', 'ipv4-embedded', '6to4 → IMDS'],
  ['2002:345e:1::1', 'public', '6to4 → 52.94.0.1'],
  ['::a00:1', 'ipv4-embedded', 'IPv4-compatible → 10.0.0.1'],
  ['::10.0.0.1', 'ipv4-embedded', 'IPv4-compatible dotted'],
  ['::2', 'ipv4-embedded', 'IPv4-compatible → 0.0.0.2'],
  ['::52.94.0.1', 'public', 'IPv4-compatible → public'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'ipv4-embedded', 'Teredo RFC 4380 example: client 192.0.2.45'],
  ['2001:0:4136:e378:8000:63bf:cba1:fffe', 'public', 'Teredo: server 65.54.227.120, client 52.94.0.1'],
  ['2001:0:a00:1:8000:63bf:cba1:fffe', 'ipv4-embedded', 'Teredo: private server'],
  // not an IP
  ['', 'invalid', 'empty'],
  ['not-an-ip', 'invalid', 'word'],
  ['sts.us-east-1.amazonaws.com', 'invalid', 'host name'],
  ['256.1.1.1', 'invalid', 'octet out of range'],
  ['010.0.0.1', 'invalid', 'leading zero (octal elsewhere)'],
  ['1.2.3', 'invalid', 'short IPv4'],
  ['::g', 'invalid', 'bad hex'],
  ['1:2:3:4:5:6:7:8:9', 'invalid', 'nine groups'],
  ['[1.2.3.4]', 'invalid', 'bracketed IPv4'],
];

function expectedClass(e: Expected): AddressClass {
  return e === 'public' ? { kind: 'public' } : { kind: 'special', reason: e };
}

describe('classifyAddress', () => {
  it('has a table of at least 60 rows', () => {
    expect(TABLE.length).toBeGreaterThanOrEqual(60);
  });

  it.each(TABLE)('%s is %s (%s)', (address, expected) => {
    expect(classifyAddress(address)).toEqual(expectedClass(expected));
  });

  it('classifies an IPv4 address and its ::ffff: mapped forms alike', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
        const hex = `::ffff:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
        const expected = classifyAddress(v4);
        expect(classifyAddress(`::ffff:${v4}`)).toEqual(expected);
        expect(classifyAddress(hex)).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('classifies a NAT64 well-known address as its IPv4 address, or ipv4-embedded', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const inner = classifyAddress(v4);
        expect(classifyAddress(`64:ff9b::${v4}`)).toEqual(inner.kind === 'public' ? inner : { kind: 'special', reason: 'ipv4-embedded' });
      }),
    );
  });

  it('never throws and never calls a valid IPv6 address invalid', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        classifyAddress(s);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        expect(classifyAddress(s)).not.toEqual({ kind: 'special', reason: 'invalid' });
      }),
    );
  });
});

describe('DestinationPolicy', () => {
  const base = { allowCidrs: [] as string[], allowedPorts: [443, 80], selfAddresses: [] as { ip: string; port: number }[] };

  it('checks ports against the allowed list', () => {
    const policy = new DestinationPolicy(base);
    expect(policy.checkPort(443)).toBe(true);
    expect(policy.checkPort(80)).toBe(true);
    expect(policy.checkPort(8443)).toBe(false);
    expect(policy.checkPort(0)).toBe(false);
  });

  it('allows public addresses and refuses special ones with their reason', () => {
    const policy = new DestinationPolicy(base);
    expect(policy.checkAddress('52.94.0.1', 443)).toEqual({ allowed: true });
    expect(policy.checkAddress('2600:1f18::1', 443)).toEqual({ allowed: true });
    expect(policy.checkAddress('10.0.0.1', 443)).toEqual({ allowed: false, reason: 'private' });
    expect(policy.checkAddress('::ffff:169.254.169.254', 80)).toEqual({ allowed: false, reason: 'metadata' });
    expect(policy.checkAddress('64:ff9b::a00:1', 443)).toEqual({ allowed: false, reason: 'ipv4-embedded' });
    expect(policy.checkAddress('bogus', 443)).toEqual({ allowed: false, reason: 'invalid' });
  });

  it('lets allowCidrs override the address class (VPC endpoints, loopback test servers)', () => {
    const policy = new DestinationPolicy({ ...base, allowCidrs: ['10.1.0.0/16', '127.0.0.1/32', 'fd12::/16'] });
    expect(policy.checkAddress('10.1.2.3', 443)).toEqual({ allowed: true });
    expect(policy.checkAddress('::ffff:10.1.2.3', 443)).toEqual({ allowed: true });
    expect(policy.checkAddress('10.2.0.1', 443)).toEqual({ allowed: false, reason: 'private' });
    expect(policy.checkAddress('127.0.0.1', 8443)).toEqual({ allowed: true });
    expect(policy.checkAddress('127.0.0.2', 8443)).toEqual({ allowed: false, reason: 'loopback' });
    expect(policy.checkAddress('fd12::1', 443)).toEqual({ allowed: true });
    expect(policy.checkAddress('fd13::1', 443)).toEqual({ allowed: false, reason: 'ula' });
  });

  it('refuses the agent itself behind a wildcard listener, on its port only', () => {
    const policy = new DestinationPolicy({
      ...base,
      allowCidrs: ['127.0.0.0/8', '::1/128'],
      selfAddresses: [{ ip: '0.0.0.0', port: 3128 }],
    });
    for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '0.0.0.0', '::', '::ffff:127.0.0.1']) {
      expect(policy.checkAddress(ip, 3128), ip).toEqual({ allowed: false, reason: 'self' });
    }
    expect(policy.checkAddress('127.0.0.1', 8443)).toEqual({ allowed: true });
    expect(policy.checkAddress('52.94.0.1', 3128)).toEqual({ allowed: true });
  });

  it('treats :: like 0.0.0.0 for the self check', () => {
    const policy = new DestinationPolicy({ ...base, selfAddresses: [{ ip: '::', port: 3128 }] });
    expect(policy.checkAddress('127.0.0.1', 3128)).toEqual({ allowed: false, reason: 'self' });
    expect(policy.checkAddress('127.0.0.1', 443)).toEqual({ allowed: false, reason: 'loopback' });
  });

  it('refuses an exact self address even inside allowCidrs, mapped form included', () => {
    const policy = new DestinationPolicy({
      ...base,
      allowCidrs: ['10.0.0.0/8'],
      selfAddresses: [
        { ip: '10.0.0.5', port: 3128 },
        { ip: '[2600:1f18::5]', port: 3128 },
      ],
    });
    expect(policy.checkAddress('10.0.0.5', 3128)).toEqual({ allowed: false, reason: 'self' });
    expect(policy.checkAddress('::ffff:10.0.0.5', 3128)).toEqual({ allowed: false, reason: 'self' });
    expect(policy.checkAddress('2600:1f18:0::5', 3128)).toEqual({ allowed: false, reason: 'self' });
    expect(policy.checkAddress('10.0.0.5', 443)).toEqual({ allowed: true });
    expect(policy.checkAddress('10.0.0.6', 3128)).toEqual({ allowed: true });
    expect(policy.checkAddress('127.0.0.1', 3128)).toEqual({ allowed: false, reason: 'loopback' });
  });

  it('fails fast on invalid options', () => {
    expect(() => new DestinationPolicy({ ...base, allowCidrs: ['10.0.0.0/33'] })).toThrow(/not a valid CIDR/);
    expect(() => new DestinationPolicy({ ...base, allowedPorts: [0] })).toThrow(/allowed port 0/);
    expect(() => new DestinationPolicy({ ...base, allowedPorts: [65536] })).toThrow(/allowed port 65536/);
    expect(() => new DestinationPolicy({ ...base, selfAddresses: [{ ip: 'localhost', port: 3128 }] })).toThrow(/self address "localhost"/);
    expect(() => new DestinationPolicy({ ...base, selfAddresses: [{ ip: '0.0.0.0', port: 1.5 }] })).toThrow(/self port 1.5/);
  });
});
