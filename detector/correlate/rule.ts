/**
 * The shape every correlation rule has, and the input they share. A rule
 * either claims the event (returns a verdict) or passes (null); `decide`
 * runs them in table order and the first claim wins. Store lookups the
 * rules share are memoised here so an event costs each query at most once.
 */
import {
  classifySource,
  instanceCredentialKind,
  instanceIdOf,
  type CloudTrailEvent,
  type InstanceCredentialKind,
  type SourceClass,
} from '../cloudtrail/parse.js';
import type {
  CompiledGateway,
  CompiledRegistry,
  CorrelationPolicy,
  Disposition,
  EvidenceView,
  Evidence,
  InventoryView,
  RuleName,
  Sighting,
} from './types.js';
import { withinWindow } from './evidence.js';
import { bindingOf, type ClientBinding } from './binding.js';

export interface CorrelationContext {
  registry: CompiledRegistry;
  evidence: EvidenceView;
  policy: CorrelationPolicy;
  /** Which addresses were which instance's (EMPTY_INVENTORY without one). */
  inventory: InventoryView;
}

export interface RuleInput {
  readonly event: CloudTrailEvent;
  readonly credential: InstanceCredentialKind;
  readonly source: SourceClass;
  readonly evidence: EvidenceView;
  readonly policy: CorrelationPolicy;
  readonly inventory: InventoryView;
  /** Gateways whose configured CIDRs contain the source; several when CIDRs overlap. */
  readonly gateways: readonly CompiledGateway[];
  /** Sightings of the event's key by any gateway within windowMs of eventTime (empty without a key). */
  keySightings(): Sighting[];
  /** Whether the gateway sent anything within heartbeatStaleMs of eventTime. */
  gatewayAlive(gatewayId: string): boolean;
  /** The instance the key belongs to (the role session's name), or null. */
  readonly keyInstanceId: string | null;
  /** How a client that presented the key relates to the key's instance at eventTime (binding.ts). */
  binding(client: Pick<Sighting, 'clientIp' | 'network'>): ClientBinding;
}

export interface Verdict {
  disposition: Disposition;
  rule: RuleName;
  severity: number | null;
  gatewayId: string | null;
  evidence: Evidence[];
  reason: string;
}

export interface CorrelationRule {
  /** The rule's own name; a verdict may carry another (endpoint attestation under 'flag'). */
  readonly name: RuleName;
  readonly disposition: Disposition;
  evaluate(input: RuleInput): Verdict | null;
}

export function buildRuleInput(event: CloudTrailEvent, ctx: CorrelationContext): RuleInput {
  const source = classifySource(event.sourceIPAddress);
  const t = event.eventTimeMs;
  const { windowMs, heartbeatStaleMs } = ctx.policy;
  let sightings: Sighting[] | null = null;
  const alive = new Map<string, boolean>();
  const keyInstanceId = instanceIdOf(event);
  const bindings = new Map<string, ClientBinding>();
  return {
    event,
    credential: instanceCredentialKind(event),
    source,
    evidence: ctx.evidence,
    policy: ctx.policy,
    inventory: ctx.inventory,
    gateways: source === 'ip' ? ctx.registry.gatewaysFor(event.sourceIPAddress) : [],
    keySightings(): Sighting[] {
      const key = event.identity.accessKeyId;
      // The store returns overlaps with [t - w, t + w]; filtering again keeps other implementations honest.
      sightings ??=
        key === null
          ? []
          : ctx.evidence.keySightings(key, t - windowMs, t + windowMs).filter((s) => s.accessKeyId === key && withinWindow(s, t, windowMs));
      return sightings;
    },
    gatewayAlive(gatewayId: string): boolean {
      let v = alive.get(gatewayId);
      if (v === undefined) {
        v = ctx.evidence.heartbeatNear(gatewayId, t - heartbeatStaleMs, t + heartbeatStaleMs);
        alive.set(gatewayId, v);
      }
      return v;
    },
    keyInstanceId,
    binding(client): ClientBinding {
      const k = `${client.network ?? ''} ${client.clientIp}`;
      let b = bindings.get(k);
      if (b === undefined) {
        b = bindingOf(client, keyInstanceId, ctx.inventory, t);
        bindings.set(k, b);
      }
      return b;
    },
  };
}
