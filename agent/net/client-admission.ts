/**
 * Who may use the proxy, and which routed network each client belongs to.
 * `proxy.allowed_clients` (default: every network's CIDRs) admits; the
 * network tag comes from the longest matching prefix among `networks`.
 */
import { CidrSet } from '../../common/cidr/cidr-set.js';
import { parseIp, formatIp } from '../../common/cidr/ip.js';

export type Admission = { admitted: true; clientIp: string; network: string | null } | { admitted: false; clientIp: string };

export class ClientAdmission {
  private readonly allowed: CidrSet;
  private readonly networks: CidrSet<string>;

  constructor(opts: { networks: readonly { name: string; cidrs: readonly string[] }[]; allowedClients: readonly string[] }) {
    this.networks = CidrSet.compile(opts.networks.flatMap((n) => n.cidrs.map((cidr) => ({ cidr, tag: n.name }))));
    const allowed = opts.allowedClients.length > 0 ? opts.allowedClients : opts.networks.flatMap((n) => n.cidrs);
    this.allowed = CidrSet.of(allowed);
  }

  admit(remoteAddress: string | undefined): Admission {
    const ip = remoteAddress ? parseIp(remoteAddress) : null;
    if (!ip) return { admitted: false, clientIp: remoteAddress ?? 'unknown' };
    const clientIp = formatIp(ip);
    if (!this.allowed.containsParsed(ip)) return { admitted: false, clientIp };
    return { admitted: true, clientIp, network: this.networks.matchParsed(ip)?.tag ?? null };
  }
}
