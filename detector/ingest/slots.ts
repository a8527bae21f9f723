/**
 * Concurrency slots for the ingest listener: one pool per gateway and client
 * address, and one shared pool for the event routes (/v1/cloudtrail,
 * /v1/guardduty), all under a total. A request takes a slot only after its
 * cheap checks passed (route, gateway, signature header, token), so requests
 * that cannot be authentic never hold one, and a flood aimed at one gateway
 * or at the event routes leaves the other pools free. A telemetry signature is
 * only verified once the body is in, so a request with a well-formed but forged
 * one holds a slot until its body deadline: its pool is its own source's, and
 * the gateway's agent, at its own address, keeps its slots. A source (an IPv4
 * address, an IPv6 /64) holds at most twice a gateway's share across all the
 * gateways' pools, so one source cannot take the total with one gateway id per
 * pool; four agents behind one NAT address still fit (each sends two at a time).
 *
 *   total (ingest.max_concurrent)
 *   ├── gateway:gw-a@192.0.2.10   (ingest.max_concurrent_per_gateway) ┐ source 192.0.2.10:
 *   ├── gateway:gw-b@192.0.2.10   (ingest.max_concurrent_per_gateway) ┘ 2 × max_concurrent_per_gateway
 *   ├── gateway:gw-a@2001:db8::/64 (ingest.max_concurrent_per_gateway)
 *   └── events                    (ingest.max_concurrent_events)
 */
import { formatIp, formatIpv6, parseIp } from '../../common/cidr/ip.js';

export interface SlotLimits {
  total: number;
  perGateway: number;
  events: number;
}

/** `source`: the client's (clientSource of the socket's address; a gateway's pool is per source). */
export type SlotPool = { kind: 'gateway'; id: string; source: string } | { kind: 'events' };

/** Where a client's requests are counted: its IPv4 address (mapped forms folded), or its IPv6 /64 (a host usually holds a whole one). */
export function clientSource(address: string): string {
  const ip = parseIp(address);
  if (ip === null) return address;
  return ip.family === 4 ? formatIp(ip) : `${formatIpv6((ip.value >> 64n) << 64n)}/64`;
}

/** How many of the gateways' slots one source may hold, in gateway shares. */
const SOURCE_SHARES = 2;

export class Slots {
  private total = 0;
  private readonly used = new Map<string, number>();

  constructor(private readonly limits: () => SlotLimits) {}

  /** A release function (idempotent), or null when the pool or the total is full. */
  tryAcquire(pool: SlotPool): (() => void) | null {
    const l = this.limits();
    const keys = pool.kind === 'events' ? ['events'] : [`gateway:${pool.id}@${pool.source}`, `source:${pool.source}`];
    const limits = pool.kind === 'events' ? [l.events] : [l.perGateway, l.perGateway * SOURCE_SHARES];
    if (this.total >= l.total || keys.some((k, i) => (this.used.get(k) ?? 0) >= (limits[i] as number))) return null;
    this.total++;
    for (const k of keys) this.used.set(k, (this.used.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      for (const k of keys) {
        const n = (this.used.get(k) ?? 1) - 1;
        if (n === 0) this.used.delete(k);
        else this.used.set(k, n);
      }
    };
  }

  get inUse(): number {
    return this.total;
  }
}
