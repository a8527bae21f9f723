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

/**
 * What the rules read about one event: its lookups made on first use and kept (a class rather
 * than an object of closures, and the common case, one client presenting the key, needs no map).
 */
export class RuleInput {
  readonly credential: InstanceCredentialKind;
  readonly source: SourceClass;
  readonly evidence: EvidenceView;
  readonly policy: CorrelationPolicy;
  readonly inventory: InventoryView;
  /** Gateways whose configured CIDRs contain the source; several when CIDRs overlap. */
  readonly gateways: readonly CompiledGateway[];
  /** The instance the key belongs to (the role session's name), or null. */
  readonly keyInstanceId: string | null;
  private sightings: Sighting[] | null = null;
  private alive: Map<string, boolean> | null = null;
  /** -1 not asked yet, 0 no, 1 yes. */
  private known = -1;
  /** The last client bound and its binding; the others, when there are several, by `network clientIp`. */
  private lastClient: Pick<Sighting, 'clientIp' | 'network'> | null = null;
  private lastBinding: ClientBinding | null = null;
  private bindings: Map<string, ClientBinding> | null = null;

  constructor(
    readonly event: CloudTrailEvent,
    ctx: CorrelationContext,
  ) {
    this.source = classifySource(event.sourceIPAddress);
    this.credential = instanceCredentialKind(event);
    this.evidence = ctx.evidence;
    this.policy = ctx.policy;
    this.inventory = ctx.inventory;
    this.gateways = this.source === 'ip' ? ctx.registry.gatewaysFor(event.sourceIPAddress) : [];
    this.keyInstanceId = instanceIdOf(event);
  }

  /** Sightings of the event's key by any gateway within windowMs of eventTime (empty without a key). */
  keySightings(): Sighting[] {
    if (this.sightings !== null) return this.sightings;
    const key = this.event.identity.accessKeyId;
    if (key === null) return (this.sightings = []);
    const t = this.event.eventTimeMs;
    const w = this.policy.windowMs;
    // The store returns overlaps with [t - w, t + w]; checking again keeps other implementations honest.
    const found = this.evidence.keySightings(key, t - w, t + w);
    for (const s of found)
      if (s.accessKeyId !== key || !withinWindow(s, t, w))
        return (this.sightings = found.filter((x) => x.accessKeyId === key && withinWindow(x, t, w)));
    return (this.sightings = found);
  }

  /** Whether the gateway sent anything within heartbeatStaleMs of eventTime. */
  gatewayAlive(gatewayId: string): boolean {
    this.alive ??= new Map();
    let v = this.alive.get(gatewayId);
    if (v === undefined) {
      const t = this.event.eventTimeMs;
      const stale = this.policy.heartbeatStaleMs;
      v = this.evidence.heartbeatNear(gatewayId, t - stale, t + stale);
      this.alive.set(gatewayId, v);
    }
    return v;
  }

  /** Whether the inventory knows the key's instance at eventTime (false without one). */
  keyInstanceKnown(): boolean {
    if (this.known < 0)
      this.known = this.keyInstanceId !== null && this.inventory.knows(this.keyInstanceId, this.event.eventTimeMs) ? 1 : 0;
    return this.known === 1;
  }

  /** How a client that presented the key relates to the key's instance at eventTime (binding.ts). */
  binding(client: Pick<Sighting, 'clientIp' | 'network'>): ClientBinding {
    const last = this.lastClient;
    if (last !== null && last.clientIp === client.clientIp && last.network === client.network) return this.lastBinding as ClientBinding;
    let b: ClientBinding | undefined;
    if (last !== null) {
      this.bindings ??= new Map([[clientKey(last), this.lastBinding as ClientBinding]]);
      b = this.bindings.get(clientKey(client));
    }
    if (b === undefined) {
      b = bindingOf(client, this.keyInstanceId, this.inventory, this.event.eventTimeMs, this);
      this.bindings?.set(clientKey(client), b);
    }
    this.lastClient = client;
    this.lastBinding = b;
    return b;
  }
}

const clientKey = (c: Pick<Sighting, 'clientIp' | 'network'>) => `${c.network ?? ''} ${c.clientIp}`;
