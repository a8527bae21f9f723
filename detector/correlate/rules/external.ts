/**
 * Everything else: instance credentials used from an address that is
 * neither AWS's nor any gateway's — the classic exfiltration. An
 * unrecognisable source lands here too (fail closed). Sightings of the key
 * by gateways are kept as context: they show where it was used legitimately.
 */
import { maskKey, nearestEvidence } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { SEVERITY_HIGH } from '../types.js';

export const externalRule: CorrelationRule = {
  name: 'external',
  disposition: 'finding',
  evaluate(input) {
    const { event } = input;
    const where =
      input.source === 'invalid'
        ? `an unrecognised source "${event.sourceIPAddress}"`
        : `${event.sourceIPAddress}, outside AWS and every gateway`;
    const reason = `key ${maskKey(event.identity.accessKeyId)} used from ${where}`;
    return {
      disposition: 'finding',
      rule: 'external',
      severity: SEVERITY_HIGH,
      gatewayId: null,
      evidence: nearestEvidence(input.keySightings(), event.eventTimeMs),
      reason,
    };
  },
};
