/**
 * The heart of egress-witness: the source is a gateway's configured address
 * and that gateway saw this very key used by a routed client around the
 * event's time. With overlapping CIDRs any matching gateway may attest; the
 * one with the nearest sighting is recorded. Sightings of the strongest
 * binding count first (binding.ts): the key's own instance, then a
 * translated network, then clients the inventory cannot bind. A key seen
 * only from other instances' addresses never gets here (wrong-client).
 */
import { BINDING_RANK, nearestBoundEvidence } from '../binding.js';
import { clockTime, describeClient, maskKey, nearestGateway, nearestPointMs } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import type { Sighting } from '../types.js';

export const attestedRule: CorrelationRule = {
  name: 'attested',
  disposition: 'suppressed',
  evaluate(input) {
    const t = input.event.eventTimeMs;
    const gateways = input.gateways;
    if (gateways.length === 0) return null;
    // One pass: per gateway, its routed sightings of the strongest binding any gateway has.
    let strongest = Infinity;
    const groups = gateways.map((g) => ({ gatewayId: g.id, sightings: [] as Sighting[] }));
    for (const s of input.keySightings()) {
      if (s.network === null) continue;
      const group = groups.find((g) => g.gatewayId === s.gatewayId);
      if (group === undefined) continue;
      const rank = BINDING_RANK[input.binding(s).binding];
      if (rank < strongest) {
        strongest = rank;
        for (const g of groups) g.sightings = [];
        group.sightings.push(s);
      } else if (rank === strongest) group.sightings.push(s);
    }
    const best = nearestGateway(groups, t);
    if (best === null) return null;
    const s = best.nearest;
    const own = input.binding(s).binding === 'instance' ? `, an address of its own instance ${input.keyInstanceId ?? ''}` : '';
    const reason = `gateway ${best.gatewayId} saw key ${maskKey(input.event.identity.accessKeyId)} from ${describeClient(s)} at ${clockTime(nearestPointMs(s, t))}${own}`;
    return {
      disposition: 'suppressed',
      rule: 'attested',
      severity: null,
      gatewayId: best.gatewayId,
      evidence: nearestBoundEvidence(best.sightings, t, input),
      reason,
    };
  },
};
