/**
 * The correlation vocabulary: what the agents saw (sightings), what the
 * detector decided about one CloudTrail event (decisions), and the contracts
 * of the evidence store and the policy. Pure types, no behaviour.
 */
import type { CidrSet } from '../../common/cidr/cidr-set.js';

export type Disposition = 'ignored' | 'suppressed' | 'finding';

export type RuleName =
  | 'not-instance-credential'
  | 'aws-internal'
  | 'vpc-endpoint'
  | 'inside-aws'
  | 'wrong-client'
  | 'attested'
  | 'endpoint-attested'
  | 'unrouted-client'
  | 'gateway-unverified'
  | 'gateway-unattested'
  | 'external';

/** One aggregated observation as the detector stores it (times in epoch ms). */
export interface Sighting {
  gatewayId: string;
  clientIp: string;
  /** The routed network the client belongs to; null: the client is in none. */
  network: string | null;
  firstSeenMs: number;
  lastSeenMs: number;
  count: number;
  host: string;
  service: string | null;
  region: string | null;
  action: string | null;
  accessKeyId: string | null;
  mode: 'tunnel' | 'inspect' | 'http';
  /** How the connection reached the gateway's agent: a proxy request, or the kernel's redirect. */
  capture: 'explicit' | 'transparent';
  /**
   * How the call ended, as the agent reported it (null: a row stored before outcomes were kept,
   * which attests when it did then). Whether it attests is decided on read (`attests`).
   */
  outcome: string | null;
}

/** A sighting as recorded with a decision. */
export interface Evidence {
  gatewayId: string;
  clientIp: string;
  network: string | null;
  firstSeen: string;
  lastSeen: string;
  count: number;
  host: string;
  service: string | null;
  region: string | null;
  action: string | null;
  mode: string;
  /** `explicit` (the client used the proxy) or `transparent` (the gateway redirected it). */
  capture: string;
  /** Distance from eventTime to the sighting's span; 0 when inside it. */
  deltaMs: number;
  /**
   * How the client relates to the key's own instance at the event's time (the `attested` and
   * `wrong-client` rules say; absent elsewhere): `instance` the client address was that
   * instance's, `other` it was not, `unknown` the inventory does not know the key's instance
   * then, `translated` the client is in a translated network (NAT before the gateway).
   */
  binding?: Binding;
  /** The instance that held the client address at the event's time, when the inventory knows one (with `binding`). */
  clientInstanceId?: string | null;
}

export type Binding = 'instance' | 'other' | 'unknown' | 'translated';

/**
 * Which private addresses belonged to which instance, and when (the detector's inventory:
 * files and EC2 polling), answered synchronously. Times are epoch ms; the answer is for that
 * moment, so an address a new instance reuses is not blamed on its previous owner.
 */
export interface InventoryView {
  /**
   * Whether the inventory knows the instance at that time (it held at least one address then):
   * true whenever `ownerAt` names it for some address at that time (binding relies on it).
   */
  knows(instanceId: string, atMs: number): boolean;
  /** The instance that held the address at that time (the latest to take it), or null. */
  ownerAt(address: string, atMs: number): string | null;
  /** The instance's addresses at that time, sorted. */
  addressesAt(instanceId: string, atMs: number): string[];
  /** Agent networks whose clients are NAT-ed before the gateway: their client addresses bind to nothing. */
  isTranslated(network: string): boolean;
}

/** No inventory: every instance is unknown, every binding `unknown`. */
export const EMPTY_INVENTORY: InventoryView = {
  knows: () => false,
  ownerAt: () => null,
  addressesAt: () => [],
  isTranslated: () => false,
};

export interface Decision {
  eventId: string;
  eventTime: string;
  accessKeyId: string | null;
  sourceIPAddress: string;
  disposition: Disposition;
  rule: RuleName;
  /** Findings only: 8 High, 5 Medium. */
  severity: number | null;
  gatewayId: string | null;
  /** At most MAX_EVIDENCE, nearest to the event first. */
  evidence: Evidence[];
  instanceId: string | null;
  /** One human sentence; access keys masked as first4…last4. */
  reason: string;
}

