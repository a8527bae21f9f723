/**
 * What deciding a batch of CloudTrail events may read from the evidence, worked
 * out before anything is read: the store fetches it in a bounded number of
 * queries (not one per rule per event) and the pure rules run over the
 * snapshot. The needs follow the rules (decide.ts):
 *
 *   event's key                 → key sightings within correlation.window      (attested, unrouted-client, endpoint-attested)
 *   gateways of the source      → liveness within heartbeat_stale              (gateway-unverified)
 *   tunnel-only gateways        → endpoint sightings within correlation.window (endpoint-attested)
 *
 * One range per key, endpoint and gateway, spanning the batch: the snapshot
 * may hold more than a rule asks for, never less.
 */
import { classifySource, type CloudTrailEvent } from '../cloudtrail/parse.js';
import { endpointCandidates } from './endpoint-of-event.js';
import type { CompiledRegistry, CorrelationPolicy, EvidenceNeeds } from './types.js';

type Range = { fromMs: number; toMs: number };

function widen<K>(map: Map<K, Range>, key: K, fromMs: number, toMs: number): void {
  const r = map.get(key);
  if (r === undefined) map.set(key, { fromMs, toMs });
  else {
    if (fromMs < r.fromMs) r.fromMs = fromMs;
    if (toMs > r.toMs) r.toMs = toMs;
  }
}

export function evidenceNeeds(events: Iterable<CloudTrailEvent>, registry: CompiledRegistry, policy: CorrelationPolicy): EvidenceNeeds {
  const keys = new Map<string, Range>();
  const endpoints = new Map<string, Range & { gatewayId: string; service: string; region: string | null }>();
  const liveness = new Map<string, Range>();
  const { windowMs: w, heartbeatStaleMs: stale } = policy;
  for (const e of events) {
    // Events read back from the store (finding occurrences) may be damaged: deciding them fails later, with a reason.
    if (typeof e?.identity !== 'object' || e.identity === null || !Number.isFinite(e.eventTimeMs) || typeof e.sourceIPAddress !== 'string')
      continue;
    const t = e.eventTimeMs;
    const key = e.identity.accessKeyId;
    if (key !== null) widen(keys, key, t - w, t + w);
    if (classifySource(e.sourceIPAddress) !== 'ip') continue;
    const gateways = registry.gatewaysFor(e.sourceIPAddress);
    if (gateways.length === 0) continue;
    const candidates = gateways.some((g) => !g.inspect) ? endpointCandidates(e) : [];
    for (const g of gateways) {
      widen(liveness, g.id, t - stale, t + stale);
      if (g.inspect) continue;
      for (const c of candidates) {
        const id = `${g.id}\n${c.service}\n${c.region ?? '\u0000'}`;
        const r = endpoints.get(id);
        if (r === undefined) endpoints.set(id, { gatewayId: g.id, service: c.service, region: c.region, fromMs: t - w, toMs: t + w });
        else widen(endpoints, id, t - w, t + w);
      }
    }
  }
  return {
    keys: [...keys].map(([accessKeyId, r]) => ({ accessKeyId, ...r })),
    endpoints: [...endpoints.values()],
    liveness: [...liveness].map(([gatewayId, r]) => ({ gatewayId, ...r })),
  };
}

/** The needs of one GuardDuty finding's span: the key over [from, to], its gateways' liveness at both ends. */
export function spanNeeds(
  accessKeyId: string,
  fromMs: number,
  toMs: number,
  liveness: readonly { gatewayId: string; fromMs: number; toMs: number }[],
): EvidenceNeeds {
  return { keys: [{ accessKeyId, fromMs, toMs }], endpoints: [], liveness: [...liveness] };
}
