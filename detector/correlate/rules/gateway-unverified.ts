/**
 * The source is a gateway's address but the gateway was silent around the
 * event, so the absence of a sighting proves nothing: a finding, Medium.
 * With overlapping CIDRs one silent gateway suffices, since the call may
 * have left through it.
 */
import { clockTime, shortDuration } from '../evidence.js';
import type { CorrelationRule } from '../rule.js';
import { SEVERITY_MEDIUM } from '../types.js';

export const gatewayUnverifiedRule: CorrelationRule = {
  name: 'gateway-unverified',
  disposition: 'finding',
  evaluate(input) {
    const silent = input.gateways.find((g) => !input.gatewayAlive(g.id));
    if (silent === undefined) return null;
    const { event, policy } = input;
    const reason = `source ${event.sourceIPAddress} is gateway ${silent.id}'s address but ${silent.id} sent nothing within ${shortDuration(policy.heartbeatStaleMs)} of ${clockTime(event.eventTimeMs)}, so the call cannot be verified`;
    return { disposition: 'finding', rule: 'gateway-unverified', severity: SEVERITY_MEDIUM, gatewayId: silent.id, evidence: [], reason };
  },
};
