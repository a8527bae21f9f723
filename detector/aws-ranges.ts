/** `aws_ip_ranges`: AWS's ip-ranges.json compiled to a CIDR set (sources inside AWS are ignored). */
import { readFile } from 'node:fs/promises';
import { CidrSet } from '../common/cidr/cidr-set.js';

export async function loadAwsIpRanges(path: string): Promise<CidrSet> {
  let doc: { prefixes?: { ip_prefix?: unknown }[]; ipv6_prefixes?: { ipv6_prefix?: unknown }[] };
  try {
    doc = JSON.parse(await readFile(path, 'utf8')) as typeof doc;
  } catch (err) {
    throw new Error(`aws_ip_ranges ${path}: ${(err as Error).message}`, { cause: err });
  }
  const cidrs: string[] = [];
  for (const p of doc.prefixes ?? []) if (typeof p.ip_prefix === 'string') cidrs.push(p.ip_prefix);
  for (const p of doc.ipv6_prefixes ?? []) if (typeof p.ipv6_prefix === 'string') cidrs.push(p.ipv6_prefix);
  if (cidrs.length === 0) throw new Error(`aws_ip_ranges ${path}: no prefixes found (expected AWS's ip-ranges.json)`);
  return CidrSet.of(cidrs);
}
