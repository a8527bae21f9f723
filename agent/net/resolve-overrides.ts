/**
 * `upstream.resolve`: static host → "ip:port" overrides (exact host or
 * `*.suffix`), checked before DNS. Exact names win over wildcards, longer
 * suffixes over shorter ones. The port in the override replaces the
 * requested one (test rigs and VPC endpoints listen where they like).
 */
import { parseIp, formatIp } from '../../common/cidr/ip.js';

export interface ResolvedOverride {
  ip: string;
  family: 4 | 6;
  port: number;
}

export class ResolveOverrides {
  private readonly exact = new Map<string, ResolvedOverride>();
  private readonly suffixes: { suffix: string; target: ResolvedOverride }[] = [];

  constructor(map: Readonly<Record<string, string>>) {
    for (const [pattern, target] of Object.entries(map)) {
      const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target);
      const ip = parseIp(m?.[1] ?? m?.[2] ?? '');
      if (!m || !ip) throw new Error(`upstream.resolve: "${target}" is not ip:port`);
      const resolved: ResolvedOverride = { ip: formatIp(ip), family: ip.family, port: Number(m[3]) };
      const p = pattern.toLowerCase().replace(/\.$/, '');
      if (p.startsWith('*.')) this.suffixes.push({ suffix: p.slice(1), target: resolved });
      else this.exact.set(p, resolved);
    }
    this.suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  get size(): number {
    return this.exact.size + this.suffixes.length;
  }

  lookup(host: string): ResolvedOverride | null {
    const exact = this.exact.get(host);
    if (exact) return exact;
    for (const { suffix, target } of this.suffixes) if (host.endsWith(suffix)) return target;
    return null;
  }
}

/** Matches `host` against patterns like `*.amazonaws.com` or `sts.amazonaws.com`. */
export class HostPatternSet {
  private readonly exact = new Set<string>();
  private readonly suffixes: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const raw of patterns) {
      const p = raw.toLowerCase().replace(/\.$/, '');
      if (p.startsWith('*.')) this.suffixes.push(p.slice(1));
      else this.exact.add(p);
    }
  }

  matches(host: string): boolean {
    if (this.exact.has(host)) return true;
    for (const s of this.suffixes) if (host.endsWith(s)) return true;
    return false;
  }
}
