/**
 * The gateway registry compiled once from the detector's own configuration.
 * Only these CIDRs count: what an agent declares in its batches is never
 * used to decide whether an address belongs to a gateway.
 */
import { CidrSet } from '../../common/cidr/cidr-set.js';
import { parseIp } from '../../common/cidr/ip.js';
import type { CompiledGateway, CompiledRegistry, GatewayRegistry } from './types.js';

/** Throws on an invalid CIDR: the config schema has validated them already. */
export function compileRegistry(r: GatewayRegistry): CompiledRegistry {
  const gateways: CompiledGateway[] = r.gateways.map((g) => ({ id: g.id, inspect: g.inspect, cidrs: CidrSet.of(g.egressCidrs) }));
  const all = CidrSet.compile(r.gateways.flatMap((g) => g.egressCidrs.map((cidr) => ({ cidr, tag: g.id }))));
  return {
    gateways,
    all,
    gatewaysFor(address: string): CompiledGateway[] {
      const ip = parseIp(address);
      // The merged set answers "no gateway" in O(log n), the common case for external sources.
      if (ip === null || !all.containsParsed(ip)) return [];
      return gateways.filter((g) => g.cidrs.containsParsed(ip));
    },
  };
}
