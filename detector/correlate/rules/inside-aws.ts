/**
 * A source in AWS's published ranges is not "outside AWS"; GuardDuty's own
 * InsideAWS finding covers other accounts' addresses.
 */
import type { CorrelationRule } from '../rule.js';

export const insideAwsRule: CorrelationRule = {
  name: 'inside-aws',
  disposition: 'ignored',
  evaluate({ event, source, policy }) {
    if (source !== 'ip' || policy.awsRanges === null || !policy.awsRanges.contains(event.sourceIPAddress)) return null;
    const reason = `source ${event.sourceIPAddress} is in AWS's published address ranges`;
    return { disposition: 'ignored', rule: 'inside-aws', severity: null, gatewayId: null, evidence: [], reason };
  },
};
