/**
 * The kernel side of transparent interception, generated: rules that redirect
 * the routed clients' TCP connections to AWS (or to every destination the
 * agent may dial) to the agent's transparent listener. Pure: the caller reads
 * the config and ip-ranges.json and prints the text.
 *
 * Only the nat prerouting hook is used, so only forwarded traffic is
 * redirected: connections the gateway itself opens (the agent's own upstream
 * connections included) pass through output and are never touched.
 * Connections to the gateway's own addresses are left alone too.
 *
 *   nft:       table inet egress_witness, replaced as a whole in one transaction
 *              (declare, delete, define), so `nft -f` twice leaves one copy
 *   iptables / ip6tables: iptables-restore input for `--noflush`: two chains of
 *              our own, flushed and refilled on every apply; the jump from
 *              PREROUTING is added once, by the command in the header
 */
import { prefixList, type PrefixLists } from '../../common/cidr/prefix-list.js';
import { dialableSpace } from './address-policy.js';

export type RulesFormat = 'nft' | 'iptables' | 'ip6tables';

export type RulesDestinations =
  | { readonly kind: 'aws'; readonly v4: readonly string[]; readonly v6: readonly string[]; readonly createDate: string | null }
  /** Every address the destination policy may dial, plus the operator's exceptions. */
  | { readonly kind: 'all'; readonly allowCidrs: readonly string[] };

export interface TransparentRulesInput {
  readonly gatewayId: string;
  /** Sources whose connections are redirected: the clients the agent admits. */
  readonly clients: readonly string[];
  readonly destinations: RulesDestinations;
  /** Destination ports redirected (`transparent.ports`). */
  readonly ports: readonly number[];
  /** The transparent listener's port (`transparent.listen`). */
  readonly listenPort: number;
}

export interface RulesPlan {
  readonly clients: PrefixLists;
  readonly destinations: PrefixLists;
  readonly ports: readonly number[];
  readonly listenPort: number;
  readonly header: readonly string[];
}

export type RulesResult = { ok: true; text: string; notes: string[] } | { ok: false; error: string };

export const NFT_TABLE = 'egress_witness';
export const IPT_CHAIN = 'EGRESS_WITNESS';
export const IPT_DST_CHAIN = 'EGRESS_WITNESS_DST';
/** iptables' multiport match takes at most 15 ports. */
const MULTIPORT_MAX = 15;

/** Merges the inputs into prefix lists; refuses what would redirect nothing or to nowhere. */
export function planRules(input: TransparentRulesInput): { ok: true; plan: RulesPlan } | { ok: false; error: string } {
  if (!Number.isInteger(input.listenPort) || input.listenPort < 1 || input.listenPort > 65535)
    return { ok: false, error: `transparent.listen has port ${input.listenPort}: the rules need the listener's fixed port (1-65535)` };
  if (input.ports.length === 0) return { ok: false, error: 'transparent.ports is empty: nothing to redirect' };
  if (input.clients.length === 0)
    return { ok: false, error: 'no client networks (networks[].cidrs or proxy.allowed_clients): nothing to redirect' };
  const clients = prefixList(input.clients);
  const d = input.destinations;
  const space = dialableSpace();
  const destinations =
    d.kind === 'aws' ? prefixList([...d.v4, ...d.v6]) : mergeLists(prefixList(space.include, space.exclude), prefixList(d.allowCidrs));
  const families = ([4, 6] as const).filter((f) => side(clients, f).length > 0 && side(destinations, f).length > 0);
  if (families.length === 0)
    return {
      ok: false,
      error: `the client networks (${describe(clients)}) and the destination ranges (${describe(destinations)}) share no address family: nothing to redirect`,
    };
  const ports = [...new Set(input.ports)];
  const header = [
    `egress-witness transparent interception for gateway ${input.gatewayId}.`,
    `Redirects TCP to port${ports.length === 1 ? '' : 's'} ${ports.join(', ')} from the routed clients (${listOrCount(clients)})`,
    d.kind === 'aws'
      ? `to AWS's published ranges (ip-ranges.json${d.createDate ? ` of ${d.createDate}` : ''}; ${describe(destinations)} after merging)`
      : `to every destination the agent may dial (special-purpose ranges left out; ${describe(destinations)})`,
    `to the agent's transparent listener on port ${input.listenPort}.`,
    'Only forwarded traffic is redirected (prerouting): connections the gateway itself opens,',
    "the agent's upstream connections included, and connections to the gateway's own addresses are never touched.",
  ];
  return { ok: true, plan: { clients, destinations, ports, listenPort: input.listenPort, header } };
}

export function transparentRules(input: TransparentRulesInput, format: RulesFormat): RulesResult {
  const planned = planRules(input);
  if (!planned.ok) return planned;
  const plan = planned.plan;
  if (format === 'nft') return { ok: true, text: renderNft(plan), notes: [] };
  const family = format === 'iptables' ? 4 : 6;
  const notes: string[] = [];
  if (side(plan.clients, family).length === 0 || side(plan.destinations, family).length === 0)
    notes.push(
      `no IPv${family} ${side(plan.clients, family).length === 0 ? 'client network' : 'destination range'}: the ${format} rules redirect nothing`,
    );
  return { ok: true, text: renderIptables(plan, family, format), notes };
}

