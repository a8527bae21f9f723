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
import { withBinding } from '../binding.js';
import { clockTime, nearestEvidence, nearestGateway, nearestPointMs } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { SEVERITY_HIGH } from '../types.js';

export const wrongClientRule: CorrelationRule = {
  name: 'wrong-client',
  disposition: 'finding',
  evaluate(input) {
    const instanceId = input.keyInstanceId;
    const t = input.event.eventTimeMs;
    if (instanceId === null || input.gateways.length === 0 || !input.inventory.knows(instanceId, t)) return null;
    const ids = new Set(input.gateways.map((g) => g.id));
    const routed = input.keySightings().filter((s) => ids.has(s.gatewayId) && s.network !== null);
    if (routed.length === 0 || routed.some((s) => input.binding(s).binding !== 'other')) return null;
    const best = nearestGateway(
      input.gateways.map((g) => ({ gatewayId: g.id, sightings: routed.filter((s) => s.gatewayId === g.id) })),
      t,
    );
    if (best === null) return null;
    const s = best.nearest;
    const owner = input.binding(s).clientInstanceId;
    const addresses = input.inventory.addressesAt(instanceId, t);
    const others = new Set(routed.map((r) => r.clientIp)).size - 1;
    const reason =
      `key of ${instanceId} (${addresses.join(', ') || 'no address'}) presented by ${s.clientIp} (${owner ?? 'no known instance'}) ` +
      `through ${best.gatewayId} at ${clockTime(nearestPointMs(s, t))}${others > 0 ? `, and by ${others} other client${others > 1 ? 's' : ''}` : ''}`;
    return {
      disposition: 'finding',
      rule: 'wrong-client',
      severity: SEVERITY_HIGH,
      gatewayId: best.gatewayId,
      evidence: withBinding(nearestEvidence(best.sightings, t), (c) => input.binding(c)),
      reason,
    };
  },
};
