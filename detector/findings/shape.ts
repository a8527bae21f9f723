/**
 * Decisions shaped as GuardDuty findings, so that tooling written for
 * GuardDuty's OutsideAWS finding reads ours unchanged; our own facts live
 * under `egressWitness`. Repeats merge into one finding per access key,
 * source address and rule, as GuardDuty aggregates repeat activity.
 * Documented in docs/findings.md.
 *
 * Where a finding and the decision record (detector/decisions/record.ts) hold
 * the same fact, `egressWitness` holds it under the record's name with the
 * record's value — `disposition`, `rule`, `accessKeyId`, `sourceIp`,
 * `gatewayId` (null for none), and `reason` and `evidence` as in its
 * `detail` — all of the latest occurrence, whose event id is the last of
 * `eventIds` (docs/findings.md#findings-and-decision-records).
 */
import { hash } from 'node:crypto';
import { parseIp } from '../../common/cidr/ip.js';
import type { CloudTrailEvent } from '../cloudtrail/parse.js';
import { OUTSIDE_AWS_FINDING_TYPE, type Decision, type Disposition, type Evidence, type RuleName } from '../correlate/types.js';

export const FINDING_SCHEMA = 1;
/** How many contributing CloudTrail event IDs a finding keeps (the latest). */
export const MAX_EVENT_IDS = 20;

export interface Finding {
  schemaVersion: '2.0';
  accountId: string;
  region: string;
  partition: string;
  /** 32 hex digits, stable per access key + source address + rule. */
  id: string;
  type: string;
  severity: number;
  title: string;
  description: string;
  createdAt: string;
  updatedAt: string;
  resource: {
    resourceType: 'AccessKey';
    accessKeyDetails: { accessKeyId: string | null; principalId: string | null; userName: string | null; userType: string };
    instanceDetails: { instanceId: string | null };
  };
  service: {
    serviceName: 'egress-witness';
    action: {
      actionType: 'AWS_API_CALL';
      awsApiCallAction: {
        api: string;
        serviceName: string;
        callerType: 'Remote IP';
        remoteIpDetails: { ipAddressV4?: string; ipAddressV6?: string };
        errorCode?: string;
        userAgent?: string;
      };
    };
    count: number;
    eventFirstSeen: string;
    eventLastSeen: string;
    /** Suppressed or ignored decisions shaped as findings are archived, as a GuardDuty suppression rule would. */
    archived: boolean;
  };
  egressWitness: {
    schema: typeof FINDING_SCHEMA;
    rule: RuleName;
    disposition: Disposition;
    /** The decision record's `accessKeyId`, `sourceIp` and `gatewayId` of the latest occurrence. */
    accessKeyId: string | null;
    sourceIp: string;
    gatewayId: string | null;
    evidence: Evidence[];
    reason: string;
    eventIds: string[];
    /** Present while a later decision has resolved the finding (service.archived is then true); see detection.md. */
    resolution?: FindingResolution;
  };
}

/** The later decision that resolved a finding: every occurrence, decided again with the evidence now stored, is no finding. */
export interface FindingResolution {
  resolvedAt: string;
  /** The rule of the latest occurrence's new decision (`attested`, `endpoint-attested`, …). */
  rule: RuleName;
  reason: string;
  evidence: Evidence[];
}

export interface FindingContext {
  accountId: string;
  region: string;
  /** Derived from the region when absent (aws, aws-cn, aws-us-gov). */
  partition?: string;
  nowIso: string;
}

/** The account and region a finding belongs to: the event's recipient account (else the caller's), and its region. */
export function findingContextOf(event: CloudTrailEvent, nowIso: string): FindingContext {
  return { accountId: event.recipientAccountId ?? event.identity.accountId ?? '000000000000', region: event.awsRegion, nowIso };
}

export function findingFromDecision(decision: Decision, event: CloudTrailEvent, ctx: FindingContext): Finding {
  const role = event.identity.roleName ?? 'unknown';
  const remote = remoteIpDetails(event.sourceIPAddress);
  const call: Finding['service']['action']['awsApiCallAction'] = {
    api: event.eventName,
    serviceName: event.eventSource,
    callerType: 'Remote IP',
    remoteIpDetails: remote,
    ...(event.errorCode !== null ? { errorCode: event.errorCode } : {}),
    ...(event.userAgent !== null ? { userAgent: event.userAgent } : {}),
  };
  return {
    schemaVersion: '2.0',
    accountId: ctx.accountId,
    region: ctx.region,
    partition: ctx.partition ?? partitionOf(ctx.region),
    id: findingId(decision.accessKeyId, decision.sourceIPAddress, decision.rule),
    type: OUTSIDE_AWS_FINDING_TYPE,
    severity: decision.severity ?? 0,
    title: titleFor(decision, role),
    description: `${decision.reason}. ${EXPLANATION[decision.rule]}`,
    createdAt: ctx.nowIso,
    updatedAt: ctx.nowIso,
    resource: {
      resourceType: 'AccessKey',
      accessKeyDetails: {
        accessKeyId: decision.accessKeyId,
        principalId: event.identity.principalId,
        userName: event.identity.roleName,
        userType: event.identity.type,
      },
      instanceDetails: { instanceId: decision.instanceId },
    },
    service: {
      serviceName: 'egress-witness',
      action: { actionType: 'AWS_API_CALL', awsApiCallAction: call },
      count: 1,
      eventFirstSeen: event.eventTime,
      eventLastSeen: event.eventTime,
      archived: decision.disposition !== 'finding',
    },
    egressWitness: {
      schema: FINDING_SCHEMA,
      rule: decision.rule,
      disposition: decision.disposition,
      accessKeyId: decision.accessKeyId,
      sourceIp: decision.sourceIPAddress,
      gatewayId: decision.gatewayId,
      evidence: decision.evidence,
      reason: decision.reason,
      eventIds: [decision.eventId],
    },
  };
}

