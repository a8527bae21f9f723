/**
 * Destination address policy: may the agent dial this resolved address?
 *
 * Modelled on stripe/smokescreen's classifier. Every address the proxy is
 * about to dial (after resolving once, so DNS rebinding cannot swap it) goes
 * through `DestinationPolicy.checkAddress`; the port is checked first, before
 * resolving, with `checkPort`.
 *
 * Classification is one table of special-purpose ranges per family (IANA
 * special-purpose registries, plus the cloud credential endpoints) where the
 * longest matching prefix wins, so `fd00:ec2::254` is 'metadata' although it
 * lies inside the ULA range. Anything in no range is 'public', except IPv6
 * outside 2000::/3, which IANA has not allocated for global unicast.
 *
 * IPv6 forms that carry an IPv4 address are classified by that IPv4 address:
 * - IPv4-mapped `::ffff:a.b.c.d` is folded to IPv4 by `parseIp`, so it gets
 *   exactly the IPv4 class (`::ffff:10.0.0.1` is 'private');
 * - IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
 *   `2002::/16` and Teredo `2001::/32` are 'ipv4-embedded' when any IPv4
 *   address they may deliver to is not public, and 'public' otherwise. A NAT64
 *   translator or 6to4 relay would carry the connection to that IPv4 address,
 *   so a public embedding is as good as the IPv4 address itself and a private
 *   one is a way around the IPv4 rules. (Smokescreen denies every embedding;
 *   we keep public ones so DNS64 networks still reach AWS.)
 *   For `64:ff9b:1::/48` the operator picks the prefix length (RFC 8215), so
 *   every RFC 6052 layout that fits in it (/48, /56, /64, /96) is checked; for
 *   Teredo both the server and the (inverted) client address are checked.
 */
import { CidrSet } from '../../common/cidr/cidr-set.js';
import { parseIp, type ParsedIp } from '../../common/cidr/ip.js';

export type DenyReason =
  | 'loopback'
  | 'unspecified'
  | 'link-local'
  | 'metadata'
  | 'private'
  | 'cgnat'
  | 'ula'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'ipv4-embedded'
  | 'invalid';

export type AddressClass = { readonly kind: 'public' } | { readonly kind: 'special'; readonly reason: DenyReason };

type Ipv4Extractor = (value: bigint) => readonly number[];

/** A table entry: a fixed class, or an IPv6 prefix whose class comes from the IPv4 addresses it embeds. */
type RangeRule =
  { readonly kind: 'class'; readonly reason: DenyReason | 'public' } | { readonly kind: 'embedded'; readonly extract: Ipv4Extractor };

const U32 = 0xffffffffn;
const bits = (value: bigint, shift: bigint, mask: bigint): number => Number((value >> shift) & mask);

/** RFC 6052 layouts inside 64:ff9b:1::/48; bits 64..71 (the "u" octet) never carry address bits. */
const localUseNat64: Ipv4Extractor = (v) => [
  (bits(v, 64n, 0xffffn) * 0x10000 + bits(v, 40n, 0xffffn)) >>> 0,
  (bits(v, 64n, 0xffn) * 0x1000000 + bits(v, 32n, 0xffffffn)) >>> 0,
  bits(v, 24n, U32),
  bits(v, 0n, U32),
];

