/**
 * Whether one of the user's own GuardDuty OutsideAWS findings may be
 * archived. GuardDuty aggregates repeat activity into one finding with a
 * span [eventFirstSeen, eventLastSeen] and only the latest remote IP, so
 * archiving is allowed only when every check below passes; any doubt keeps
 * the finding, enriched with the reason:
 *
 *   type is OutsideAWS                          else keep not-outside-aws-type
 *   key, remote IP and span present             else keep malformed
 *   remote IP R in a configured gateway's CIDRs else keep not-a-gateway-address
 *   CloudTrail: no use of K in the span from
 *     outside every gateway and AWS             else keep external-use-seen
 *   no gateway of R saw K from an unrouted
 *     client in the span                        else keep unrouted-client
 *   no gateway of R saw K from a routed client
 *     whose address was another instance's than
 *     K's (inventory) in the span               else keep wrong-client
 *   a gateway G of R saw K from routed clients
 *     near eventFirstSeen AND eventLastSeen     → archive attested
 *   G silent near either end                    → keep gateway-silent
 *   otherwise                                   → keep not-attested
 */
import { parseIp } from '../../common/cidr/ip.js';
import { classifySource } from '../cloudtrail/parse.js';
import { isPrivateAddress } from '../correlate/address-class.js';
import { nearestEvidence, withinWindow } from '../correlate/evidence.js';
import { bindingOf, nearestBoundEvidence } from '../correlate/binding.js';
import {
  OUTSIDE_AWS_FINDING_TYPE,
  type CompiledGateway,
  type CompiledRegistry,
  type CorrelationPolicy,
  type Evidence,
  type EvidenceView,
  type InventoryView,
  type Sighting,
} from '../correlate/types.js';

export type GuardDutyReason =
  | 'attested'
  | 'external-use-seen'
  | 'not-attested'
  | 'gateway-silent'
  | 'unrouted-client'
  /** A routed client presented the key from an address that was not the key's instance's (docs/detection.md#instance-binding). */
  | 'wrong-client'
  | 'not-a-gateway-address'
  | 'not-outside-aws-type'
  | 'malformed'
  /** egress-witness raised its own finding for the key within the span: the two must not disagree quietly. */
  | 'detector-finding'
  /** Pushed, but not read back from the configured detector (set by the processor, never by the rule). */
  | 'unconfirmed';

export interface CloudTrailUse {
  eventId: string;
  eventTime: string;
  sourceIPAddress: string;
  /** Set when the call came through an interface VPC endpoint (a private source is then explained). */
  vpcEndpointId?: string | null;
}

export interface GuardDutyFindingView {
  id: string;
  type: string;
  accountId: string | null;
  region: string | null;
  severity: number | null;
  accessKeyId: string | null;
  principalId: string | null;
  userName: string | null;
  instanceId: string | null;
  /** ipAddressV4, else ipAddressV6, of the latest call. */
  remoteIp: string | null;
  eventFirstSeen: string | null;
  eventLastSeen: string | null;
  count: number | null;
  archived: boolean | null;
  /** When GuardDuty last updated the finding: a new version is decided again. */
  updatedAt: string | null;
  /** The GuardDuty detector that owns the finding (ArchiveFindings needs it). */
  detectorId: string | null;
}

export interface GuardDutyDecision {
  findingId: string;
  accessKeyId: string | null;
  remoteIp: string | null;
  decision: 'archive' | 'keep';
  reason: GuardDutyReason;
  gatewayId: string | null;
  evidence: { start: Evidence[]; end: Evidence[]; externalEvents: CloudTrailUse[] };
  spanStart: string | null;
  spanEnd: string | null;
}

export interface GuardDutyContext {
  registry: CompiledRegistry;
  evidence: EvidenceView;
  policy: CorrelationPolicy;
  /** Which addresses were which instance's (EMPTY_INVENTORY without one). */
  inventory: InventoryView;
  /** CloudTrail events signed with the key in [from, to]. */
  cloudTrailUses: (accessKeyId: string, fromMs: number, toMs: number) => CloudTrailUse[];
  /** How many of egress-witness's own findings name the key, by event time in [from, to]. */
  ownFindings: (accessKeyId: string, fromMs: number, toMs: number) => number;
}

export const GUARDDUTY_SOURCE = 'aws.guardduty';
export const GUARDDUTY_DETAIL_TYPE = 'GuardDuty Finding';