/**
 * Folds a repeat into an existing finding the way GuardDuty updates one:
 * count adds up, the span widens, and the action (API, remote IP, user
 * agent) and the evidence are the latest event's. Identity and createdAt
 * stay the existing finding's.
 */
export function mergeFinding(existing: Finding, next: Finding): Finding {
  const nextIsLater = time(next.service.eventLastSeen) >= time(existing.service.eventLastSeen);
  const later = nextIsLater ? next : existing;
  const eventIds = [
    ...existing.egressWitness.eventIds.filter((id) => !next.egressWitness.eventIds.includes(id)),
    ...next.egressWitness.eventIds,
  ];
  return {
    ...existing,
    severity: Math.max(existing.severity, next.severity),
    title: later.title,
    description: later.description,
    updatedAt: time(next.updatedAt) >= time(existing.updatedAt) ? next.updatedAt : existing.updatedAt,
    resource: later.resource,
    service: {
      ...existing.service,
      action: later.service.action,
      count: existing.service.count + next.service.count,
      eventFirstSeen:
        time(next.service.eventFirstSeen) < time(existing.service.eventFirstSeen)
          ? next.service.eventFirstSeen
          : existing.service.eventFirstSeen,
      eventLastSeen: later.service.eventLastSeen,
      archived: existing.service.archived && next.service.archived,
    },
    // A new occurrence reopens a resolved finding: the resolution no longer holds.
    egressWitness: { ...withoutResolution(later.egressWitness), eventIds: eventIds.slice(-MAX_EVENT_IDS) },
  };
}

function withoutResolution(w: Finding['egressWitness']): Finding['egressWitness'] {
  const { resolution: _resolution, ...rest } = w;
  return rest;
}

/** sha256 over key, source and rule: the same misuse keeps one finding id across restarts. */
export function findingId(accessKeyId: string | null, sourceIPAddress: string, rule: RuleName): string {
  return hash('sha256', `${accessKeyId ?? ''}\n${sourceIPAddress}\n${rule}`, 'hex').slice(0, 32);
}

export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

function remoteIpDetails(source: string): { ipAddressV4?: string; ipAddressV6?: string } {
  if (parseIp(source) === null) return {};
  // An IPv4-mapped IPv6 source stays IPv6 here: the field mirrors what CloudTrail wrote.
  return source.includes(':') ? { ipAddressV6: source } : { ipAddressV4: source };
}

function titleFor(d: Decision, role: string): string {
  const via = d.gatewayId ?? 'a gateway';
  switch (d.rule) {
    case 'external':
      return `Credentials of EC2 instance role ${role} used from external IP address ${d.sourceIPAddress}.`;
    case 'gateway-unattested':
      return `Credentials of EC2 instance role ${role} used from gateway ${via}'s address without its attestation.`;
    case 'gateway-unverified':
      return `Credentials of EC2 instance role ${role} used from gateway ${via}'s address while the gateway was silent.`;
    case 'wrong-client':
      return `Credentials of EC2 instance role ${role} used through gateway ${via} by another routed host than their instance.`;
    case 'unrouted-client':
      return `Credentials of EC2 instance role ${role} used through gateway ${via} by a client outside every routed network.`;
    case 'attested':
    case 'endpoint-attested':
      return `Credentials of EC2 instance role ${role} used through gateway ${via}, attested.`;
    default:
      return `Credentials of role ${role} used from ${d.sourceIPAddress} (not an exfiltration candidate).`;
  }
}

const EXPLANATION: Readonly<Record<RuleName, string>> = {
  'not-instance-credential': 'The credentials are not EC2 instance-role credentials delivered by the instance metadata service.',
  'aws-internal': "AWS made the call on the caller's behalf.",
  'vpc-endpoint': 'The call reached AWS through a VPC endpoint from a private address.',
  'inside-aws': 'The source address belongs to AWS.',
  'wrong-client':
    "The gateway's agent saw this access key presented only by routed clients whose addresses did not belong to the key's own instance at that time: instance credentials taken from one instance and used from another host behind the gateway.",
  attested: "The gateway's agent saw this access key used by a routed client at that time.",
  'endpoint-attested':
    'The gateway runs tunnel-only: its agent saw a routed client reach this service and region at that time, but cannot see access keys.',
  'unrouted-client':
    "The gateway's agent saw this access key only from clients outside every routed network; instance credentials should only be used by routed instances.",
  'gateway-unverified':
    'The call came from a gateway address, but the gateway sent no telemetry around that time, so it cannot be verified.',
  'gateway-unattested':
    'The call came from a gateway address while its agent was watching, but the agent did not see this access key: the traffic bypassed the agent or the credentials were used by another host behind the gateway.',
  external: 'EC2 instance-role credentials were used from an address outside AWS and outside every registered gateway.',
};

function time(iso: string): number {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : 0;
}
