/**
 * Instance-role credentials used from a routed host that is not their
 * instance: the gateway saw the key, but every routed client that presented
 * it in the window held an address that was not the key's instance's at the
 * event's time (binding.ts). Someone with a foothold on one routed host is
 * using another instance's stolen credentials through the same gateway —
 * GuardDuty cannot tell, the call leaves from the gateway's address like
 * every other. Only when the inventory knows the key's instance then; a
 * client in a translated network, or the instance's own address, leaves the
 * event to `attested`.
 */
import { nearestBoundEvidence } from '../binding.js';
import { clockTime, nearestGateway, nearestPointMs } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { SEVERITY_HIGH, type Sighting } from '../types.js';

export const wrongClientRule: CorrelationRule = {
  name: 'wrong-client',
  disposition: 'finding',
  evaluate(input) {
    const instanceId = input.keyInstanceId;
    const t = input.event.eventTimeMs;
    const gateways = input.gateways;
    // Without the key's instance known no client binds `other`: the first routed sighting ends it.
    if (instanceId === null || gateways.length === 0) return null;
    // One pass: per gateway, its routed sightings, given up at the first client that is not another instance's.
    const groups = gateways.map((g) => ({ gatewayId: g.id, sightings: [] as Sighting[] }));
    for (const s of input.keySightings()) {
      if (s.network === null) continue;
      const group = groups.find((g) => g.gatewayId === s.gatewayId);
      if (group === undefined) continue;
      if (input.binding(s).binding !== 'other') return null;
      group.sightings.push(s);
    }
    const best = nearestGateway(groups, t);
    if (best === null) return null;
    const s = best.nearest;
    const owner = input.binding(s).clientInstanceId;
    const addresses = input.inventory.addressesAt(instanceId, t);
    const others = new Set(groups.flatMap((g) => g.sightings.map((r) => r.clientIp))).size - 1;
    const reason =
      `key of ${instanceId} (${addresses.join(', ') || 'no address'}) presented by ${s.clientIp} (${owner ?? 'no known instance'}) ` +
      `through ${best.gatewayId} at ${clockTime(nearestPointMs(s, t))}${others > 0 ? `, and by ${others} other client${others > 1 ? 's' : ''}` : ''}`;
    return {
      disposition: 'finding',
      rule: 'wrong-client',
      severity: SEVERITY_HIGH,
      gatewayId: best.gatewayId,
      evidence: nearestBoundEvidence(best.sightings, t, input),
      reason,
    };
  },
};
