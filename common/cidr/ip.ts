/**
 * Textual IP addresses to integers, without I/O. IPv4 becomes a uint32 number,
 * IPv6 a bigint; IPv4-mapped IPv6 (`::ffff:a.b.c.d`, how a dual-stack socket
 * reports an IPv4 peer) is folded to its IPv4 form so one rule matches both.
 */
export type ParsedIp = { readonly family: 4; readonly value: number } | { readonly family: 6; readonly value: bigint };

/** Parses dotted-quad IPv4 strictly (no leading zeros, no shorthand). */
export function parseIpv4(text: string): number | null {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // virtual trailing '.'
    if (c === 46) {
      if (digits === 0 || octet > 255) return null;
      value = value * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
      if (parts > 4) return null;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return null; // leading zero: ambiguous (octal in some parsers)
      octet = octet * 10 + (c - 48);
      digits++;
      if (digits > 3) return null;
    } else {
      return null;
    }
  }
  return parts === 4 ? value : null;
}

export function formatIpv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

const MAPPED_PREFIX = 0xffffn << 32n;

const HEX = /^[0-9a-fA-F]{1,4}$/;

function parseGroups(part: string, allowV4Tail: boolean): number[] | null {
  if (part === '') return [];
  const items = part.split(':');
  const out: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i] ?? '';
    if (allowV4Tail && i === items.length - 1 && item.includes('.')) {
      const v4 = parseIpv4(item);
      if (v4 === null) return null;
      out.push(v4 >>> 16, v4 & 0xffff);
    } else if (HEX.test(item)) {
      out.push(parseInt(item, 16));
    } else {
      return null;
    }
  }
  return out;
}

/** Parses IPv6 text (with `::`, an embedded IPv4 tail, brackets or a zone id) to a bigint. */
export function parseIpv6(text: string): bigint | null {
  let addr = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const zone = addr.indexOf('%');
  if (zone >= 0) {
    // A zone id is an interface name: non-empty, no further '%'.
    const id = addr.slice(zone + 1);
    if (id === '' || id.includes('%') || !/^[\w.-]+$/.test(id)) return null;
    addr = addr.slice(0, zone);
  }
  const dbl = addr.indexOf('::');
  let groups: number[] | null;
  if (dbl >= 0) {
    if (addr.indexOf('::', dbl + 1) >= 0) return null;
    const head = parseGroups(addr.slice(0, dbl), false);
    const tail = parseGroups(addr.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return null;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    groups = parseGroups(addr, true);
    if (!groups || groups.length !== 8) return null;
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

export function formatIpv6(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 is folded to IPv4. */
export function parseIp(text: string): ParsedIp | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { family: 4, value: v4 };
  if (!text.includes(':')) return null;
  const value = parseIpv6(text);
  if (value === null) return null;
  if (value >> 32n === 0xffffn) return { family: 4, value: Number(value - MAPPED_PREFIX) };
  return { family: 6, value };
}

export function formatIp(ip: ParsedIp): string {
  return ip.family === 4 ? formatIpv4(ip.value) : formatIpv6(ip.value);
}

/** Whether a listen host reaches only this machine: `localhost`, 127.0.0.0/8 (mapped forms too) or ::1. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const ip = parseIp(host);
  if (ip === null) return false;
  return ip.family === 4 ? ip.value >>> 24 === 127 : ip.value === 1n;
}

/** Canonical text form: IPv4 dotted quad (mapped forms folded), IPv6 compressed. */
export function canonicalIp(text: string): string | null {
  const ip = parseIp(text);
  return ip ? formatIp(ip) : null;
}
