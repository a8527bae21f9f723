/**
 * The source is a gateway's address and the gateway was watching, yet it
 * never saw this key: the call left through the gateway's range but not
 * through the agent. Sightings of the key elsewhere are kept as context.
 */
import { maskKey, nearestEvidence, shortDuration } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { SEVERITY_HIGH } from '../types.js';

export const gatewayUnattestedRule: CorrelationRule = {
  name: 'gateway-unattested',
  disposition: 'finding',
  evaluate(input) {
    const g = input.gateways[0];
    if (g === undefined) return null;
    const { event, policy } = input;
    const ids = input.gateways.map((x) => x.id).join(' and ');
    const reason = `source ${event.sourceIPAddress} is an address of gateway ${ids}, alive but without a sighting of key ${maskKey(event.identity.accessKeyId)} within ${shortDuration(policy.windowMs)} of the call`;
    return {
      disposition: 'finding',
      rule: 'gateway-unattested',
      severity: SEVERITY_HIGH,
      gatewayId: g.id,
      evidence: nearestEvidence(input.keySightings(), event.eventTimeMs),
      reason,
    };
  },
};
