import { describe, expect, it } from 'vitest';
import { planRules, transparentRules, type TransparentRulesInput } from '../../../../agent/net/transparent-rules.js';
import { CidrSet } from '../../../../common/cidr/cidr-set.js';
import { classifyAddress } from '../../../../agent/net/address-policy.js';

const base: TransparentRulesInput = {
  gatewayId: 'gw-dc1',
  clients: ['10.20.0.0/16', '10.30.0.0/20', 'fd12:3456:789a::/48'],
  destinations: {
    kind: 'aws',
    createDate: '2026-11-20-22-13-07',
    v4: ['52.94.0.0/22', '52.94.0.0/22', '52.94.1.0/24', '52.94.4.0/24', '3.4.12.4/32'],
    v6: ['2600:1f18::/33', '2600:1f18:8000::/33'],
  },
  ports: [443, 80],
  listenPort: 3129,
};

function text(input: TransparentRulesInput, format: 'nft' | 'iptables' | 'ip6tables' = 'nft'): string {
  const r = transparentRules(input, format);
  if (!r.ok) throw new Error(r.error);
  return r.text;
}

describe('transparentRules: nft', () => {
  it('replaces table inet egress_witness as a whole (declare, delete, define), so applying twice leaves one copy', () => {
    const t = text(base);
    expect(t.startsWith('#!/usr/sbin/nft -f\n')).toBe(true);
    const body = t.split('\n').filter((l) => !l.startsWith('#') && l !== '');
    expect(body.slice(0, 3)).toEqual(['table inet egress_witness {}', 'delete table inet egress_witness', 'table inet egress_witness {']);
  });

  it('has IPv4 and IPv6 interval sets of merged prefixes, and redirects only TCP to the given ports, in prerouting', () => {
    const t = text(base);
    expect(t).toContain(
      '\tset clients_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {\n\t\t\t10.20.0.0/16, 10.30.0.0/20\n\t\t}\n\t}',
    );
    expect(t).toContain('\t\telements = {\n\t\t\t3.4.12.4/32, 52.94.0.0/22, 52.94.4.0/24\n\t\t}');
    expect(t).toContain(
      '\tset destinations_v6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = {\n\t\t\t2600:1f18::/32\n\t\t}\n\t}',
    );
    expect(t).toContain('\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tfib daddr type local return\n');
    expect(t).toContain('\t\tip saddr @clients_v4 ip daddr @destinations_v4 tcp dport { 443, 80 } counter redirect to :3129\n');
    expect(t).toContain('\t\tip6 saddr @clients_v6 ip6 daddr @destinations_v6 tcp dport { 443, 80 } counter redirect to :3129\n');
    // No output hook: the gateway's own connections are never touched.
    expect(t).not.toMatch(/hook output/);
    expect(t).toContain('# Redirects TCP to ports 443, 80 from the routed clients (10.20.0.0/16, 10.30.0.0/20, fd12:3456:789a::/48)');
    expect(t).toContain(
      "# to AWS's published ranges (ip-ranges.json of 2026-11-20-22-13-07; 3 IPv4 prefixes, 1 IPv6 prefix after merging)",
    );
  });

  it('leaves out a family without clients or destinations', () => {
    const t = text({ ...base, clients: ['10.20.0.0/16'] });
    expect(t).toContain('set destinations_v4');
    expect(t).not.toContain('ipv6_addr');
    expect(t).not.toContain('ip6 saddr');
    expect(text({ ...base, destinations: { kind: 'aws', createDate: null, v4: [], v6: ['2600:1f18::/32'] } })).not.toContain('ipv4_addr');
  });

  it('writes long sets six elements a line', () => {
    const v4 = Array.from({ length: 13 }, (_, i) => `52.${i * 2}.0.0/16`);
    const t = text({ ...base, destinations: { kind: 'aws', createDate: null, v4, v6: [] } });
    const set = /set destinations_v4 \{[\s\S]*?elements = \{\n([\s\S]*?)\n\t\t\}/.exec(t)![1]!.split('\n');
    expect(set).toHaveLength(3);
    expect(set[0]).toBe('\t\t\t52.0.0.0/16, 52.2.0.0/16, 52.4.0.0/16, 52.6.0.0/16, 52.8.0.0/16, 52.10.0.0/16,');
    expect(set[2]).toBe('\t\t\t52.24.0.0/16');
  });

  it('with every destination: redirects what the agent may dial, never a special-purpose range unless allowed', () => {
    const plan = planRules({ ...base, destinations: { kind: 'all', allowCidrs: ['10.99.0.0/24', 'fd00:ec2::/64'] } });
    if (!plan.ok) throw new Error(plan.error);
    const set = CidrSet.of([...plan.plan.destinations.v4, ...plan.plan.destinations.v6]);
    for (const ip of ['52.94.0.10', '8.8.8.8', '2600:1f18::1', '2a05:d018::1']) expect([ip, set.contains(ip)]).toEqual([ip, true]);
    for (const ip of [
      '10.0.0.1',
      '127.0.0.1',
      '169.254.169.254',
      '192.168.1.1',
      '100.64.0.1',
      '198.51.100.1',
      '224.0.0.1',
      '::1',
      'fd00::1',
      'fe80::1',
      '2001:db8::1',
      '2002:a00:1::1',
      '64:ff9b::a00:1',
    ])
      expect([ip, set.contains(ip)]).toEqual([ip, false]);
    // Each left-out address is one the policy refuses; the operator's exceptions are redirected.
    for (const ip of ['10.0.0.1', '198.51.100.1', '2001:db8::1']) expect(classifyAddress(ip).kind).toBe('special');
    expect([set.contains('10.99.0.7'), set.contains('fd00:ec2::5'), set.contains('10.99.1.7')]).toEqual([true, true, false]);
    expect(text({ ...base, destinations: { kind: 'all', allowCidrs: [] } })).toMatch(
      /# to every destination the agent may dial \(special-purpose ranges left out; \d+ IPv4 prefixes, \d+ IPv6 prefixes\)/,
    );
  });

  it('refuses what would redirect nothing or to no fixed port', () => {
    expect(transparentRules({ ...base, listenPort: 0 }, 'nft')).toEqual({
      ok: false,
      error: "transparent.listen has port 0: the rules need the listener's fixed port (1-65535)",
    });
    expect(transparentRules({ ...base, clients: [] }, 'nft')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^no client networks/),
    });
    expect(
      transparentRules(
        { ...base, clients: ['fd12::/16'], destinations: { kind: 'aws', createDate: null, v4: ['52.94.0.0/22'], v6: [] } },
        'nft',
      ),
    ).toEqual({
      ok: false,
      error: 'the client networks (1 IPv6 prefix) and the destination ranges (1 IPv4 prefix) share no address family: nothing to redirect',
    });
  });

  it('is deterministic (no dates or counters of its own), so regenerated files diff cleanly', () => {
    expect(text(base)).toBe(text({ ...base, clients: [...base.clients].reverse() }));
  });
});

