/**
 * The heart of egress-witness: the source is a gateway's configured address
 * and that gateway saw this very key used by a routed client around the
 * event's time. With overlapping CIDRs any matching gateway may attest; the
 * one with the nearest sighting is recorded.
 */
import { clockTime, describeClient, distanceMs, maskKey, nearestEvidence, nearestPointMs, nearestSighting } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import type { Sighting } from '../types.js';

export const attestedRule: CorrelationRule = {
  name: 'attested',
  disposition: 'suppressed',
  evaluate(input) {
    const t = input.event.eventTimeMs;
    let best: { gatewayId: string; routed: Sighting[]; nearest: Sighting } | null = null;
    for (const g of input.gateways) {
      const routed = input.keySightings().filter((s) => s.gatewayId === g.id && s.network !== null);
      const nearest = nearestSighting(routed, t);
      if (nearest !== null && (best === null || distanceMs(nearest, t) < distanceMs(best.nearest, t)))
        best = { gatewayId: g.id, routed, nearest };
    }
    if (best === null) return null;
    const s = best.nearest;
    const reason = `gateway ${best.gatewayId} saw key ${maskKey(input.event.identity.accessKeyId)} from ${describeClient(s)} at ${clockTime(nearestPointMs(s, t))}`;
    return {
      disposition: 'suppressed',
      rule: 'attested',
      severity: null,
      gatewayId: best.gatewayId,
      evidence: nearestEvidence(best.routed, t),
      reason,
    };
  },
};
