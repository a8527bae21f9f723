/**
 * Address-range arithmetic for generated firewall rules: a list of CIDRs per
 * family, merged (overlaps and neighbours joined), optionally minus another
 * list, written back as the fewest CIDRs that cover exactly the same
 * addresses. Firewall sets reject overlapping intervals, and fewer prefixes
 * mean fewer iptables rules. Pure.
 */
import { parseCidr } from './cidr-set.js';
import { formatIpv4, formatIpv6 } from './ip.js';

export type Family = 4 | 6;

/** An inclusive range of addresses of one family. */
interface Range {
  start: bigint;
  end: bigint;
}

const WIDTH: Record<Family, number> = { 4: 32, 6: 128 };

/** Sorted, non-overlapping, non-adjacent ranges. */
function merge(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end + 1n) {
      if (r.end > last.end) last.end = r.end;
    } else {
      out.push({ start: r.start, end: r.end });
    }
  }
  return out;
}

/** `a` minus `b`, both merged. */
function subtract(a: readonly Range[], b: readonly Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const r of a) {
    let start = r.start;
    while (j < b.length && (b[j] as Range).end < start) j++;
    let k = j;
    while (k < b.length && (b[k] as Range).start <= r.end) {
      const cut = b[k] as Range;
      if (cut.start > start) out.push({ start, end: cut.start - 1n });
      start = cut.end + 1n;
      if (start > r.end) break;
      k++;
    }
    if (start <= r.end) out.push({ start, end: r.end });
  }
  return out;
}

/** The fewest CIDRs covering exactly [start, end]: the largest aligned block at each step. */
function toCidrs(r: Range, family: Family): string[] {
  const width = WIDTH[family];
  const format = (v: bigint) => (family === 4 ? formatIpv4(Number(v)) : formatIpv6(v));
  const out: string[] = [];
  let start = r.start;
  while (start <= r.end) {
    let hostBits = 0;
    while (hostBits < width) {
      const size = 1n << BigInt(hostBits + 1);
      if (start % size !== 0n || start + size - 1n > r.end) break;
      hostBits++;
    }
    out.push(`${format(start)}/${width - hostBits}`);
    start += 1n << BigInt(hostBits);
  }
  return out;
}

/**
 * Parses CIDRs into ranges per family; throws on an invalid one (validate
 * input first). IPv4-mapped IPv6 ranges count as IPv4, as everywhere else.
 */
function rangesOf(cidrs: readonly string[]): Record<Family, Range[]> {
  const out: Record<Family, Range[]> = { 4: [], 6: [] };
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p.ok) throw new Error(p.reason);
    out[p.family].push({ start: p.start, end: p.end });
  }
  return out;
}

export interface PrefixLists {
  readonly v4: readonly string[];
  readonly v6: readonly string[];
}

/**
 * `include` minus `exclude`, merged, as the fewest CIDRs per family, in
 * address order. Duplicates, overlaps and neighbours of the input vanish:
 * `10.0.0.0/25` and `10.0.0.128/25` become `10.0.0.0/24`.
 */
export function prefixList(include: readonly string[], exclude: readonly string[] = []): PrefixLists {
  const inc = rangesOf(include);
  const exc = rangesOf(exclude);
  const side = (family: Family) => subtract(merge(inc[family]), merge(exc[family])).flatMap((r) => toCidrs(r, family));
  return { v4: side(4), v6: side(6) };
}