/** Accepts a bare finding or its EventBridge envelope; only `id` and `type` are required. */
/** `body` is the finding object itself (the envelope's detail), for callers that pass it on. */
export function parseGuardDutyFinding(
  raw: unknown,
): { kind: 'finding'; finding: GuardDutyFindingView; body: Record<string, unknown> } | { kind: 'invalid'; reason: string } {
  let f = raw;
  if (isObject(raw) && 'detail-type' in raw) {
    if (raw['source'] !== GUARDDUTY_SOURCE || raw['detail-type'] !== GUARDDUTY_DETAIL_TYPE) {
      return {
        kind: 'invalid',
        reason: `not a GuardDuty finding event (source ${JSON.stringify(raw['source'])}, detail-type ${JSON.stringify(raw['detail-type'])})`,
      };
    }
    f = raw['detail'];
  }
  if (!isObject(f)) return { kind: 'invalid', reason: 'finding is not an object' };
  const id = text(f, 'id');
  const type = text(f, 'type');
  if (id === null) return { kind: 'invalid', reason: 'id: required string' };
  if (type === null) return { kind: 'invalid', reason: 'type: required string' };
  const key = at(f, 'resource', 'accessKeyDetails');
  const service = at(f, 'service');
  const remote = at(service, 'action', 'awsApiCallAction', 'remoteIpDetails');
  const severity = f['severity'];
  const count = service?.['count'];
  const archived = service?.['archived'];
  return {
    kind: 'finding',
    body: f,
    finding: {
      id,
      type,
      accountId: text(f, 'accountId'),
      region: text(f, 'region'),
      severity: typeof severity === 'number' && Number.isFinite(severity) ? severity : null,
      accessKeyId: text(key, 'accessKeyId'),
      principalId: text(key, 'principalId'),
      userName: text(key, 'userName'),
      instanceId: text(at(f, 'resource', 'instanceDetails'), 'instanceId'),
      remoteIp: text(remote, 'ipAddressV4') ?? text(remote, 'ipAddressV6'),
      eventFirstSeen: text(service, 'eventFirstSeen'),
      eventLastSeen: text(service, 'eventLastSeen'),
      count: typeof count === 'number' && Number.isInteger(count) ? count : null,
      archived: typeof archived === 'boolean' ? archived : null,
      updatedAt: text(f, 'updatedAt'),
      detectorId: text(service, 'detectorId'),
    },
  };
}

export function decideGuardDutyFinding(f: GuardDutyFindingView, ctx: GuardDutyContext): GuardDutyDecision {
  const base = { findingId: f.id, accessKeyId: f.accessKeyId, remoteIp: f.remoteIp, spanStart: f.eventFirstSeen, spanEnd: f.eventLastSeen };
  const keep = (
    reason: GuardDutyReason,
    gatewayId: string | null = null,
    evidence: Partial<GuardDutyDecision['evidence']> = {},
  ): GuardDutyDecision => ({
    ...base,
    decision: 'keep',
    reason,
    gatewayId,
    evidence: { start: evidence.start ?? [], end: evidence.end ?? [], externalEvents: evidence.externalEvents ?? [] },
  });

  if (f.type !== OUTSIDE_AWS_FINDING_TYPE) return keep('not-outside-aws-type');
  const first = f.eventFirstSeen !== null ? Date.parse(f.eventFirstSeen) : NaN;
  const last = f.eventLastSeen !== null ? Date.parse(f.eventLastSeen) : NaN;
  if (
    f.accessKeyId === null ||
    f.remoteIp === null ||
    parseIp(f.remoteIp) === null ||
    !Number.isFinite(first) ||
    !Number.isFinite(last) ||
    last < first
  ) {
    return keep('malformed');
  }
  const key = f.accessKeyId;
  const gateways = ctx.registry.gatewaysFor(f.remoteIp);
  if (gateways.length === 0) return keep('not-a-gateway-address');

  const w = ctx.policy.windowMs;
  const externalEvents = ctx.cloudTrailUses(key, first - w, last + w).filter((u) => isExternalSource(u, ctx));
  if (externalEvents.length > 0) return keep('external-use-seen', gateways[0]?.id ?? null, { externalEvents });

  const inSpan = ctx.evidence.keySightings(key, first - w, last + w).filter((s) => s.accessKeyId === key);
  const ends = gateways.map((g) => endsOf(g, inSpan, first, last, w));

  const unrouted = ends.find((e) => e.unrouted.length > 0);
  if (unrouted !== undefined) {
    return keep('unrouted-client', unrouted.gateway.id, {
      start: nearestEvidence(unrouted.unrouted, first),
      end: nearestEvidence(unrouted.unrouted, last),
    });
  }

  const instanceId = keyInstanceOf(f);
  if (instanceId !== null) {
    for (const e of ends) {
      // Each sighting is bound at its own time, clamped into the span.
      const at = (s: Sighting) => Math.min(Math.max(s.firstSeenMs, first), last);
      const wrong = e.routed.filter((s) => bindingOf(s, instanceId, ctx.inventory, at(s)).binding === 'other');
      if (wrong.length === 0) continue;
      const bind = (atMs: number) => ({
        binding: (c: Pick<Sighting, 'clientIp' | 'network'>) => bindingOf(c, instanceId, ctx.inventory, atMs),
      });
      return keep('wrong-client', e.gateway.id, {
        start: nearestBoundEvidence(wrong, first, bind(first)),
        end: nearestBoundEvidence(wrong, last, bind(last)),
      });
    }
  }

  const attested = ends.find((e) => e.start.length > 0 && e.end.length > 0);
  if (attested !== undefined) {
    const evidence = { start: nearestEvidence(attested.start, first), end: nearestEvidence(attested.end, last) };
    if (ctx.ownFindings(key, first - w, last + w) > 0) return keep('detector-finding', attested.gateway.id, evidence);
    return {
      ...base,
      decision: 'archive',
      reason: 'attested',
      gatewayId: attested.gateway.id,
      evidence: { start: nearestEvidence(attested.start, first), end: nearestEvidence(attested.end, last), externalEvents: [] },
    };
  }

  const stale = ctx.policy.heartbeatStaleMs;
  const silent = gateways.find(
    (g) => !ctx.evidence.heartbeatNear(g.id, first - stale, first + stale) || !ctx.evidence.heartbeatNear(g.id, last - stale, last + stale),
  );
  const partial = ends.find((e) => e.start.length > 0 || e.end.length > 0) ?? ends[0];
  const shown = (e: GatewayEnds | undefined) =>
    e === undefined ? {} : { start: nearestEvidence(e.start, first), end: nearestEvidence(e.end, last) };
  if (silent !== undefined) return keep('gateway-silent', silent.id, shown(ends.find((e) => e.gateway === silent)));
  return keep('not-attested', partial?.gateway.id ?? null, shown(partial));
}

