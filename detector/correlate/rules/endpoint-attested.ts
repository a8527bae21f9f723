/**
 * A tunnel-only gateway (no TLS inspection) cannot see keys, only which
 * endpoint a routed client reached. Seeing the event's service and region
 * from a routed client in the window is weaker evidence: accepted as
 * `endpoint-attested`, or raised as `gateway-unattested` under policy 'flag'.
 * A gateway that did see this key, from unrouted clients only, is left to
 * the unrouted-client rule: the key evidence outranks the endpoint evidence.
 */
import { endpointCandidates, type EndpointCandidate } from '../endpoint-of-event.js';
import { clockTime, describeClient, distanceMs, maskKey, nearestEvidence, nearestGateway, nearestPointMs } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { MAX_EVIDENCE, SEVERITY_HIGH, type EvidenceView, type Sighting } from '../types.js';

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
    const best = nearestGateway(
      tunnelOnly.map((g) => ({ gatewayId: g.id, sightings: routedEndpointSightings(input.evidence, g.id, candidates, t, w) })),
      t,
    );
    if (best === null) return null;
    const s = best.nearest;
    const what = `${s.service ?? s.host} ${s.region ?? '(global)'}`;
    const evidence = nearestEvidence(best.sightings, t);
    if (policy.endpointAttestation === 'flag') {
      const reason = `tunnel-only gateway ${best.gatewayId} saw ${what} from ${describeClient(s)} at ${clockTime(nearestPointMs(s, t))} but cannot attest key ${maskKey(event.identity.accessKeyId)} (endpoint attestation is set to flag)`;
      return { disposition: 'finding', rule: 'gateway-unattested', severity: SEVERITY_HIGH, gatewayId: best.gatewayId, evidence, reason };
    }
    const reason = `tunnel-only gateway ${best.gatewayId} saw ${what} from ${describeClient(s)} at ${clockTime(nearestPointMs(s, t))} (endpoint, not key, attested)`;
    return { disposition: 'suppressed', rule: 'endpoint-attested', severity: null, gatewayId: best.gatewayId, evidence, reason };
  },
};

/** Radii tried in turn, as fractions of the window: see routedEndpointSightings. */
const RADII = [1 / 300, 1 / 30, 1 / 5, 1];

/**
 * Routed sightings of the endpoint near `t`. A busy endpoint has thousands
 * of sightings per window while only the nearest few matter, so the radius
 * grows until MAX_EVIDENCE are found: every sighting within the radius is
 * nearer than any outside it, so the nearest-first evidence is unchanged.
 */
function routedEndpointSightings(
  evidence: EvidenceView,
  gatewayId: string,
  candidates: readonly EndpointCandidate[],
  t: number,
  w: number,
): Sighting[] {
  let routed = new Set<Sighting>();
  for (const fraction of RADII) {
    const r = Math.ceil(w * fraction);
    routed = new Set();
    for (const c of candidates) {
      for (const s of evidence.endpointSightings(gatewayId, c.service, c.region, t - r, t + r)) {
        if (s.network !== null && distanceMs(s, t) <= r) routed.add(s);
      }
    }
    if (routed.size >= MAX_EVIDENCE) break;
  }
  return [...routed];
}
