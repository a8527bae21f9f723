/**
 * The decision for one CloudTrail event: a pure function of the event, the
 * gateway registry (the detector's own configuration) and the stored
 * evidence. The rules run in the order of this table; the first that claims
 * the event decides it.
 *
 * | # | rule                    | disposition | when                                                        |
 * |---|-------------------------|-------------|-------------------------------------------------------------|
 * | 1 | not-instance-credential | ignored     | not IMDS instance-role credentials (incl. aws:ec2-instance) |
 * | 2 | aws-internal            | ignored     | source is an AWS service name or "AWS Internal"             |
 * | 3 | vpc-endpoint            | ignored     | private source with a vpcEndpointId                         |
 * | 4 | inside-aws              | ignored     | source in AWS's published ranges                            |
 * | 5 | wrong-client            | finding 8   | G's address, G saw the key only from routed clients that    |
 * |   |                         |             | were not the key's instance then (inventory knows it)       |
 * | 6 | attested                | suppressed  | gateway G's address, G saw the key from a routed client     |
 * | 7 | endpoint-attested       | suppressed  | tunnel-only G saw the service/region from a routed client   |
 * |   |                         | finding 8   | … as gateway-unattested when the policy says 'flag'         |
 * | 8 | unrouted-client         | finding 8   | G saw the key, only from clients in no routed network       |
 * | 9 | gateway-unverified      | finding 5   | G's address, G silent around the event                      |
 * |10 | gateway-unattested      | finding 8   | G's address, G alive, key not seen                          |
 * |11 | external                | finding 8   | any other source                                            |
 */
import type { CloudTrailEvent } from '../cloudtrail/parse.js';
import { RuleInput, type CorrelationContext, type CorrelationRule, type Verdict } from './rule.js';
import { attestedRule } from './rules/attested.js';
import { awsInternalRule } from './rules/aws-internal.js';
import { endpointAttestedRule } from './rules/endpoint-attested.js';
import { externalRule } from './rules/external.js';
import { gatewayUnattestedRule } from './rules/gateway-unattested.js';
import { gatewayUnverifiedRule } from './rules/gateway-unverified.js';
import { insideAwsRule } from './rules/inside-aws.js';
import { notInstanceCredentialRule } from './rules/not-instance-credential.js';
import { unroutedClientRule } from './rules/unrouted-client.js';
import { vpcEndpointRule } from './rules/vpc-endpoint.js';
import { wrongClientRule } from './rules/wrong-client.js';
import type { Decision } from './types.js';

export { compileRegistry } from './registry.js';
export { isProvisional } from './grace.js';
export type { CorrelationContext } from './rule.js';
export type * from './types.js';
export { EMPTY_INVENTORY } from './types.js';

export const CORRELATION_RULES: readonly CorrelationRule[] = [
  notInstanceCredentialRule,
  awsInternalRule,
  vpcEndpointRule,
  insideAwsRule,
  wrongClientRule,
  attestedRule,
  endpointAttestedRule,
  unroutedClientRule,
  gatewayUnverifiedRule,
  gatewayUnattestedRule,
  externalRule,
];

export function decide(event: CloudTrailEvent, ctx: CorrelationContext): Decision {
  const input = new RuleInput(event, ctx);
  let verdict: Verdict | null = null;
  for (const rule of CORRELATION_RULES) {
    verdict = rule.evaluate(input);
    if (verdict !== null) break;
  }
  // externalRule always claims; this only satisfies the type checker.
  const v = verdict ?? externalRule.evaluate(input) ?? unreachable();
  return {
    eventId: event.eventId,
    eventTime: event.eventTime,
    accessKeyId: event.identity.accessKeyId,
    sourceIPAddress: event.sourceIPAddress,
    disposition: v.disposition,
    rule: v.rule,
    severity: v.severity,
    gatewayId: v.gatewayId,
    evidence: v.evidence,
    instanceId: input.keyInstanceId,
    reason: v.reason,
  };
}

function unreachable(): never {
  throw new Error('correlation rules ended without a verdict');
}
