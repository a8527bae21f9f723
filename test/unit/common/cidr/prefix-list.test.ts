import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prefixList } from '../../../../common/cidr/prefix-list.js';
import { CidrSet, parseCidr } from '../../../../common/cidr/cidr-set.js';
import { formatIpv4 } from '../../../../common/cidr/ip.js';

describe('prefixList', () => {
  it('removes duplicates and prefixes inside others, keeps address order', () => {
    expect(prefixList(['52.94.0.0/22', '3.4.12.4/32', '52.94.0.0/22', '52.94.1.0/24', '10.0.0.1/8'])).toEqual({
      v4: ['3.4.12.4/32', '10.0.0.0/8', '52.94.0.0/22'],
      v6: [],
    });
  });

  it('joins neighbours into the fewest aligned prefixes', () => {
    expect(prefixList(['10.0.0.0/25', '10.0.0.128/25']).v4).toEqual(['10.0.0.0/24']);
    expect(prefixList(['10.0.0.0/24', '10.0.1.0/24', '10.0.2.0/24']).v4).toEqual(['10.0.0.0/23', '10.0.2.0/24']);
    expect(prefixList(['10.0.1.0/24', '10.0.2.0/24']).v4).toEqual(['10.0.1.0/24', '10.0.2.0/24']);
    expect(prefixList(['2600:1f18::/33', '2600:1f18:8000::/33', '2600:1f18::/48']).v6).toEqual(['2600:1f18::/32']);
  });

  it('splits families; IPv4-mapped IPv6 counts as IPv4', () => {
    expect(prefixList(['::ffff:10.0.0.0/104', 'fd00::/8', '192.0.2.7'])).toEqual({ v4: ['10.0.0.0/8', '192.0.2.7/32'], v6: ['fd00::/8'] });
  });

  it('subtracts a list, leaving the exact remainder', () => {
    expect(prefixList(['10.0.0.0/24'], ['10.0.0.0/26']).v4).toEqual(['10.0.0.64/26', '10.0.0.128/25']);
    expect(prefixList(['10.0.0.0/24'], ['10.0.0.77']).v4).toEqual([
      '10.0.0.0/26',
      '10.0.0.64/29',
      '10.0.0.72/30',
      '10.0.0.76/32',
      '10.0.0.78/31',
      '10.0.0.80/28',
      '10.0.0.96/27',
      '10.0.0.128/25',
    ]);
    expect(prefixList(['10.0.0.0/24'], ['0.0.0.0/0']).v4).toEqual([]);
    expect(prefixList(['0.0.0.0/0'], ['0.0.0.0/1']).v4).toEqual(['128.0.0.0/1']);
    expect(prefixList(['::/0'], ['::/1']).v6).toEqual(['8000::/1']);
    expect(prefixList(['10.0.0.0/24', '10.0.2.0/24'], ['10.0.0.128/25', '10.0.1.0/24', '10.0.2.0/25']).v4).toEqual([
      '10.0.0.0/25',
      '10.0.2.128/25',
    ]);
  });

  it('throws on an invalid CIDR (inputs are validated first)', () => {
    expect(() => prefixList(['10.0.0.0/33'])).toThrow('"10.0.0.0/33" is not a valid CIDR');
  });

  // Property: the output covers exactly the addresses of include minus exclude, without overlaps,
  // and no two output prefixes could be joined into one.
  const cidr = fc.tuple(fc.integer({ min: 0, max: 0x3ff }), fc.integer({ min: 22, max: 32 })).map(([offset, prefix]) => {
    return `${formatIpv4((0x0a000000 + offset) >>> 0)}/${prefix}`;
  });
  const probe = fc.integer({ min: -16, max: 0x400 + 16 }).map((o) => formatIpv4((0x0a000000 + o) >>> 0));

  it('covers exactly include minus exclude, with disjoint, unjoinable prefixes', () => {
    fc.assert(
      fc.property(
        fc.array(cidr, { maxLength: 12 }),
        fc.array(cidr, { maxLength: 6 }),
        fc.array(probe, { maxLength: 40 }),
        (inc, exc, probes) => {
          const out = prefixList(inc, exc).v4;
          const outSet = CidrSet.of(out);
          const incSet = CidrSet.of(inc);
          const excSet = CidrSet.of(exc);
          for (const p of probes) expect(outSet.contains(p)).toBe(incSet.contains(p) && !excSet.contains(p));
          const ranges = out.map((c) => parseCidr(c)).map((p) => (p.ok ? p : null)!);
          for (let i = 1; i < ranges.length; i++) {
            const [a, b] = [ranges[i - 1]!, ranges[i]!];
            expect(a.end).toBeLessThan(b.start);
            // Two neighbours of equal size that form an aligned block would have been one prefix.
            const joinable = a.end + 1n === b.start && a.prefix === b.prefix && a.start % (b.end - a.start + 1n) === 0n;
            expect(joinable).toBe(false);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
