/**
 * Time spans indexed for overlap queries in O(log n + k).
 *
 *   entries sorted by start:  [s0,e0] [s1,e1] [s2,e2] … [sn,en]
 *   query [from, to]:          first entry with start >= from - maxSpan (binary search),
 *                              scan while start <= to, keep those with end >= from
 *
 * Correct for any spans; fast because aggregated observations are short
 * (about one flush interval), so `maxSpan` bounds the scan's head. One long
 * tunnel only widens the scan of the index it lives in (one key, one
 * endpoint), which is why there is one index per key and per endpoint.
 *
 * Appends in time order keep the array sorted; an out-of-order append marks
 * it unsorted and the next query re-sorts (TimSort is near-linear on such
 * nearly sorted input).
 */
export class SpanIndex<T> {
  private entries: { start: number; end: number; item: T }[] = [];
  private sorted = true;
  private maxSpan = 0;

  get size(): number {
    return this.entries.length;
  }

  add(start: number, end: number, item: T): void {
    const lo = Math.min(start, end);
    const hi = Math.max(start, end);
    const last = this.entries[this.entries.length - 1];
    if (last !== undefined && lo < last.start) this.sorted = false;
    this.entries.push({ start: lo, end: hi, item });
    if (hi - lo > this.maxSpan) this.maxSpan = hi - lo;
  }

  /**
   * For liveness, where only "was anything there" matters: a span that starts
   * within `joinMs` of the last one's end extends it instead of adding an
   * entry, so a steadily reporting gateway costs a handful of entries, not
   * one per record.
   */
  addMerged(start: number, end: number, item: T, joinMs: number): void {
    const lo = Math.min(start, end);
    const hi = Math.max(start, end);
    const last = this.entries[this.entries.length - 1];
    if (last !== undefined && this.sorted && lo >= last.start && lo <= last.end + joinMs) {
      if (hi > last.end) {
        last.end = hi;
        if (hi - last.start > this.maxSpan) this.maxSpan = hi - last.start;
      }
      return;
    }
    this.add(lo, hi, item);
  }

  /** Drops the spans that ended before `ms` (retention); returns how many were dropped. */
  removeEndedBefore(ms: number): number {
    const kept = this.entries.filter((e) => e.end >= ms);
    const removed = this.entries.length - kept.length;
    if (removed > 0) {
      this.entries = kept;
      this.maxSpan = kept.reduce((m, e) => Math.max(m, e.end - e.start), 0);
    }
    return removed;
  }

  /** Items whose span overlaps [from, to] (inclusive), in start order; only those `keep` accepts, when given. */
  overlapping(from: number, to: number, keep?: (item: T) => boolean): T[] {
    const out: T[] = [];
    this.scan(from, to, (item) => {
      if (keep === undefined || keep(item)) out.push(item);
      return false;
    });
    return out;
  }

  hasOverlap(from: number, to: number): boolean {
    return this.scan(from, to, () => true);
  }

  /** Visits overlapping items until `visit` returns true; returns whether it did. */
  private scan(from: number, to: number, visit: (item: T) => boolean): boolean {
    if (!this.sorted) {
      this.entries.sort((a, b) => a.start - b.start);
      this.sorted = true;
    }
    const entries = this.entries;
    for (let i = this.lowerBound(from - this.maxSpan); i < entries.length; i++) {
      const e = entries[i] as { start: number; end: number; item: T };
      if (e.start > to) break;
      if (e.end >= from && visit(e.item)) return true;
    }
    return false;
  }

  /** Index of the first entry whose start is >= value. */
  private lowerBound(value: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.entries[mid] as { start: number }).start < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
