/**
 * CIDR lists compiled to sorted integer ranges for hot-path matching.
 * Validation uses ip-cidr; matching is a binary search over plain numbers
 * (IPv4) or bigints (IPv6), with the longest prefix winning for tagged sets.
 */
import IPCIDR from 'ip-cidr';
import { parseIp, type ParsedIp } from './ip.js';

export interface CidrRange<T> {
  readonly cidr: string;
  readonly family: 4 | 6;
  readonly start: bigint;
  readonly end: bigint;
  readonly prefix: number;
  readonly tag: T;
}

export type CidrParse = { ok: true; cidr: string; family: 4 | 6; start: bigint; end: bigint; prefix: number } | { ok: false; reason: string };

/** Accepts `a.b.c.d/n`, IPv6 `x::/n`, or a bare address (a /32 or /128). */
export function parseCidr(text: string): CidrParse {
  const trimmed = text.trim();
  let candidate = trimmed;
  if (!trimmed.includes('/')) {
    if (!IPCIDR.isValidAddress(trimmed)) return { ok: false, reason: `"${text}" is not a valid CIDR` };
    candidate = `${trimmed}/${trimmed.includes(':') ? 128 : 32}`;
  }
  const [addr, bits] = candidate.split('/');
  const prefix = Number(bits);
  const isV6 = (addr ?? '').includes(':');
  if (!IPCIDR.isValidCIDR(candidate) || !Number.isInteger(prefix) || prefix < 0 || prefix > (isV6 ? 128 : 32) || !/^\d+$/.test(bits ?? '')) {
    return { ok: false, reason: `"${text}" is not a valid CIDR` };
  }
  const c = new IPCIDR(candidate);
  const start = BigInt(String(c.start({ type: 'bigInteger' })));
  const end = BigInt(String(c.end({ type: 'bigInteger' })));
  // ip-cidr folds ::ffff:a.b.c.d/n into IPv4 space; keep that, it is how sockets report IPv4 peers.
  const family: 4 | 6 = !isV6 || c.address.v4 ? 4 : 6;
  const normPrefix = family === 4 && isV6 ? Math.max(0, prefix - 96) : prefix;
  return { ok: true, cidr: c.toString(), family, start, end, prefix: normPrefix };
}

interface V4Range<T> { start: number; end: number; prefix: number; entry: CidrRange<T> }

/** Sorted, merged, non-overlapping [start, end] pairs for binary-search membership. */
function mergeRanges<N extends number | bigint>(ranges: { start: N; end: N }[], touches: (end: N, start: N) => boolean): { starts: N[]; ends: N[] } {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const starts: N[] = [];
  const ends: N[] = [];
  for (const r of sorted) {
    const last = ends.length - 1;
    if (last >= 0 && touches(ends[last] as N, r.start)) {
      if (r.end > (ends[last] as N)) ends[last] = r.end;
    } else {
      starts.push(r.start);
      ends.push(r.end);
    }
  }
  return { starts, ends };
}

function inMerged<N extends number | bigint>(starts: N[], ends: N[], v: N): boolean {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (v < (starts[mid] as N)) hi = mid - 1;
    else if (v > (ends[mid] as N)) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * An immutable set of CIDRs with an optional tag each. `match` returns the
 * most specific (longest prefix) entry that contains the address.
 */
export class CidrSet<T = undefined> {
  private readonly v4: V4Range<T>[];
  private readonly v6: CidrRange<T>[];
  private readonly m4: { starts: number[]; ends: number[] };
  private readonly m6: { starts: bigint[]; ends: bigint[] };
  readonly entries: readonly CidrRange<T>[];

  private constructor(entries: CidrRange<T>[]) {
    this.entries = entries;
    // Longest prefix first so the first hit is the most specific one.
    const byPrefix = [...entries].sort((a, b) => b.prefix - a.prefix);
    this.v4 = byPrefix.filter((e) => e.family === 4).map((e) => ({ start: Number(e.start), end: Number(e.end), prefix: e.prefix, entry: e }));
    this.v6 = byPrefix.filter((e) => e.family === 6);
    this.m4 = mergeRanges(this.v4.map((r) => ({ start: r.start, end: r.end })), (e, st) => st <= e + 1);
    this.m6 = mergeRanges(this.v6.map((r) => ({ start: r.start, end: r.end })), (e, st) => st <= e + 1n);
  }

  static empty<T = undefined>(): CidrSet<T> {
    return new CidrSet<T>([]);
  }

  /** Compiles CIDR strings; throws on an invalid one (validate config first). */
  static compile<T = undefined>(items: readonly { cidr: string; tag: T }[]): CidrSet<T> {
    const entries = items.map(({ cidr, tag }) => {
      const p = parseCidr(cidr);
      if (!p.ok) throw new Error(p.reason);
      return { cidr: p.cidr, family: p.family, start: p.start, end: p.end, prefix: p.prefix, tag };
    });
    return new CidrSet<T>(entries);
  }

  static of(cidrs: readonly string[]): CidrSet<undefined> {
    return CidrSet.compile(cidrs.map((cidr) => ({ cidr, tag: undefined })));
  }

  get size(): number {
    return this.entries.length;
  }

  matchParsed(ip: ParsedIp): CidrRange<T> | null {
    if (ip.family === 4) {
      const v = ip.value;
      for (const r of this.v4) if (v >= r.start && v <= r.end) return r.entry;
      return null;
    }
    const v = ip.value;
    for (const r of this.v6) if (v >= r.start && v <= r.end) return r;
    return null;
  }

  match(address: string): CidrRange<T> | null {
    const ip = parseIp(address);
    return ip ? this.matchParsed(ip) : null;
  }

  /** Membership by binary search over merged ranges: fast even for thousands of CIDRs. */
  containsParsed(ip: ParsedIp): boolean {
    return ip.family === 4 ? inMerged(this.m4.starts, this.m4.ends, ip.value) : inMerged(this.m6.starts, this.m6.ends, ip.value);
  }

  contains(address: string): boolean {
    const ip = parseIp(address);
    return ip ? this.containsParsed(ip) : false;
  }
}