export interface GatewayRegistry {
  gateways: { id: string; egressCidrs: string[]; inspect: boolean }[];
}

export interface CompiledGateway {
  readonly id: string;
  readonly inspect: boolean;
  readonly cidrs: CidrSet;
}

export interface CompiledRegistry {
  readonly gateways: readonly CompiledGateway[];
  /** Every gateway's CIDRs, tagged with the gateway id (longest prefix wins in `match`). */
  readonly all: CidrSet<string>;
  /** All gateways whose CIDRs contain the address (CIDRs may overlap). */
  gatewaysFor(address: string): CompiledGateway[];
}

/**
 * The evidence the rules read, synchronously: a snapshot the store fetched
 * for a batch of events (`EvidenceNeeds`), or the whole in-memory index
 * (MemoryEvidence) for replay and tests. Ranges are inclusive and a sighting
 * qualifies when its [firstSeen, lastSeen] span overlaps them. Only sightings
 * that attest (`attests`) are answered; every observation shows liveness.
 */
export interface EvidenceView {
  /** Sightings of the key by any gateway, from routed and unrouted clients alike. */
  keySightings(accessKeyId: string, fromMs: number, toMs: number): Sighting[];
  /** Sightings of one endpoint by one gateway; `region` matches exactly (null = global endpoint). */
  endpointSightings(gatewayId: string, service: string, region: string | null, fromMs: number, toMs: number): Sighting[];
  /** Whether the gateway sent anything (heartbeat or observation) in [from, to]. */
  heartbeatNear(gatewayId: string, fromMs: number, toMs: number): boolean;
}

export interface CorrelationPolicy {
  /** How far a sighting may be from eventTime and still attest it. */
  windowMs: number;
  /** A gateway with no heartbeat within this distance of the event counts as silent. */
  heartbeatStaleMs: number;
  /** 'flag': endpoint attestation by tunnel-only gateways becomes a finding. */
  endpointAttestation: 'accept' | 'flag';
  /** AWS's published ranges (ip-ranges.json), if loaded. */
  awsRanges: { contains(ip: string): boolean } | null;
}

export const MAX_EVIDENCE = 5;
export const SEVERITY_HIGH = 8;
export const SEVERITY_MEDIUM = 5;

/** The GuardDuty finding type this project attests against, and the one its own findings carry. */
export { OUTSIDE_AWS_FINDING_TYPE } from '../../common/guardduty/suppression-rule.js';

/**
 * Observation outcomes that show a call actually reached the endpoint: only
 * these attest. A refused CONNECT (policy, DNS, connect failure) proves the
 * gateway was watching, not that the key or endpoint was used through it.
 */
export const ATTESTING_OUTCOMES: ReadonlySet<string> = new Set(['ok', 'client_error', 'upstream_error', 'idle_timeout', 'drained']);

/**
 * Whether a stored sighting attests, decided when it is read: a row kept long ago gets the
 * current answer. A row from before outcomes were stored (null) was kept only when it attested.
 */
export function attests(s: Pick<Sighting, 'outcome'>): boolean {
  return s.outcome === null || ATTESTING_OUTCOMES.has(s.outcome);
}

/**
 * What a batch of decisions may read, fetched by the store in a bounded number of queries before
 * the pure rules run (correlate/evidence-needs.ts builds it). Ranges are inclusive; the snapshot
 * may hold more than asked for, never less.
 */
export interface EvidenceNeeds {
  /** Sightings of these keys overlapping [fromMs, toMs]. */
  keys: { accessKeyId: string; fromMs: number; toMs: number }[];
  /** Sightings of these endpoints by these gateways overlapping [fromMs, toMs]. */
  endpoints: { gatewayId: string; service: string; region: string | null; fromMs: number; toMs: number }[];
  /** Whether these gateways sent anything in [fromMs, toMs]. */
  liveness: { gatewayId: string; fromMs: number; toMs: number }[];
}
