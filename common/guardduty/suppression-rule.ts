/**
 * The static GuardDuty suppression rule AWS documents for on-prem gateways:
 * archive OutsideAWS findings whose API caller IPv4 address is the gateway's.
 * It is blind — it also archives an attacker's calls through the same
 * address — which is why egress-witness exists; it remains the fallback.
 */
import { parseCidr } from '../cidr/cidr-set.js';
import { formatIpv4 } from '../cidr/ip.js';

export const OUTSIDE_AWS_FINDING_TYPE = 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS';
export const REMOTE_IPV4_ATTRIBUTE = 'service.action.awsApiCallAction.remoteIpDetails.ipAddressV4';
export const MAX_EQUALS_VALUES = 50;
export const MAX_EXPAND = 50;

export interface SuppressionRuleOptions {
  cidrs: readonly string[];
  name?: string;
  rank?: number;
  detectorId?: string;
  /** List single addresses for CIDRs of at most 50 addresses. */
  expand?: boolean;
  description?: string;
}

export interface CreateFilterInput {
  DetectorId?: string;
  Name: string;
  Description: string;
  Action: 'ARCHIVE';
  Rank: number;
  FindingCriteria: { Criterion: Record<string, { Equals: string[] }> };
}

export type SuppressionRuleResult = { ok: true; input: CreateFilterInput; notes: string[] } | { ok: false; error: string };

function ipv4Values(cidrs: readonly string[], expand: boolean, notes: string[]): string[] | string {
  const out: string[] = [];
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p.ok) return p.reason;
    if (p.family !== 4) {
      notes.push(`${c}: IPv6 is not matched by the ipAddressV4 criterion; GuardDuty has no IPv6 filter attribute for it`);
      continue;
    }
    const count = Number(p.end - p.start + 1n);
    if (expand && count <= MAX_EXPAND) {
      for (let v = Number(p.start); v <= Number(p.end); v++) out.push(formatIpv4(v));
    } else {
      if (expand) notes.push(`${p.cidr}: ${count} addresses, more than ${MAX_EXPAND}; kept as a CIDR`);
      out.push(count === 1 ? formatIpv4(Number(p.start)) : p.cidr);
    }
  }
  return [...new Set(out)];
}

export function buildSuppressionRule(opts: SuppressionRuleOptions): SuppressionRuleResult {
  const name = opts.name ?? 'egress-witness-gateway-cidrs';
  if (!/^[A-Za-z0-9._-]{3,64}$/.test(name)) return { ok: false, error: `filter name "${name}" must be 3-64 of A-Z a-z 0-9 . _ -` };
  const rank = opts.rank ?? 1;
  if (!Number.isInteger(rank) || rank < 1 || rank > 100) return { ok: false, error: `rank ${rank} must be an integer 1-100` };
  const notes: string[] = [];
  const values = ipv4Values(opts.cidrs, opts.expand ?? false, notes);
  if (typeof values === 'string') return { ok: false, error: values };
  if (values.length === 0) return { ok: false, error: 'no IPv4 egress CIDRs to put in the rule' };
  if (values.length > MAX_EQUALS_VALUES) {
    return {
      ok: false,
      error: `${values.length} values exceed GuardDuty's limit of ${MAX_EQUALS_VALUES} per criterion; drop --expand or split the CIDRs over several filters`,
    };
  }
  const input: CreateFilterInput = {
    ...(opts.detectorId ? { DetectorId: opts.detectorId } : {}),
    Name: name,
    Description:
      opts.description ??
      'Static fallback: archive OutsideAWS findings from the on-prem gateway egress addresses (blind to attackers behind the same gateway)',
    Action: 'ARCHIVE',
    Rank: rank,
    FindingCriteria: { Criterion: { type: { Equals: [OUTSIDE_AWS_FINDING_TYPE] }, [REMOTE_IPV4_ATTRIBUTE]: { Equals: values } } },
  };
  return { ok: true, input, notes };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The same rule as an `aws guardduty create-filter` command line. */
export function suppressionRuleCli(input: CreateFilterInput): string {
  const criteria = JSON.stringify(input.FindingCriteria);
  return [
    'aws guardduty create-filter',
    `--detector-id ${input.DetectorId ? shellQuote(input.DetectorId) : `"$(aws guardduty list-detectors --query 'DetectorIds[0]' --output text)"`}`,
    `--name ${shellQuote(input.Name)}`,
    `--description ${shellQuote(input.Description)}`,
    `--action ${input.Action}`,
    `--rank ${input.Rank}`,
    `--finding-criteria ${shellQuote(criteria)}`,
  ].join(' \\\n  ');
}
