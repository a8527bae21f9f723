/**
 * CloudTrail input, pure: log files (`{"Records":[…]}`, already gunzipped),
 * EventBridge "AWS API Call via CloudTrail" envelopes, and the normalisation
 * of one record to the few fields correlation uses. Garbage never throws: a
 * record that cannot be used becomes `{ kind: 'invalid', reason }` so the
 * caller can count it.
 */
import { z } from 'zod';
import { parseIp } from '../../common/cidr/ip.js';

export interface CloudTrailIdentity {
  type: string;
  arn: string | null;
  principalId: string | null;
  accessKeyId: string | null;
  accountId: string | null;
  /** Last part of an assumed-role ARN (`…:assumed-role/ROLE/SESSION`). */
  sessionName: string | null;
  roleName: string | null;
  ec2RoleDelivery: string | null;
  sessionIssuerArn: string | null;
  sessionCreationDate: string | null;
}

export interface CloudTrailEvent {
  eventId: string;
  /** As CloudTrail wrote it (ISO-8601 UTC, second resolution). */
  eventTime: string;
  eventTimeMs: number;
  eventSource: string;
  eventName: string;
  awsRegion: string;
  sourceIPAddress: string;
  userAgent: string | null;
  errorCode: string | null;
  recipientAccountId: string | null;
  vpcEndpointId: string | null;
  identity: CloudTrailIdentity;
  /** `tlsDetails.clientProvidedHostHeader`: the endpoint host the client dialled. */
  requestHost: string | null;
}

export type NormalizedRecord = { kind: 'event'; event: CloudTrailEvent } | { kind: 'invalid'; reason: string };
export type InstanceCredentialKind = 'instance-role' | 'instance-identity' | 'other';
export type SourceClass = 'aws-service' | 'ip' | 'invalid';

export const CLOUDTRAIL_DETAIL_TYPE = 'AWS API Call via CloudTrail';