// --- nftables ---------------------------------------------------------------------------------

function renderNft(plan: RulesPlan): string {
  const lines = ['#!/usr/sbin/nft -f', ...plan.header.map((h) => `# ${h}`)];
  lines.push(
    `# Apply: nft -f FILE (idempotent: the table is replaced as a whole, in one transaction).`,
    `# Remove: nft delete table inet ${NFT_TABLE}`,
    '',
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
  );
  const rules: string[] = [];
  const ports = `{ ${plan.ports.join(', ')} }`;
  for (const family of [4, 6] as const) {
    const src = side(plan.clients, family);
    const dst = side(plan.destinations, family);
    if (src.length === 0 || dst.length === 0) continue;
    const type = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
    lines.push(...nftSet(`clients_v${family}`, type, src), ...nftSet(`destinations_v${family}`, type, dst));
    const ip = family === 4 ? 'ip' : 'ip6';
    rules.push(
      `\t\t${ip} saddr @clients_v${family} ${ip} daddr @destinations_v${family} tcp dport ${ports} counter redirect to :${plan.listenPort}`,
    );
  }
  lines.push(
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    '\t\tfib daddr type local return',
    ...rules,
    '\t}',
    '}',
    '',
  );
  return lines.join('\n');
}

function nftSet(name: string, type: string, elements: readonly string[]): string[] {
  const rows: string[] = [];
  for (let i = 0; i < elements.length; i += 6) rows.push(elements.slice(i, i + 6).join(', '));
  return [
    `\tset ${name} {`,
    `\t\ttype ${type}`,
    '\t\tflags interval',
    `\t\telements = {\n${rows.map((r) => `\t\t\t${r}`).join(',\n')}\n\t\t}`,
    '\t}',
  ];
}

// --- iptables-restore -------------------------------------------------------------------------

function renderIptables(plan: RulesPlan, family: 4 | 6, format: 'iptables' | 'ip6tables'): string {
  const src = side(plan.clients, family);
  const dst = side(plan.destinations, family);
  const redirects = src.length > 0 && dst.length > 0;
  const jump = `-t nat -C PREROUTING -p tcp -j ${IPT_CHAIN} 2>/dev/null || ${format} -t nat -A PREROUTING -p tcp -j ${IPT_CHAIN}`;
  const lines = [
    ...plan.header.map((h) => `# ${h}`),
    `# Apply with --noflush (without it ${format}-restore empties the whole nat table, masquerading included):`,
    `#   ${format}-restore --noflush < FILE      (idempotent: both chains are flushed and refilled)`,
    `#   ${format} ${jump}`,
    `# Remove: ${format} -t nat -D PREROUTING -p tcp -j ${IPT_CHAIN}; ${format} -t nat -F ${IPT_CHAIN}; ${format} -t nat -F ${IPT_DST_CHAIN};`,
    `#         ${format} -t nat -X ${IPT_CHAIN}; ${format} -t nat -X ${IPT_DST_CHAIN}`,
    ...(redirects ? [] : [`# No IPv${family} ${src.length === 0 ? 'client network' : 'destination range'}: nothing is redirected.`]),
    '*nat',
    `:${IPT_CHAIN} - [0:0]`,
    `:${IPT_DST_CHAIN} - [0:0]`,
  ];
  if (redirects) {
    lines.push(`-A ${IPT_CHAIN} -m addrtype --dst-type LOCAL -j RETURN`);
    for (let i = 0; i < plan.ports.length; i += MULTIPORT_MAX) {
      const ports = plan.ports.slice(i, i + MULTIPORT_MAX).join(',');
      for (const s of src) lines.push(`-A ${IPT_CHAIN} -s ${s} -p tcp -m multiport --dports ${ports} -j ${IPT_DST_CHAIN}`);
    }
    for (const d of dst) lines.push(`-A ${IPT_DST_CHAIN} -d ${d} -p tcp -j REDIRECT --to-ports ${plan.listenPort}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

// --- helpers ----------------------------------------------------------------------------------

function side(lists: PrefixLists, family: 4 | 6): readonly string[] {
  return family === 4 ? lists.v4 : lists.v6;
}

function mergeLists(a: PrefixLists, b: PrefixLists): PrefixLists {
  return prefixList([...a.v4, ...a.v6, ...b.v4, ...b.v6]);
}

function listOrCount(lists: PrefixLists): string {
  const all = [...lists.v4, ...lists.v6];
  return all.length <= 6 ? all.join(', ') : describe(lists);
}

function describe(lists: PrefixLists): string {
  const part = (n: number, family: number) => `${n} IPv${family} prefix${n === 1 ? '' : 'es'}`;
  return (
    [lists.v4.length > 0 ? part(lists.v4.length, 4) : null, lists.v6.length > 0 ? part(lists.v6.length, 6) : null]
      .filter(Boolean)
      .join(', ') || 'none'
  );
}