describe('transparentRules: iptables-restore input', () => {
  it('fills two chains of its own in the nat table and tells how to add the jump once', () => {
    const t = text(base, 'iptables');
    const body = t.split('\n').filter((l) => !l.startsWith('#') && l !== '');
    expect(body).toEqual([
      '*nat',
      ':EGRESS_WITNESS - [0:0]',
      ':EGRESS_WITNESS_DST - [0:0]',
      '-A EGRESS_WITNESS -m addrtype --dst-type LOCAL -j RETURN',
      '-A EGRESS_WITNESS -s 10.20.0.0/16 -p tcp -m multiport --dports 443,80 -j EGRESS_WITNESS_DST',
      '-A EGRESS_WITNESS -s 10.30.0.0/20 -p tcp -m multiport --dports 443,80 -j EGRESS_WITNESS_DST',
      '-A EGRESS_WITNESS_DST -d 3.4.12.4/32 -p tcp -j REDIRECT --to-ports 3129',
      '-A EGRESS_WITNESS_DST -d 52.94.0.0/22 -p tcp -j REDIRECT --to-ports 3129',
      '-A EGRESS_WITNESS_DST -d 52.94.4.0/24 -p tcp -j REDIRECT --to-ports 3129',
      'COMMIT',
    ]);
    expect(t).toContain('#   iptables-restore --noflush < FILE');
    expect(t).toContain(
      '#   iptables -t nat -C PREROUTING -p tcp -j EGRESS_WITNESS 2>/dev/null || iptables -t nat -A PREROUTING -p tcp -j EGRESS_WITNESS',
    );
    expect(t).not.toMatch(/^-A PREROUTING/m);
  });

  it('writes the IPv6 side for ip6tables-restore', () => {
    const body = text(base, 'ip6tables')
      .split('\n')
      .filter((l) => l.startsWith('-A'));
    expect(body).toEqual([
      '-A EGRESS_WITNESS -m addrtype --dst-type LOCAL -j RETURN',
      '-A EGRESS_WITNESS -s fd12:3456:789a::/48 -p tcp -m multiport --dports 443,80 -j EGRESS_WITNESS_DST',
      '-A EGRESS_WITNESS_DST -d 2600:1f18::/32 -p tcp -j REDIRECT --to-ports 3129',
    ]);
  });

  it('splits more than 15 ports over several multiport rules', () => {
    const ports = Array.from({ length: 17 }, (_, i) => 8000 + i);
    const rules = text({ ...base, clients: ['10.20.0.0/16'], ports }, 'iptables')
      .split('\n')
      .filter((l) => l.includes('multiport'));
    expect(rules.map((l) => /--dports (\S+)/.exec(l)![1]!.split(',').length)).toEqual([15, 2]);
  });

  it('is valid but empty, with a note, when the family has no clients', () => {
    const r = transparentRules({ ...base, clients: ['10.20.0.0/16'] }, 'ip6tables');
    expect(r).toMatchObject({ ok: true, notes: ['no IPv6 client network: the ip6tables rules redirect nothing'] });
    if (r.ok) expect(r.text.split('\n').filter((l) => l.startsWith('-A'))).toEqual([]);
  });
});
