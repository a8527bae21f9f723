/**
 * A tunnel-only gateway (no TLS inspection) cannot see keys, only which
 * endpoint a routed client reached. Seeing the event's service and region
 * from a routed client in the window is weaker evidence: accepted as
 * `endpoint-attested`, or raised as `gateway-unattested` under policy 'flag'.
 * A gateway that did see this key, from unrouted clients only, is left to
 * the unrouted-client rule: the key evidence outranks the endpoint evidence.
 */
import { endpointCandidates } from '../endpoint-of-event.js';
import { clockTime, describeClient, distanceMs, maskKey, nearestEvidence, nearestPointMs, nearestSighting } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { SEVERITY_HIGH, type Sighting } from '../types.js';

export const endpointAttestedRule: CorrelationRule = {
  name: 'endpoint-attested',
  disposition: 'suppressed',
  evaluate(input) {
    const { event, policy } = input;
    const t = event.eventTimeMs;
    const w = policy.windowMs;
    const tunnelOnly = input.gateways.filter((g) => !g.inspect && !input.keySightings().some((s) => s.gatewayId === g.id));
    if (tunnelOnly.length === 0) return null;
    const candidates = endpointCandidates(event);
    let best: { gatewayId: string; routed: Sighting[]; nearest: Sighting } | null = null;
    for (const g of tunnelOnly) {
      const routed: Sighting[] = [];
      for (const c of candidates) {
        for (const s of input.evidence.endpointSightings(g.id, c.service, c.region, t - w, t + w)) {
          if (s.network !== null && distanceMs(s, t) <= w && !routed.includes(s)) routed.push(s);
        }
      }
      const nearest = nearestSighting(routed, t);
      if (nearest !== null && (best === null || distanceMs(nearest, t) < distanceMs(best.nearest, t))) best = { gatewayId: g.id, routed, nearest };
    }
    if (best === null) return null;
    const s = best.nearest;
    const what = `${s.service ?? s.host} ${s.region ?? '(global)'}`;
    const evidence = nearestEvidence(best.routed, t);
    if (policy.endpointAttestation === 'flag') {
      const reason = `tunnel-only gateway ${best.gatewayId} saw ${what} from ${describeClient(s)} at ${clockTime(nearestPointMs(s, t))} but cannot attest key ${maskKey(event.identity.accessKeyId)} (endpoint attestation is set to flag)`;
      return { disposition: 'finding', rule: 'gateway-unattested', severity: SEVERITY_HIGH, gatewayId: best.gatewayId, evidence, reason };
    }
    const reason = `tunnel-only gateway ${best.gatewayId} saw ${what} from ${describeClient(s)} at ${clockTime(nearestPointMs(s, t))} (endpoint, not key, attested)`;
    return { disposition: 'suppressed', rule: 'endpoint-attested', severity: null, gatewayId: best.gatewayId, evidence, reason };
  },
};
