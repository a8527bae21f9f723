/**
 * Shared builders for the detector's unit tests: CloudTrail fixtures
 * normalised to events, telemetry records as agents send them, a two-gateway
 * registry and a policy. Times are around T = 2024-05-01T12:01:07Z.
 */
import { readFileSync } from 'node:fs';
import { CidrSet } from '../../../common/cidr/cidr-set.js';
import type { Heartbeat, Observation } from '../../../protocol/telemetry.js';
import { normalizeRecord, type CloudTrailEvent, type CloudTrailIdentity } from '../../../detector/cloudtrail/parse.js';
import { compileRegistry } from '../../../detector/correlate/registry.js';
import { MemoryEvidence } from '../../../detector/correlate/memory-evidence.js';
import {
  EMPTY_INVENTORY,
  type CompiledRegistry,
  type CorrelationPolicy,
  type GatewayRegistry,
  type InventoryView,
} from '../../../detector/correlate/types.js';

export const T = Date.parse('2024-05-01T12:01:07Z');
export const KEY = 'ASIAIOSFODNN7EXAMPLE';
export const SEC = 1000;
export const MIN = 60 * SEC;

/** A finding's `resource` for KEY, as GuardDuty writes it: instance role app-server-role on i-0a1b2c3d4e5f67890 (the stsCall fixture's caller). */
export function keyResource() {
  return {
    resourceType: 'AccessKey',
    accessKeyDetails: {
      accessKeyId: KEY,
      principalId: 'AROAEXAMPLEROLEID7ABC:i-0a1b2c3d4e5f67890',
      userName: 'app-server-role',
      userType: 'AssumedRole',
    },
    instanceDetails: { instanceId: 'i-0a1b2c3d4e5f67890' },
  };
}

const FIXTURES = new URL('../../fixtures/cloudtrail/', import.meta.url);

export function fixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8'));
}

export type EventPatch = Partial<Omit<CloudTrailEvent, 'identity'>> & { identity?: Partial<CloudTrailIdentity> };

/** A fixture normalised to an event, with fields overridden (eventTimeMs follows eventTime). */
export function eventOf(name: string, patch: EventPatch = {}): CloudTrailEvent {
  const n = normalizeRecord(fixture(name));
  if (n.kind !== 'event') throw new Error(`fixture ${name}: ${n.reason}`);
  const { identity, ...rest } = patch;
  const e: CloudTrailEvent = { ...n.event, ...rest, identity: { ...n.event.identity, ...identity } };
  if (patch.eventTime !== undefined && patch.eventTimeMs === undefined) e.eventTimeMs = Date.parse(patch.eventTime);
  return e;
}

/** The IMDSv2 STS call at T from gw1's address 203.0.113.10, with key KEY. */
export function stsCall(patch: EventPatch = {}): CloudTrailEvent {
  return eventOf('instance-role-imdsv2-sts-getcalleridentity', patch);
}

/** gw1: inspecting, 203.0.113.0/28. gw2: tunnel-only, 198.51.100.0/29. */
export const GATEWAYS: GatewayRegistry = {
  gateways: [
    { id: 'gw1', egressCidrs: ['203.0.113.0/28'], inspect: true },
    { id: 'gw2', egressCidrs: ['198.51.100.0/29', '2001:db8:42::/48'], inspect: false },
  ],
};

export const AWS_RANGES = CidrSet.of(['3.5.0.0/16', '52.94.0.0/16', '2600:1f00::/24']);

export function policy(over: Partial<CorrelationPolicy> = {}): CorrelationPolicy {
  return { windowMs: 5 * MIN, heartbeatStaleMs: 2 * MIN, endpointAttestation: 'accept', awsRanges: AWS_RANGES, ...over };
}

export interface ObservationAt extends Partial<Observation> {
  /** firstSeen in epoch ms (default T - 20 s). */
  at?: number;
  /** lastSeen - firstSeen in ms (default 10 s). */
  span?: number;
}

/** An inspect-mode observation of KEY calling STS from routed client 10.20.3.4 (vpc-prod) at gw1. */
export function observation(o: ObservationAt = {}): Observation {
  const { at = T - 20 * SEC, span = 10 * SEC, ...rest } = o;
  return {
    type: 'observation',
    schema: 1,
    gatewayId: 'gw1',
    firstSeen: new Date(at).toISOString(),
    lastSeen: new Date(at + span).toISOString(),
    count: 3,
    clientIp: '10.20.3.4',
    network: 'vpc-prod',
    mode: 'inspect',
    host: 'sts.us-east-1.amazonaws.com',
    port: 443,
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    accessKeyId: KEY,
    keyKind: 'temporary',
    action: 'GetCallerIdentity',
    bytesUp: 1200,
    bytesDown: 800,
    outcome: 'ok',
    status: { '2xx': 3 },
    ...rest,
  };
}

/** A tunnel-mode observation (no key) of a routed client reaching STS us-east-1 through gw2. */
export function tunnelObservation(o: ObservationAt = {}): Observation {
  return observation({ gatewayId: 'gw2', mode: 'tunnel', accessKeyId: null, keyKind: null, action: null, status: undefined, ...o });
}

export function heartbeat(gatewayId: string, atMs: number): Heartbeat {
  return {
    type: 'heartbeat',
    schema: 1,
    gatewayId,
    time: new Date(atMs).toISOString(),
    agentVersion: '0.1.0',
    startedAt: '2024-05-01T08:00:00.000Z',
    uptimeSeconds: 3600,
    counts: {},
    spool: { batches: 0, bytes: 0 },
  };
}

/** Evidence from [gatewayId, record] pairs; gateways listed in `alive` also heartbeat at T - 30 s. */
export function evidenceOf(records: (Observation | Heartbeat)[], alive: string[] = ['gw1', 'gw2']): MemoryEvidence {
  const m = new MemoryEvidence();
  for (const gw of alive) m.addRecord(gw, heartbeat(gw, T - 30 * SEC));
  for (const r of records) m.addRecord(r.gatewayId, r);
  return m;
}

export function context(
  records: (Observation | Heartbeat)[] = [],
  opts: { alive?: string[]; policy?: Partial<CorrelationPolicy>; registry?: CompiledRegistry; inventory?: InventoryView } = {},
) {
  return {
    registry: opts.registry ?? compileRegistry(GATEWAYS),
    evidence: evidenceOf(records, opts.alive),
    policy: policy(opts.policy),
    inventory: opts.inventory ?? EMPTY_INVENTORY,
  };
}
