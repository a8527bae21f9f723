/**
 * The automatic passthrough list: (client address, host) pairs whose client
 * rejected the agent's certificate, tunnelled without inspection until the
 * entry expires. Keyed by the pair, never by the host alone, so one client
 * (or one hostile packet) can only ever turn interception off for itself.
 * Bounded: at `maxEntries` the least recently used pair is dropped.
 *
 *   add(ip, host) ──▶ Map (insertion order = recency) ──▶ has(ip, host): hit moves it to the end
 *                        │ over maxEntries: drop the first (least recently used)
 *                        └ expired entries are removed when met
 */
export interface PassthroughMemoryOptions {
  maxEntries: number;
  ttlMs: number;
  now: () => number;
  /** Told the entry count after every change (the gauge). */
  onSize?: (size: number) => void;
}

export class PassthroughMemory {
  /** key → expiry (Unix ms); Map order is least to most recently used. */
  private readonly entries = new Map<string, number>();

  constructor(private readonly opts: PassthroughMemoryOptions) {}

  private static key(clientIp: string, host: string): string {
    return `${clientIp}\u0000${host}`;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether `clientIp` is to be tunnelled to `host` without inspection now. */
  has(clientIp: string, host: string): boolean {
    if (this.entries.size === 0) return false;
    const k = PassthroughMemory.key(clientIp, host);
    const until = this.entries.get(k);
    if (until === undefined) return false;
    this.entries.delete(k);
    if (until <= this.opts.now()) {
      this.opts.onSize?.(this.entries.size);
      return false;
    }
    this.entries.set(k, until);
    return true;
  }

  add(clientIp: string, host: string): void {
    const k = PassthroughMemory.key(clientIp, host);
    this.entries.delete(k);
    this.entries.set(k, this.opts.now() + this.opts.ttlMs);
    while (this.entries.size > this.opts.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.opts.onSize?.(this.entries.size);
  }
}
