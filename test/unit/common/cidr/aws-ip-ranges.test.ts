import { describe, expect, it } from 'vitest';
import { parseAwsIpRanges } from '../../../../common/cidr/aws-ip-ranges.js';

const doc = (prefixes: unknown, ipv6: unknown = []) =>
  JSON.stringify({ syncToken: '1', createDate: '2026-11-20-22-13-07', prefixes, ipv6_prefixes: ipv6 });

describe('parseAwsIpRanges', () => {
  it('reads the IPv4 and IPv6 prefixes and the creation date', () => {
    const r = parseAwsIpRanges(
      doc(
        [
          { ip_prefix: '3.4.12.4/32', region: 'eu-west-1', service: 'AMAZON', network_border_group: 'eu-west-1' },
          { ip_prefix: '52.94.0.0/22', region: 'us-east-1', service: 'STS' },
        ],
        [{ ipv6_prefix: '2600:1f18::/33', region: 'us-east-1', service: 'AMAZON' }],
      ),
    );
    expect(r).toEqual({
      ok: true,
      value: { createDate: '2026-11-20-22-13-07', v4: ['3.4.12.4/32', '52.94.0.0/22'], v6: ['2600:1f18::/33'] },
    });
  });

  it.each([
    ['not JSON', '{"prefixes": [', /^not JSON \(/],
    ['a list', '[]', /^expected an object with "prefixes" and "ipv6_prefixes"/],
    ['no prefixes', doc([], []), /^no prefixes/],
    ['the wrong file', '{"gateways": []}', /^no prefixes/],
    ['prefixes that is not a list', JSON.stringify({ prefixes: {} }), /^prefixes: expected a list$/],
  ])('refuses %s', (_what, text, problem) => {
    const r = parseAwsIpRanges(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]).toMatch(problem);
  });

  it('names every bad prefix by its place, up to ten', () => {
    const r = parseAwsIpRanges(doc([{ ip_prefix: '3.4.12.4/33' }, { ip_prefix: '2600::/32' }, {}], [{ ipv6_prefix: '10.0.0.0/8' }]));
    expect(r).toEqual({
      ok: false,
      problems: [
        'prefixes[0].ip_prefix: expected an IPv4 CIDR, got "3.4.12.4/33"',
        'prefixes[1].ip_prefix: expected an IPv4 CIDR, got "2600::/32"',
        'prefixes[2].ip_prefix: expected an IPv4 CIDR, got nothing',
        'ipv6_prefixes[0].ipv6_prefix: expected an IPv6 CIDR, got "10.0.0.0/8"',
      ],
    });
    const many = parseAwsIpRanges(doc(Array.from({ length: 25 }, () => ({ ip_prefix: 'x' }))));
    expect(many.ok ? [] : many.problems).toHaveLength(11);
    expect(many.ok ? '' : many.problems[10]).toBe('… and 15 more');
  });
});
