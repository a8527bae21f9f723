/**
 * The gateway saw the key, but only from clients outside every routed
 * network: something on the gateway's own segment (or the gateway itself)
 * is using instance credentials that should only live on routed instances.
 */
import { clockTime, maskKey, nearestEvidence, nearestPointMs, nearestSighting } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { SEVERITY_HIGH } from '../types.js';

export const unroutedClientRule: CorrelationRule = {
  name: 'unrouted-client',
  disposition: 'finding',
  evaluate(input) {
    const t = input.event.eventTimeMs;
    for (const g of input.gateways) {
      const unrouted = input.keySightings().filter((s) => s.gatewayId === g.id && s.network === null);
      const s = nearestSighting(unrouted, t);
      if (s === null) continue;
      const reason = `gateway ${g.id} saw key ${maskKey(input.event.identity.accessKeyId)} only from ${s.clientIp}, which is in no routed network, at ${clockTime(nearestPointMs(s, t))}`;
      return {
        disposition: 'finding',
        rule: 'unrouted-client',
        severity: SEVERITY_HIGH,
        gatewayId: g.id,
        evidence: nearestEvidence(unrouted, t),
        reason,
      };
    }
    return null;
  },
};
