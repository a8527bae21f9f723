/**
 * At most one log line per key (a client address) per interval, so a client
 * that misbehaves thousands of times a second costs one line a minute. The
 * line that is let through says how many were held back since the last one.
 * Bounded: past `maxKeys` the key seen longest ago is forgotten (its next
 * line is let through early, which is harmless). Pure: the clock is injected.
 *
 *   take(key) ── first time, or interval passed ──▶ { suppressed: n }  (log it, with n)
 *             └─ within the interval ─────────────▶ null                (count it, say nothing)
 */
export interface KeyedRateLimitOptions {
  intervalMs: number;
  maxKeys: number;
  now: () => number;
}

export class KeyedRateLimit {
  /** key → when it was last let through and how many were held back since; Map order = oldest first. */
  private readonly entries = new Map<string, { at: number; held: number }>();

  constructor(private readonly opts: KeyedRateLimitOptions) {}

  get size(): number {
    return this.entries.size;
  }

  /** Null: hold this one back. Otherwise log it, saying how many were held back since the last line. */
  take(key: string): { suppressed: number } | null {
    const now = this.opts.now();
    const e = this.entries.get(key);
    if (e && now - e.at < this.opts.intervalMs) {
      e.held++;
      return null;
    }
    const suppressed = e?.held ?? 0;
    this.entries.delete(key);
    this.entries.set(key, { at: now, held: 0 });
    if (this.entries.size > this.opts.maxKeys) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    return { suppressed };
  }
}
