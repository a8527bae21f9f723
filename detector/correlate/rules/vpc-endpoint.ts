/** Through a VPC interface endpoint the source is the caller's private VPC address. */
import { isPrivateAddress } from '../address-class.js';
import type { CorrelationRule } from '../rule.js';

export const vpcEndpointRule: CorrelationRule = {
  name: 'vpc-endpoint',
  disposition: 'ignored',
  evaluate({ event, source }) {
    if (source !== 'ip' || event.vpcEndpointId === null || !isPrivateAddress(event.sourceIPAddress)) return null;
    const reason = `private source ${event.sourceIPAddress} through VPC endpoint ${event.vpcEndpointId}`;
    return { disposition: 'ignored', rule: 'vpc-endpoint', severity: null, gatewayId: null, evidence: [], reason };
  },
};
