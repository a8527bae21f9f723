/**
 * Egress self-check: periodically asks an address-echo service (by default
 * AWS's checkip) which public address this gateway presents, and exports
 * whether it lies in gateway.egress_cidrs. A wrong CIDR would otherwise
 * silently turn every attested call into a finding.
 */
import { request, Agent } from 'undici';
import { CidrSet } from '../../common/cidr/cidr-set.js';
import { canonicalIp } from '../../common/cidr/ip.js';
import type { Logger } from '../../common/log/logger.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import { trustedSecureContext } from '../tls/trust-store.js';

export class EgressCheck {
  private timer: NodeJS.Timeout | null = null;
  private readonly cidrs: CidrSet;
  private readonly dispatcher: Agent;

  constructor(
    private readonly opts: {
      url: string;
      intervalMs: number;
      egressCidrs: readonly string[];
      metrics: AgentMetrics;
      logger: Logger;
      now: () => number;
      ca: string | null;
    },
  ) {
    this.cidrs = CidrSet.of(opts.egressCidrs);
    this.dispatcher = new Agent({
      connections: 1,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
      connect: { timeout: 10_000, ...(opts.ca ? { secureContext: trustedSecureContext(opts.ca) } : {}) },
    });
  }

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    void this.dispatcher.close();
  }

  async check(): Promise<boolean | null> {
    try {
      const res = await request(this.opts.url, { dispatcher: this.dispatcher, method: 'GET' });
      const body = (await res.body.text()).trim().slice(0, 100);
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      const ip = canonicalIp(body);
      if (!ip) throw new Error(`answer is not an IP address: ${JSON.stringify(body.slice(0, 40))}`);
      const inside = this.cidrs.contains(ip);
      this.opts.metrics.egressIpInCidrs.set(inside ? 1 : 0);
      this.opts.metrics.egressCheckTimestamp.set(Math.floor(this.opts.now() / 1000));
      if (!inside) {
        this.opts.logger.error(
          { event: 'egress_ip_outside_cidrs', egress_ip: ip, egress_cidrs: this.opts.egressCidrs },
          `AWS sees this gateway as ${ip}, which is not in gateway.egress_cidrs: the detector will not match its calls; fix gateway.egress_cidrs (and the detector's gateways list)`,
        );
      }
      return inside;
    } catch (err) {
      this.opts.logger.warn({ event: 'egress_check_failed', url: this.opts.url, err: (err as Error).message }, 'egress self-check failed');
      return null;
    }
  }
}
