/**
 * Config → what the correlation rules need: the compiled gateway registry
 * and the policy (window, staleness, endpoint attestation, AWS's own ranges).
 * One builder for the daemon and for replay, so both decide alike.
 */
import type { DetectorConfig } from './config/schema.js';
import { compileRegistry, type CompiledRegistry, type CorrelationPolicy } from './correlate/decide.js';
import { loadAwsIpRanges } from './aws-ranges.js';

export async function buildCorrelationContext(c: DetectorConfig): Promise<{ registry: CompiledRegistry; policy: CorrelationPolicy }> {
  const ranges = c.aws_ip_ranges ? await loadAwsIpRanges(c.aws_ip_ranges) : null;
  return {
    registry: compileRegistry({ gateways: c.gateways.map((g) => ({ id: g.id, egressCidrs: g.egress_cidrs, inspect: g.inspect })) }),
    policy: {
      windowMs: c.correlation.window,
      heartbeatStaleMs: c.correlation.heartbeat_stale,
      endpointAttestation: c.correlation.endpoint_attestation,
      awsRanges: ranges,
    },
  };
}
