/**
 * CIDR lists compiled to sorted integer ranges for hot-path matching.
 * Parsing is strict (and ip-cidr must agree); matching is a binary search over plain numbers
 * (IPv4) or bigints (IPv6), with the longest prefix winning for tagged sets.
 */
import IPCIDR from 'ip-cidr';
import { parseIp, parseIpv4, parseIpv6, formatIpv4, formatIpv6, type ParsedIp } from './ip.js';

export interface CidrRange<T> {
  readonly cidr: string;
  readonly family: 4 | 6;
  readonly start: bigint;
  readonly end: bigint;
  readonly prefix: number;
  readonly tag: T;
}

export type CidrParse =
  { ok: true; cidr: string; family: 4 | 6; start: bigint; end: bigint; prefix: number } | { ok: false; reason: string };

const MAPPED_HIGH = 0xffffn;

/**
 * Accepts `a.b.c.d/n`, IPv6 `x::/n`, or a bare address (a /32 or /128).
 * Host bits are cleared (`10.0.0.1/8` is `10.0.0.0/8`). IPv4-mapped IPv6
 * ranges (`::ffff:10.0.0.0/104`, `::ffff:a00:0/104`) become the IPv4 range
 * they map, because sockets report IPv4 peers in either form and `parseIp`
 * folds them the same way. ip-cidr must also accept the text.
 */
export function parseCidr(text: string): CidrParse {
  const invalid: CidrParse = { ok: false, reason: `"${text}" is not a valid CIDR` };
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addr = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const bits = slash < 0 ? null : trimmed.slice(slash + 1);
  if (addr.includes('%') || addr.includes('[')) return invalid;
  if (bits !== null && !/^(0|[1-9]\d{0,2})$/.test(bits)) return invalid;
  const v4 = parseIpv4(addr);
  const v6 = v4 === null ? parseIpv6(addr) : null;
  if (v4 === null && v6 === null) return invalid;
  const width = v4 !== null ? 32 : 128;
  const prefix = bits === null ? width : Number(bits);
  if (prefix > width) return invalid;
  if (!IPCIDR.isValidCIDR(`${addr}/${prefix}`)) return invalid;
  const value = v4 !== null ? BigInt(v4) : (v6 as bigint);
  const hostBits = BigInt(width - prefix);
  let start = (value >> hostBits) << hostBits;
  let end = start | ((1n << hostBits) - 1n);
  let family: 4 | 6 = v4 !== null ? 4 : 6;
  let outPrefix = prefix;
  if (family === 6 && prefix >= 96 && start >> 32n === MAPPED_HIGH) {
    family = 4;
    outPrefix = prefix - 96;
    start &= 0xffffffffn;
    end &= 0xffffffffn;
  }
  const cidr = family === 4 ? `${formatIpv4(Number(start))}/${outPrefix}` : `${formatIpv6(start)}/${outPrefix}`;
  return { ok: true, cidr, family, start, end, prefix: outPrefix };
}

interface V4Range<T> {
  start: number;
  end: number;
  prefix: number;
  entry: CidrRange<T>;
}

/** Sorted, merged, non-overlapping [start, end] pairs for binary-search membership. */
function mergeRanges<N extends number | bigint>(
  ranges: { start: N; end: N }[],
  touches: (end: N, start: N) => boolean,
): { starts: N[]; ends: N[] } {
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

/** Index of the merged range that contains `v`, or -1. */
function rangeIndex<N extends number | bigint>(starts: N[], ends: N[], v: N): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (v < (starts[mid] as N)) hi = mid - 1;
    else if (v > (ends[mid] as N)) lo = mid + 1;
    else return mid;
  }
  return -1;
}

function inMerged<N extends number | bigint>(starts: N[], ends: N[], v: N): boolean {
  return rangeIndex(starts, ends, v) >= 0;
}

/** Merged ranges do not touch: [lo, hi] is covered exactly when the range holding lo reaches hi. */
function coveredByMerged<N extends number | bigint>(starts: N[], ends: N[], lo: N, hi: N): boolean {
  const i = rangeIndex(starts, ends, lo);
  return i >= 0 && (ends[i] as N) >= hi;
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
    this.v4 = byPrefix
      .filter((e) => e.family === 4)
      .map((e) => ({ start: Number(e.start), end: Number(e.end), prefix: e.prefix, entry: e }));
    this.v6 = byPrefix.filter((e) => e.family === 6);
    this.m4 = mergeRanges(
      this.v4.map((r) => ({ start: r.start, end: r.end })),
      (e, st) => st <= e + 1,
    );
    this.m6 = mergeRanges(
      this.v6.map((r) => ({ start: r.start, end: r.end })),
      (e, st) => st <= e + 1n,
    );
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

  /** Whether every address of `cidr` is in the set (across adjacent or overlapping entries). */
  coversCidr(cidr: string): boolean {
    const p = parseCidr(cidr);
    if (!p.ok) return false;
    return p.family === 4
      ? coveredByMerged(this.m4.starts, this.m4.ends, Number(p.start), Number(p.end))
      : coveredByMerged(this.m6.starts, this.m6.ends, p.start, p.end);
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