/** Parses a log file as delivered to S3 (the caller gunzips `.json.gz`). */
export function parseCloudTrailFile(text: string): { records: unknown[] } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    return { error: `not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (!isObject(value)) return { error: 'not a CloudTrail log file: expected an object with "Records"' };
  const records = value['Records'];
  if (!Array.isArray(records)) return { error: 'not a CloudTrail log file: "Records" is missing or not an array' };
  return { records: records as unknown[] };
}

/**
 * CloudTrail records from any file an operator may hold: a log file as CloudTrail writes it
 * (`{"Records":[…]}`), one EventBridge event or an array of them (as `POST /v1/cloudtrail`
 * takes), bare records, or JSON lines of any of these. The watch directory and `replay
 * --cloudtrail` read files with this. A JSON line that does not parse is kept as text (an
 * invalid record, counted); a file with no JSON at all, or an object that is none of these,
 * is an error.
 */
export function parseCloudTrailInput(text: string): { records: unknown[] } | { error: string } {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    const lines = body.split('\n').filter((l) => l.trim() !== '');
    const records: unknown[] = [];
    let parsed = 0;
    for (const l of lines) {
      try {
        records.push(...unwrapEventBridge(JSON.parse(l) as unknown));
        parsed++;
      } catch {
        records.push(l);
      }
    }
    return parsed > 0 && lines.length > 1 ? { records } : parseCloudTrailFile(body);
  }
  if (Array.isArray(value)) return { records: unwrapEventBridge(value) };
  if (isObject(value) && !('Records' in value) && ('detail-type' in value || 'eventID' in value || 'eventVersion' in value))
    return { records: unwrapEventBridge(value) };
  return parseCloudTrailFile(body);
}

/**
 * Accepts one EventBridge event, an array of them, or bare CloudTrail records
 * (alone or in an array), and returns the records. Envelopes of another
 * detail-type (console sign-in, service events…) are skipped; anything that is
 * not an envelope passes through unchanged so `normalizeRecord` judges it.
 */
export function unwrapEventBridge(value: unknown): unknown[] {
  const items = Array.isArray(value) ? (value as unknown[]) : [value];
  const out: unknown[] = [];
  for (const item of items) {
    if (isObject(item) && 'detail-type' in item) {
      if (item['detail-type'] === CLOUDTRAIL_DETAIL_TYPE && isObject(item['detail'])) out.push(item['detail']);
      continue;
    }
    out.push(item);
  }
  return out;
}

const str = z.string();
const optStr = z.string().nullish();
const eventVersion = z.string().regex(/^1\.\d+$/, 'eventVersion major must be 1');
const isoTime = z
  .string()
  .refine((v) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v) && Number.isFinite(Date.parse(v)), 'not an ISO-8601 time');

/** The fields correlation reads, as a schema; exported so tests can hold `quickCheck` to it. */
export const cloudTrailRecordSchema = z.object({
  eventVersion,
  eventID: str.min(1),
  eventTime: isoTime,
  eventSource: str.min(1),
  eventName: str.min(1),
  awsRegion: str.min(1),
  sourceIPAddress: str.min(1),
  userAgent: optStr,
  errorCode: optStr,
  recipientAccountId: optStr,
  vpcEndpointId: optStr,
  tlsDetails: z.object({ clientProvidedHostHeader: optStr }).nullish(),
  userIdentity: z.object({
    type: str.min(1),
    arn: optStr,
    principalId: optStr,
    accessKeyId: optStr,
    accountId: optStr,
    sessionContext: z
      .object({
        sessionIssuer: z.object({ arn: optStr, userName: optStr }).nullish(),
        attributes: z.object({ creationDate: optStr }).nullish(),
        ec2RoleDelivery: optStr,
      })
      .nullish(),
  }),
});

type RecordShape = z.infer<typeof cloudTrailRecordSchema>;

const isStr = (v: unknown): v is string => typeof v === 'string';
const isNonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isOptStr = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';
const isOptObj = (v: unknown): v is Record<string, unknown> | null | undefined => v === undefined || v === null || isObject(v);
const EVENT_VERSION = /^1\.\d+$/;
const ISO_PREFIX = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/**
 * The common case checked by hand (a replay decides hundreds of thousands of
 * records a second); any doubt falls back to the schema, which also words
 * the reason. Accepts exactly what `cloudTrailRecordSchema` accepts.
 */
function quickCheck(r: Record<string, unknown>): r is RecordShape & Record<string, unknown> {
  const id = r.userIdentity;
  if (!isObject(id) || !isNonEmpty(id.type)) return false;
  if (!isOptStr(id.arn) || !isOptStr(id.principalId) || !isOptStr(id.accessKeyId) || !isOptStr(id.accountId)) return false;
  const ctx = id.sessionContext;
  if (!isOptObj(ctx)) return false;
  if (ctx) {
    const issuer = ctx.sessionIssuer;
    const attrs = ctx.attributes;
    if (!isOptObj(issuer) || !isOptObj(attrs) || !isOptStr(ctx.ec2RoleDelivery)) return false;
    if (issuer && (!isOptStr(issuer.arn) || !isOptStr(issuer.userName))) return false;
    if (attrs && !isOptStr(attrs.creationDate)) return false;
  }
  const tlsDetails = r.tlsDetails;
  if (!isOptObj(tlsDetails) || (tlsDetails && !isOptStr(tlsDetails.clientProvidedHostHeader))) return false;
  return (
    isStr(r.eventVersion) &&
    EVENT_VERSION.test(r.eventVersion) &&
    isNonEmpty(r.eventID) &&
    isStr(r.eventTime) &&
    ISO_PREFIX.test(r.eventTime) &&
    Number.isFinite(Date.parse(r.eventTime)) &&
    isNonEmpty(r.eventSource) &&
    isNonEmpty(r.eventName) &&
    isNonEmpty(r.awsRegion) &&
    isNonEmpty(r.sourceIPAddress) &&
    isOptStr(r.userAgent) &&
    isOptStr(r.errorCode) &&
    isOptStr(r.recipientAccountId) &&
    isOptStr(r.vpcEndpointId)
  );
}

/** Validates the fields correlation uses; never throws. */
export function normalizeRecord(raw: unknown): NormalizedRecord {
  if (!isObject(raw)) return { kind: 'invalid', reason: 'record is not an object' };
  let r: RecordShape;
  if (quickCheck(raw)) {
    r = raw;
  } else {
    const parsed = cloudTrailRecordSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue ? issue.path.map(String).join('.') : '';
      return { kind: 'invalid', reason: `${path || '(record)'}: ${issue?.message ?? 'invalid'}` };
    }
    r = parsed.data;
  }
  const id = r.userIdentity;
  const ctx = id.sessionContext ?? null;
  const assumed = id.type === 'AssumedRole' ? assumedRoleParts(id.arn ?? null) : null;
  return {
    kind: 'event',
    event: {
      eventId: r.eventID,
      eventTime: r.eventTime,
      eventTimeMs: Date.parse(r.eventTime),
      eventSource: r.eventSource,
      eventName: r.eventName,
      awsRegion: r.awsRegion,
      sourceIPAddress: r.sourceIPAddress,
      userAgent: r.userAgent ?? null,
      errorCode: r.errorCode ?? null,
      recipientAccountId: r.recipientAccountId ?? null,
      vpcEndpointId: r.vpcEndpointId ?? null,
      requestHost: r.tlsDetails?.clientProvidedHostHeader ?? null,
      identity: {
        type: id.type,
        arn: id.arn ?? null,
        principalId: id.principalId ?? null,
        accessKeyId: id.accessKeyId ?? null,
        accountId: id.accountId ?? null,
        sessionName: assumed?.sessionName ?? null,
        roleName: assumed?.roleName ?? ctx?.sessionIssuer?.userName ?? null,
        ec2RoleDelivery: ctx?.ec2RoleDelivery ?? null,
        sessionIssuerArn: ctx?.sessionIssuer?.arn ?? null,
        sessionCreationDate: ctx?.attributes?.creationDate ?? null,
      },
    },
  };
}

/**
 * `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`. The resource is
 * everything after the fifth colon: the instance identity role's name
 * (`aws:ec2-instance`) contains a colon itself.
 */
function assumedRoleParts(arn: string | null): { roleName: string; sessionName: string } | null {
  if (arn === null) return null;
  let at = -1;
  for (let i = 0; i < 5; i++) {
    at = arn.indexOf(':', at + 1);
    if (at < 0) return null;
  }
  const resource = arn.slice(at + 1);
  const m = /^assumed-role\/([^/]+)\/(.+)$/.exec(resource);
  return m ? { roleName: m[1] ?? '', sessionName: m[2] ?? '' } : null;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const INSTANCE_IDENTITY_ROLE = 'aws:ec2-instance';

/**
 * Instance-role credentials are what GuardDuty's InstanceCredentialExfiltration
 * is about: an AssumedRole session delivered by IMDS (`ec2RoleDelivery`
 * "1.0"/"2.0"; older records lack it, so a session named after an instance
 * ID counts too). The instance identity role is used by AWS's own agents on
 * the instance and is not the customer's launch role.
 */
export function instanceCredentialKind(e: CloudTrailEvent): InstanceCredentialKind {
  if (e.identity.type !== 'AssumedRole') return 'other';
  if (e.identity.roleName === INSTANCE_IDENTITY_ROLE) return 'instance-identity';
  if (e.identity.ec2RoleDelivery !== null && e.identity.ec2RoleDelivery !== '') return 'instance-role';
  if (e.identity.sessionName !== null && INSTANCE_ID.test(e.identity.sessionName)) return 'instance-role';
  return 'other';
}

/** The instance ID when the session is named after one (always so for IMDS credentials). */
export function instanceIdOf(e: CloudTrailEvent): string | null {
  const s = e.identity.sessionName;
  return s !== null && INSTANCE_ID.test(s) ? s : null;
}

const AWS_SERVICE_NAME = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+amazonaws\.com(?:\.cn)?$/;

/**
 * `sourceIPAddress` is an address, or for calls AWS makes on the caller's
 * behalf a service DNS name (`ec2.amazonaws.com`) or `AWS Internal`.
 * Anything else is `invalid` (and treated as outside AWS by the decision).
 */
export function classifySource(ip: string): SourceClass {
  if (ip === 'AWS Internal') return 'aws-service';
  if (AWS_SERVICE_NAME.test(ip.toLowerCase())) return 'aws-service';
  return parseIp(ip) !== null ? 'ip' : 'invalid';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
