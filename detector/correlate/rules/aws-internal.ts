/** Calls AWS makes on the caller's behalf carry a service name or `AWS Internal` as source. */
import type { CorrelationRule } from '../rule.js';

export const awsInternalRule: CorrelationRule = {
  name: 'aws-internal',
  disposition: 'ignored',
  evaluate({ event, source }) {
    if (source !== 'aws-service') return null;
    const reason =
      event.sourceIPAddress === 'AWS Internal'
        ? 'called by AWS internally (source "AWS Internal")'
        : `called by the AWS service ${event.sourceIPAddress} on the caller's behalf`;
    return { disposition: 'ignored', rule: 'aws-internal', severity: null, gatewayId: null, evidence: [], reason };
  },
};
