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
 * Appends in time order keep the arrays sorted; an out-of-order append marks
 * them unsorted and the next query re-sorts (TimSort is near-linear on such
 * nearly sorted input). Starts and ends live in arrays of plain numbers
 * (stored unboxed, side by side), so the binary search reads a few cache
 * lines instead of an object and a boxed time per probe.
 */
export class SpanIndex<T> {
  private starts: number[] = [];
  private ends: number[] = [];
  private items: T[] = [];
  private sorted = true;
  private maxSpan = 0;

  get size(): number {
    return this.starts.length;
  }

  add(start: number, end: number, item: T): void {
    const lo = Math.min(start, end);
    const hi = Math.max(start, end);
    const n = this.starts.length;
    if (n > 0 && lo < (this.starts[n - 1] as number)) this.sorted = false;
    this.starts.push(lo);
    this.ends.push(hi);
    this.items.push(item);
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
    const last = this.starts.length - 1;
    if (last >= 0 && this.sorted) {
      const lastStart = this.starts[last] as number;
      const lastEnd = this.ends[last] as number;
      if (lo >= lastStart && lo <= lastEnd + joinMs) {
        if (hi > lastEnd) {
          this.ends[last] = hi;
          if (hi - lastStart > this.maxSpan) this.maxSpan = hi - lastStart;
        }
        return;
      }
    }
    this.add(lo, hi, item);
  }

  /** Drops the spans that ended before `ms` (retention); returns how many were dropped. */
  removeEndedBefore(ms: number): number {
    const starts: number[] = [];
    const ends: number[] = [];
    const items: T[] = [];
    let maxSpan = 0;
    for (let i = 0; i < this.starts.length; i++) {
      const end = this.ends[i] as number;
      if (end < ms) continue;
      const start = this.starts[i] as number;
      starts.push(start);
      ends.push(end);
      items.push(this.items[i] as T);
      if (end - start > maxSpan) maxSpan = end - start;
    }
    const removed = this.starts.length - starts.length;
    if (removed > 0) {
      this.starts = starts;
      this.ends = ends;
      this.items = items;
      this.maxSpan = maxSpan;
    }
    return removed;
  }

  /** Items whose span overlaps [from, to] (inclusive), in start order; only those `keep` accepts, when given. */
  overlapping(from: number, to: number, keep?: (item: T) => boolean): T[] {
    this.sort();
    const out: T[] = [];
    const { starts, ends, items } = this;
    for (let i = this.lowerBound(from - this.maxSpan); i < starts.length; i++) {
      if ((starts[i] as number) > to) break;
      if ((ends[i] as number) >= from) {
        const item = items[i] as T;
        if (keep === undefined || keep(item)) out.push(item);
      }
    }
    return out;
  }

  hasOverlap(from: number, to: number): boolean {
    this.sort();
    const { starts, ends } = this;
    for (let i = this.lowerBound(from - this.maxSpan); i < starts.length; i++) {
      if ((starts[i] as number) > to) break;
      if ((ends[i] as number) >= from) return true;
    }
    return false;
  }

  /** Puts the entries in start order (a stable sort: equal starts keep their order of adding). */
  private sort(): void {
    if (this.sorted) return;
    const { starts, ends, items } = this;
    const order = starts.map((_, i) => i).sort((a, b) => (starts[a] as number) - (starts[b] as number));
    this.starts = order.map((i) => starts[i] as number);
    this.ends = order.map((i) => ends[i] as number);
    this.items = order.map((i) => items[i] as T);
    this.sorted = true;
  }

  /** Index of the first entry whose start is >= value. */
  private lowerBound(value: number): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
