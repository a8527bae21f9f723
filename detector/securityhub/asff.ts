/**
 * Our findings in the AWS Security Finding Format, for BatchImportFindings.
 * Pure: the finding as stored (detector/findings/shape.ts) and where it goes
 * in, the ASFF document out. Documented field by field in docs/findings.md.
 *
 *   Id            egress-witness/<finding id>           stable: key + source + rule
 *   GeneratorId   egress-witness/rule/<rule>
 *   Types         TTPs/Initial Access/…OutsideAWS (+ an Unusual Behaviors type per gateway rule)
 *   Severity      GuardDuty's bands: 1–3.9 LOW, 4–6.9 MEDIUM, 7–8.9 HIGH, 9+ CRITICAL (also in FindingProviderFields)
 *   Resources     AwsIamAccessKey, AwsEc2Instance when the session names one
 *   RecordState   ARCHIVED once a later decision resolved it, else ACTIVE
 *   evidence      ProductFields (follows every update) and Note (kept by Security Hub from the first import)
 */
import type { AwsSecurityFinding, Partition, Resource, SeverityLabel } from '@aws-sdk/client-securityhub';
import { isoFromMs } from '../../common/time/iso.js';
import type { Evidence, RuleName } from '../correlate/types.js';
import { partitionOf, type Finding } from '../findings/shape.js';

export const ASFF_SCHEMA_VERSION = '2018-10-08';

/** Where findings are imported: the Security Hub region, the importing account, the product. */
export interface AsffTarget {
  region: string;
  accountId: string;
  productArn: string;
}

/** The account's default product, the one every account may import into without a partner integration. */
export function defaultProductArn(region: string, accountId: string): string {
  return `arn:${partitionOf(region)}:securityhub:${region}:${accountId}:product/${accountId}/default`;
}

/** GuardDuty's severity bands (Low 1.0–3.9, Medium 4.0–6.9, High 7.0–8.9, Critical 9–10) as ASFF labels. */
export function severityLabel(severity: number): SeverityLabel {
  if (!(severity >= 1)) return 'INFORMATIONAL';
  if (severity < 4) return 'LOW';
  if (severity < 7) return 'MEDIUM';
  if (severity < 9) return 'HIGH';
  return 'CRITICAL';
}

/** GuardDuty's finding type as an ASFF classifier ("/" is the path separator there, so it becomes "-"). */
export const OUTSIDE_AWS_ASFF_TYPE = 'TTPs/Initial Access/UnauthorizedAccess:IAMUser-InstanceCredentialExfiltration.OutsideAWS';

/** What each rule adds to the OutsideAWS type: how the call left, as an unusual behaviour. */
const RULE_TYPES: Partial<Record<RuleName, string>> = {
  'gateway-unattested': 'Unusual Behaviors/Network Flow/EgressWitness-GatewayUnattested',
  'gateway-unverified': 'Unusual Behaviors/Network Flow/EgressWitness-GatewayUnverified',
  'unrouted-client': 'Unusual Behaviors/IP address/EgressWitness-UnroutedClient',
  'wrong-client': 'Unusual Behaviors/IP address/EgressWitness-WrongClient',
};

export function asffTypes(rule: RuleName): string[] {
  const extra = RULE_TYPES[rule];
  return extra === undefined ? [OUTSIDE_AWS_ASFF_TYPE] : [OUTSIDE_AWS_ASFF_TYPE, extra];
}

/** ASFF's limits on the fields we fill. */
export const ASFF_LIMITS = { title: 256, description: 1024, note: 512, productFieldValue: 2048 } as const;

export function asffId(findingId: string): string {
  return `egress-witness/${findingId}`;
}

export function toAsff(f: Finding, target: AsffTarget): AwsSecurityFinding {
  const partition = partitionOf(f.region) as Partition;
  const w = f.egressWitness;
  const call = f.service.action.awsApiCallAction;
  const label = severityLabel(f.severity);
  const severity = { Label: label, Original: String(f.severity) };
  const types = asffTypes(w.rule);
  return {
    SchemaVersion: ASFF_SCHEMA_VERSION,
    Id: asffId(f.id),
    ProductArn: target.productArn,
    GeneratorId: `egress-witness/rule/${w.rule}`,
    // With the default product, Security Hub takes findings of the importing account only; the key's own
    // account is in the resources and in ProductFields.
    AwsAccountId: target.accountId,
    Types: types,
    CreatedAt: f.createdAt,
    UpdatedAt: f.updatedAt,
    FirstObservedAt: iso(f.service.eventFirstSeen),
    LastObservedAt: iso(f.service.eventLastSeen),
    Severity: severity,
    FindingProviderFields: { Severity: severity, Types: types },
    Title: clip(f.title, ASFF_LIMITS.title),
    Description: clip(f.description, ASFF_LIMITS.description),
    Resources: resources(f, partition),
    Action: {
      ActionType: 'AWS_API_CALL',
      AwsApiCallAction: {
        Api: call.api,
        ServiceName: call.serviceName,
        CallerType: 'remoteip',
        ...(call.remoteIpDetails.ipAddressV4 !== undefined ? { RemoteIpDetails: { IpAddressV4: call.remoteIpDetails.ipAddressV4 } } : {}),
        FirstSeen: iso(f.service.eventFirstSeen),
        LastSeen: iso(f.service.eventLastSeen),
      },
    },
    ProductFields: productFields(f),
    Note: { Text: clip(noteText(f), ASFF_LIMITS.note), UpdatedBy: 'egress-witness', UpdatedAt: f.updatedAt },
    RecordState: f.service.archived ? 'ARCHIVED' : 'ACTIVE',
  };
}

