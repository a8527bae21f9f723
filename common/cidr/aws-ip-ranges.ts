/**
 * AWS's published address ranges (`ip-ranges.json`, as served at
 * ip-ranges.amazonaws.com) read strictly: every prefix must parse, and a file
 * without any prefix is refused, so a truncated download or the wrong file
 * never yields an empty rule set. Pure: the caller reads the file.
 *
 *   { "syncToken": "…", "createDate": "2026-11-20-22-13-07",
 *     "prefixes":      [{ "ip_prefix": "3.4.12.4/32", "region": "eu-west-1", "service": "AMAZON", … }],
 *     "ipv6_prefixes": [{ "ipv6_prefix": "2600:1f14::/35", … }] }
 */
import { parseCidr } from './cidr-set.js';

export interface AwsIpRanges {
  readonly createDate: string | null;
  /** Prefixes as written in the file (normalised, duplicates kept: AWS lists one per service). */
  readonly v4: readonly string[];
  readonly v6: readonly string[];
}

export type AwsIpRangesResult = { ok: true; value: AwsIpRanges } | { ok: false; problems: string[] };

const MAX_PROBLEMS = 10;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Parses the text of ip-ranges.json; problems name their place (`prefixes[3].ip_prefix: …`). */
export function parseAwsIpRanges(text: string): AwsIpRangesResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [`not JSON (${(err as Error).message})`] };
  }
  if (!isObject(doc)) return { ok: false, problems: ['expected an object with "prefixes" and "ipv6_prefixes" (AWS ip-ranges.json)'] };
  const problems: string[] = [];
  const read = (list: string, key: string, family: 4 | 6): string[] => {
    const items = doc[list];
    if (items === undefined) return [];
    if (!Array.isArray(items)) {
      problems.push(`${list}: expected a list`);
      return [];
    }
    const out: string[] = [];
    items.forEach((item: unknown, i) => {
      const value = isObject(item) ? item[key] : undefined;
      const p = typeof value === 'string' ? parseCidr(value) : null;
      if (p?.ok && p.family === family) out.push(p.cidr);
      else problems.push(`${list}[${i}].${key}: expected an IPv${family} CIDR, got ${JSON.stringify(value) ?? 'nothing'}`);
    });
    return out;
  };
  const v4 = read('prefixes', 'ip_prefix', 4);
  const v6 = read('ipv6_prefixes', 'ipv6_prefix', 6);
  if (problems.length > 0) {
    const more = problems.length - MAX_PROBLEMS;
    return { ok: false, problems: [...problems.slice(0, MAX_PROBLEMS), ...(more > 0 ? [`… and ${more} more`] : [])] };
  }
  if (v4.length + v6.length === 0)
    return { ok: false, problems: ['no prefixes (expected AWS ip-ranges.json with "prefixes" and "ipv6_prefixes")'] };
  return { ok: true, value: { createDate: typeof doc.createDate === 'string' ? doc.createDate : null, v4, v6 } };
}
