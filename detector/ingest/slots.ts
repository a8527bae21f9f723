/**
 * Concurrency slots for the ingest listener: one pool per gateway and client
 * address, and one shared pool for the event routes (/v1/cloudtrail,
 * /v1/guardduty), all under a total. A request takes a slot only after its
 * cheap checks passed (route, gateway, signature header, token), so requests
 * that cannot be authentic never hold one, and a flood aimed at one gateway
 * or at the event routes leaves the other pools free. A telemetry signature is
 * only verified once the body is in, so a request with a well-formed but forged
 * one holds a slot until its body deadline: its pool is its own address's, and
 * the gateway's agent, at its own address, keeps its slots.
 *
 *   total (ingest.max_concurrent)
 *   ├── gateway:gw-a@192.0.2.10   (ingest.max_concurrent_per_gateway)
 *   ├── gateway:gw-a@198.51.100.7 (ingest.max_concurrent_per_gateway)
 *   ├── gateway:gw-b@192.0.2.11   (ingest.max_concurrent_per_gateway)
 *   └── events                    (ingest.max_concurrent_events)
 */

export interface SlotLimits {
  total: number;
  perGateway: number;
  events: number;
}

/** `address`: the client's, as the socket has it (a gateway's pool is per address). */
export type SlotPool = { kind: 'gateway'; id: string; address: string } | { kind: 'events' };

export class Slots {
  private total = 0;
  private readonly used = new Map<string, number>();

  constructor(private readonly limits: () => SlotLimits) {}

  /** A release function (idempotent), or null when the pool or the total is full. */
  tryAcquire(pool: SlotPool): (() => void) | null {
    const l = this.limits();
    const key = pool.kind === 'events' ? 'events' : `gateway:${pool.id}@${pool.address}`;
    const inPool = this.used.get(key) ?? 0;
    if (this.total >= l.total || inPool >= (pool.kind === 'events' ? l.events : l.perGateway)) return null;
    this.total++;
    this.used.set(key, inPool + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.used.get(key) ?? 1) - 1;
      if (n === 0) this.used.delete(key);
      else this.used.set(key, n);
    };
  }

  get inUse(): number {
    return this.total;
  }
}
