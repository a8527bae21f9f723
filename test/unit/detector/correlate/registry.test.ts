import { describe, expect, it } from 'vitest';
import { compileRegistry } from '../../../../detector/correlate/registry.js';
import { GATEWAYS } from '../scenario.js';

describe('compileRegistry', () => {
  const overlapping = compileRegistry({
    gateways: [
      { id: 'gw-a', egressCidrs: ['203.0.113.0/28'], inspect: true },
      { id: 'gw-b', egressCidrs: ['203.0.113.0/24'], inspect: false },
    ],
  });

  it('returns every gateway whose CIDRs contain the address', () => {
    expect(overlapping.gatewaysFor('203.0.113.5').map((g) => g.id)).toEqual(['gw-a', 'gw-b']);
    expect(overlapping.gatewaysFor('203.0.113.200').map((g) => g.id)).toEqual(['gw-b']);
    expect(overlapping.gatewaysFor('192.0.2.1')).toEqual([]);
    expect(overlapping.gatewaysFor('not an ip')).toEqual([]);
  });

  it('matches IPv6 and IPv4-mapped addresses', () => {
    const r = compileRegistry(GATEWAYS);
    expect(r.gatewaysFor('2001:db8:42::9').map((g) => g.id)).toEqual(['gw2']);
    expect(r.gatewaysFor('::ffff:203.0.113.10').map((g) => g.id)).toEqual(['gw1']);
  });

  it('tags the merged set with the gateway id (longest prefix first)', () => {
    expect(overlapping.all.match('203.0.113.5')?.tag).toBe('gw-a');
    expect(overlapping.all.contains('203.0.113.200')).toBe(true);
  });

  it('throws on an invalid CIDR (the config schema rejects it first)', () => {
    expect(() => compileRegistry({ gateways: [{ id: 'x', egressCidrs: ['300.0.0.0/8'], inspect: true }] })).toThrow(/not a valid CIDR/);
  });
});