const IPV4_RANGES: readonly [string, DenyReason][] = [
  ['0.0.0.0/8', 'reserved'], // "this network" (RFC 791)
  ['0.0.0.0/32', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['169.254.169.254/32', 'metadata'], // EC2 instance metadata (IMDS)
  ['169.254.170.2/32', 'metadata'], // ECS task credentials
  ['169.254.170.23/32', 'metadata'], // EKS Pod Identity agent
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments
  ['192.0.2.0/24', 'reserved'], // TEST-NET-1 (documentation)
  ['192.88.99.0/24', 'reserved'], // deprecated 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'], // benchmarking
  ['198.51.100.0/24', 'reserved'], // TEST-NET-2
  ['203.0.113.0/24', 'reserved'], // TEST-NET-3
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['255.255.255.255/32', 'broadcast'],
];

const IPV6_RANGES: readonly [string, RangeRule][] = [
  ['::/0', { kind: 'class', reason: 'reserved' }], // not allocated for global unicast
  ['2000::/3', { kind: 'class', reason: 'public' }],
  ['::/128', { kind: 'class', reason: 'unspecified' }],
  ['::1/128', { kind: 'class', reason: 'loopback' }],
  ['::/96', { kind: 'embedded', extract: (v) => [bits(v, 0n, U32)] }], // IPv4-compatible (deprecated)
  ['64:ff9b::/96', { kind: 'embedded', extract: (v) => [bits(v, 0n, U32)] }], // NAT64 well-known prefix
  ['64:ff9b:1::/48', { kind: 'embedded', extract: localUseNat64 }], // NAT64 local-use prefix
  ['100::/64', { kind: 'class', reason: 'reserved' }], // discard-only
  ['2001::/23', { kind: 'class', reason: 'reserved' }], // IETF protocol assignments
  ['2001::/32', { kind: 'embedded', extract: (v) => [bits(v, 64n, U32), (bits(v, 0n, U32) ^ 0xffffffff) >>> 0] }], // Teredo: server, client
  ['2001:db8::/32', { kind: 'class', reason: 'reserved' }], // documentation
  ['2002::/16', { kind: 'embedded', extract: (v) => [bits(v, 80n, U32)] }], // 6to4
  ['3fff::/20', { kind: 'class', reason: 'reserved' }], // documentation (RFC 9637)
  ['5f00::/16', { kind: 'class', reason: 'reserved' }], // SRv6 SIDs
  ['fc00::/7', { kind: 'class', reason: 'ula' }],
  ['fd00:ec2::254/128', { kind: 'class', reason: 'metadata' }], // EC2 IMDS over IPv6
  ['fd00:ec2::23/128', { kind: 'class', reason: 'metadata' }], // EKS Pod Identity over IPv6
  ['fe80::/10', { kind: 'class', reason: 'link-local' }],
  ['fec0::/10', { kind: 'class', reason: 'reserved' }], // deprecated site-local
  ['ff00::/8', { kind: 'class', reason: 'multicast' }],
];

const ipv4Table = CidrSet.compile(IPV4_RANGES.map(([cidr, tag]) => ({ cidr, tag })));
const ipv6Table = CidrSet.compile(IPV6_RANGES.map(([cidr, tag]) => ({ cidr, tag })));

const PUBLIC: AddressClass = Object.freeze({ kind: 'public' });
const special = (reason: DenyReason): AddressClass => ({ kind: 'special', reason });

function classifyIpv4(value: number): AddressClass {
  const hit = ipv4Table.matchParsed({ family: 4, value });
  return hit ? special(hit.tag) : PUBLIC;
}

function classifyParsed(ip: ParsedIp): AddressClass {
  if (ip.family === 4) return classifyIpv4(ip.value);
  const rule = ipv6Table.matchParsed(ip)?.tag;
  if (!rule) return special('reserved'); // unreachable: ::/0 matches everything
  if (rule.kind === 'class') return rule.reason === 'public' ? PUBLIC : special(rule.reason);
  const embedded = rule.extract(ip.value);
  return embedded.every((v4) => classifyIpv4(v4).kind === 'public') ? PUBLIC : special('ipv4-embedded');
}

/** Classifies a textual IP address (brackets and zone ids accepted); never throws. */
export function classifyAddress(ip: string): AddressClass {
  const parsed = parseIp(ip);
  return parsed ? classifyParsed(parsed) : special('invalid');
}

export interface DestinationPolicyOptions {
  /** Operator exceptions (VPC interface endpoints, test servers): allowed even when special. */
  readonly allowCidrs: readonly string[];
  readonly allowedPorts: readonly number[];
  /** The agent's own listeners; a host of 0.0.0.0 or :: stands for every local address on that port. */
  readonly selfAddresses: readonly { readonly ip: string; readonly port: number }[];
}

export type AddressDecision = { readonly allowed: true } | { readonly allowed: false; readonly reason: DenyReason | 'self' };

const ALLOWED: AddressDecision = Object.freeze({ allowed: true });

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

function ipKey(ip: ParsedIp): string {
  return `${ip.family}/${ip.value.toString(16)}`;
}

/**
 * Decides whether a resolved destination may be dialled. Built once per
 * config; throws at construction on an invalid CIDR, port or self address.
 *
 * Order: the agent itself is always refused ('self', so a client cannot loop
 * the proxy into itself even through an allowed CIDR); then an allowed CIDR
 * wins; then the address class decides. Ports are not checked here: call
 * `checkPort` before resolving.
 *
 * A wildcard listener is matched on loopback and unspecified addresses only;
 * the caller adds the host's interface addresses to `selfAddresses` if it
 * wants those refused too (this module does no I/O).
 */
export class DestinationPolicy {
  private readonly allow: CidrSet;
  private readonly ports: ReadonlySet<number>;
  private readonly selfExact: ReadonlySet<string>;
  private readonly selfWildcardPorts: ReadonlySet<number>;

  constructor(options: DestinationPolicyOptions) {
    this.allow = CidrSet.of(options.allowCidrs);
    for (const port of options.allowedPorts) {
      if (!isPort(port)) throw new Error(`allowed port ${port} is not an integer from 1 to 65535`);
    }
    this.ports = new Set(options.allowedPorts);
    const exact = new Set<string>();
    const wildcard = new Set<number>();
    for (const self of options.selfAddresses) {
      const ip = parseIp(self.ip);
      if (!ip) throw new Error(`self address "${self.ip}" is not an IP address`);
      if (!isPort(self.port)) throw new Error(`self port ${self.port} is not an integer from 1 to 65535`);
      const cls = classifyParsed(ip);
      if (cls.kind === 'special' && cls.reason === 'unspecified') wildcard.add(self.port);
      else exact.add(`${ipKey(ip)}:${self.port}`);
    }
    this.selfExact = exact;
    this.selfWildcardPorts = wildcard;
  }

  checkPort(port: number): boolean {
    return this.ports.has(port);
  }

  checkAddress(ip: string, port: number): AddressDecision {
    const parsed = parseIp(ip);
    if (!parsed) return { allowed: false, reason: 'invalid' };
    const cls = classifyParsed(parsed);
    if (this.isSelf(parsed, cls, port)) return { allowed: false, reason: 'self' };
    if (this.allow.containsParsed(parsed)) return ALLOWED;
    return cls.kind === 'public' ? ALLOWED : { allowed: false, reason: cls.reason };
  }

  private isSelf(ip: ParsedIp, cls: AddressClass, port: number): boolean {
    if (this.selfExact.has(`${ipKey(ip)}:${port}`)) return true;
    if (!this.selfWildcardPorts.has(port) || cls.kind === 'public') return false;
    return cls.reason === 'loopback' || cls.reason === 'unspecified';
  }
}

/**
 * Where the policy may let a connection go without an operator exception, as
 * CIDRs to include minus CIDRs to exclude: IPv4 without its special-purpose
 * ranges; IPv6 global unicast (2000::/3) without the non-public ranges inside
 * it, the IPv4-embedding ones included (their verdict depends on the embedded
 * address, so they are left out whole). Redirect rules generated for every
 * destination use it, so the kernel never hands the agent a connection it
 * would have to refuse.
 */
export function dialableSpace(): { include: string[]; exclude: string[] } {
  const v6Public = IPV6_RANGES.filter(([, r]) => r.kind === 'class' && r.reason === 'public').map(([c]) => c);
  const v6Other = IPV6_RANGES.filter(([c, r]) => c !== '::/0' && !(r.kind === 'class' && r.reason === 'public')).map(([c]) => c);
  return { include: ['0.0.0.0/0', ...v6Public], exclude: [...IPV4_RANGES.map(([c]) => c), ...v6Other] };
}