interface GatewayEnds {
  gateway: CompiledGateway;
  /** Routed sightings by this gateway within the window of eventFirstSeen / eventLastSeen. */
  start: Sighting[];
  end: Sighting[];
  /** Unrouted sightings by this gateway anywhere in the widened span. */
  unrouted: Sighting[];
  /** Routed sightings by this gateway anywhere in the widened span. */
  routed: Sighting[];
}

function endsOf(gateway: CompiledGateway, inSpan: readonly Sighting[], first: number, last: number, w: number): GatewayEnds {
  const mine = inSpan.filter((s) => s.gatewayId === gateway.id);
  const routed = mine.filter((s) => s.network !== null);
  return {
    gateway,
    start: routed.filter((s) => withinWindow(s, first, w)),
    end: routed.filter((s) => withinWindow(s, last, w)),
    unrouted: mine.filter((s) => s.network === null),
    routed,
  };
}

/** The instance the key belongs to: the role session's name (`AROA…:i-…`), else the finding's instance. */
function keyInstanceOf(f: GuardDutyFindingView): string | null {
  const session = f.principalId?.split(':')[1] ?? null;
  if (session !== null && INSTANCE_ID.test(session)) return session;
  return f.instanceId !== null && INSTANCE_ID.test(f.instanceId) ? f.instanceId : null;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/**
 * A use of the key that no gateway and no AWS path explains: AWS service
 * names, AWS's published ranges, private addresses behind a VPC endpoint and
 * any configured gateway's CIDRs are accounted for — the same reading as the
 * correlation rules; an unrecognised source is not.
 */
function isExternalSource(use: CloudTrailUse, ctx: GuardDutyContext): boolean {
  const source = use.sourceIPAddress;
  const kind = classifySource(source);
  if (kind === 'aws-service') return false;
  if (kind === 'invalid') return true;
  if (ctx.registry.all.contains(source)) return false;
  if (isPrivateAddress(source) && use.vpcEndpointId !== null && use.vpcEndpointId !== undefined) return false;
  return !(ctx.policy.awsRanges?.contains(source) ?? false);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function at(v: unknown, ...path: string[]): Record<string, unknown> | null {
  let cur: unknown = v;
  for (const p of path) {
    if (!isObject(cur)) return null;
    cur = cur[p];
  }
  return isObject(cur) ? cur : null;
}

function text(v: Record<string, unknown> | null, field: string): string | null {
  const x = v?.[field];
  return typeof x === 'string' && x !== '' ? x : null;
}
