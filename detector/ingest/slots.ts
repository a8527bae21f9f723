/**
 * Concurrency slots for the ingest listener: one pool per gateway and one
 * shared pool for the event routes (/v1/cloudtrail, /v1/guardduty), all under
 * a total. A request takes a slot only after its cheap checks passed (route,
 * gateway, signature header, token), so requests that cannot be authentic
 * never hold one, and a flood aimed at one gateway or at the event routes
 * leaves the other pools free.
 *
 *   total (ingest.max_concurrent)
 *   ├── gateway:gw-a  (ingest.max_concurrent_per_gateway)
 *   ├── gateway:gw-b  (ingest.max_concurrent_per_gateway)
 *   └── events        (ingest.max_concurrent_events)
 */

export interface SlotLimits {
  total: number;
  perGateway: number;
  events: number;
}

export type SlotPool = { kind: 'gateway'; id: string } | { kind: 'events' };

export class Slots {
  private total = 0;
  private readonly used = new Map<string, number>();

  constructor(private readonly limits: () => SlotLimits) {}

  /** A release function (idempotent), or null when the pool or the total is full. */
  tryAcquire(pool: SlotPool): (() => void) | null {
    const l = this.limits();
    const key = pool.kind === 'events' ? 'events' : `gateway:${pool.id}`;
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