function resources(f: Finding, partition: Partition): Resource[] {
  const key = f.resource.accessKeyDetails;
  const instanceId = f.resource.instanceDetails.instanceId;
  const out: Resource[] = [];
  if (key.accessKeyId !== null)
    out.push({
      Type: 'AwsIamAccessKey',
      Id: `AWS::IAM::AccessKey:${key.accessKeyId}`,
      Partition: partition,
      Region: f.region,
      Details: {
        AwsIamAccessKey: {
          AccessKeyId: key.accessKeyId,
          AccountId: f.accountId,
          PrincipalType: key.userType,
          ...(key.principalId !== null ? { PrincipalId: key.principalId } : {}),
          ...(key.userName !== null ? { PrincipalName: key.userName } : {}),
        },
      },
    });
  if (instanceId !== null)
    out.push({
      Type: 'AwsEc2Instance',
      Id: `arn:${partition}:ec2:${f.region}:${f.accountId}:instance/${instanceId}`,
      Partition: partition,
      Region: f.region,
    });
  // ASFF needs one resource at least: a call without a key (never an instance credential in practice).
  if (out.length === 0) out.push({ Type: 'Other', Id: key.principalId ?? asffId(f.id), Partition: partition, Region: f.region });
  return out;
}

/** The evidence as Security Hub shows it: flat strings under egress-witness/ (at most 50 fields, 2,048 characters each). */
function productFields(f: Finding): Record<string, string> {
  const w = f.egressWitness;
  const call = f.service.action.awsApiCallAction;
  const source = call.remoteIpDetails.ipAddressV4 ?? call.remoteIpDetails.ipAddressV6;
  const fields: Record<string, string | undefined> = {
    'egress-witness/findingId': f.id,
    'egress-witness/rule': w.rule,
    'egress-witness/reason': w.reason,
    'egress-witness/gatewayId': w.gatewayId ?? undefined,
    'egress-witness/count': String(f.service.count),
    'egress-witness/accountId': f.accountId,
    'egress-witness/region': f.region,
    'egress-witness/sourceIpAddress': source,
    'egress-witness/userAgent': call.userAgent,
    'egress-witness/errorCode': call.errorCode,
    'egress-witness/eventIds': w.eventIds.join(','),
    ...Object.fromEntries(w.evidence.map((e, i) => [`egress-witness/evidence/${i + 1}`, evidenceText(e)])),
    'egress-witness/resolvedAt': w.resolution?.resolvedAt,
    'egress-witness/resolution': w.resolution ? `${w.resolution.rule}: ${w.resolution.reason}` : undefined,
    ...Object.fromEntries((w.resolution?.evidence ?? []).map((e, i) => [`egress-witness/resolution/evidence/${i + 1}`, evidenceText(e)])),
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== '') out[k] = clip(v, ASFF_LIMITS.productFieldValue);
  return out;
}

/** One sighting on one line: `gw1 saw 10.20.3.4 (vpc-prod) 12:00:01Z–12:00:03Z ×3 sts us-east-1 GetCallerIdentity inspect, 0 s from the event`. */
export function evidenceText(e: Evidence): string {
  const where = [e.service, e.region, e.action].filter((x) => x !== null).join(' ');
  return (
    `${e.gatewayId} saw ${e.clientIp} (${e.network ?? 'no routed network'}) ${e.firstSeen}–${e.lastSeen} ×${e.count}` +
    ` ${e.host}${where ? ` ${where}` : ''} ${e.mode}, ${Math.round(e.deltaMs / 1000)} s from the event`
  );
}

function noteText(f: Finding): string {
  const w = f.egressWitness;
  const first = w.evidence[0];
  return `egress-witness ${w.rule}: ${w.reason}.${first ? ` Nearest sighting: ${evidenceText(first)}.` : ''}`;
}

function iso(text: string): string {
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? isoFromMs(ms) : text;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
