/** Only IMDS-delivered instance-role credentials can be exfiltrated in GuardDuty's sense. */
import type { CorrelationRule } from '../rule.js';

export const notInstanceCredentialRule: CorrelationRule = {
  name: 'not-instance-credential',
  disposition: 'ignored',
  evaluate({ event, credential }) {
    if (credential === 'instance-role') return null;
    const reason =
      credential === 'instance-identity'
        ? `instance identity role aws:ec2-instance (used by AWS agents on ${event.identity.sessionName ?? 'the instance'}), not the launch role`
        : `${event.identity.type} identity${event.identity.arn !== null ? ` ${event.identity.arn}` : ''} is not instance-role credentials`;
    return { disposition: 'ignored', rule: 'not-instance-credential', severity: null, gatewayId: null, evidence: [], reason };
  },
};
