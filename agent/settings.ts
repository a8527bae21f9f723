/**
 * Config → the proxy's reloadable settings. Everything here is compiled
 * once per (re)load — CIDR sets, host patterns, overrides — so the hot path
 * only does lookups.
 */
import type { AgentConfig } from './config/schema.js';
import { ClientAdmission } from './net/client-admission.js';
import { DestinationPolicy } from './net/address-policy.js';
import { ResolveOverrides } from './net/resolve-overrides.js';
import { classifyEndpoint } from './aws/endpoint.js';
import { describePlainHttp } from './aws/describe-request.js';
import type { Inspector, ProxySettings } from './proxy/connection-types.js';
import type { EndpointInfo } from './observe/model/observation.js';

export function classifyForObservation(host: string): EndpointInfo | null {
  const e = classifyEndpoint(host);
  return e ? { service: e.service, region: e.region, partition: e.partition } : null;
}

export function buildProxySettings(config: AgentConfig, self: { ip: string; port: number }[], inspector: Inspector | null): ProxySettings {
  return {
    admission: new ClientAdmission({ networks: config.networks, allowedClients: config.proxy.allowed_clients }),
    policy: new DestinationPolicy({
      allowCidrs: config.proxy.allow_destination_cidrs,
      allowedPorts: config.proxy.allowed_ports,
      selfAddresses: self.filter((a) => a.port > 0),
    }),
    overrides: new ResolveOverrides(config.upstream.resolve),
    connectTimeoutMs: config.proxy.connect_timeout,
    idleTimeoutMs: config.proxy.idle_timeout,
    maxTunnels: config.proxy.max_tunnels,
    classify: classifyForObservation,
    describeHttp: describePlainHttp,
    inspector,
  };
}
