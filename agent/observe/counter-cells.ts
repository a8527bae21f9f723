/**
 * A counter's increments for one label set kept as a plain number, and added
 * to the prom-client counter when the counter is read (its `collect`, which
 * every /metrics, `getMetricsAsJSON` and `get()` runs first). prom-client
 * hashes and validates the labels on every `inc`; a request's few increments
 * cost more than the rest of its bookkeeping that way. Label sets are bounded
 * (metrics.ts), so the cells are too.
 *
 *   record ──cell(a, b).n++──▶ cells ──collect (on read)──▶ counter.inc(labels, n)
 */
import type { Counter } from 'prom-client';

interface Cell {
  readonly labels: Record<string, string>;
  n: number;
  /** Added to since the last flush (an increment by 0 still makes the series appear, as with `inc`). */
  pending: boolean;
}

export class CounterCells<L extends string> {
  /** First label value → second label value (or '' with one label) → cell. */
  private readonly cells = new Map<string, Map<string, Cell>>();

  constructor(
    private readonly counter: Counter<L>,
    private readonly names: readonly [L] | readonly [L, L],
  ) {
    const c = counter as unknown as { collect?: (this: unknown) => unknown };
    const before = c.collect;
    c.collect = function (this: unknown) {
      flush();
      return before?.call(this);
    };
    const flush = (): void => this.flush();
  }

  /** Adds `by` to the label set (a[, b]), in the order of the names given; a counter never goes down (nor by NaN). */
  add(a: string, b: string | null, by = 1): void {
    if (!(by >= 0 && by < Infinity)) return;
    let row = this.cells.get(a);
    if (row === undefined) this.cells.set(a, (row = new Map<string, Cell>()));
    const k = b ?? '';
    let cell = row.get(k);
    if (cell === undefined) row.set(k, (cell = { labels: this.labelsOf(a, b), n: 0, pending: false }));
    cell.n += by;
    cell.pending = true;
  }

  /** Hands what was counted to the counter (it is read: it asks for this itself). */
  flush(): void {
    for (const row of this.cells.values())
      for (const cell of row.values())
        if (cell.pending) {
          const n = cell.n;
          cell.n = 0;
          cell.pending = false;
          this.counter.inc(cell.labels as Partial<Record<L, string>>, n);
        }
  }

  private labelsOf(a: string, b: string | null): Record<string, string> {
    const [first, second] = this.names;
    return second === undefined ? { [first]: a } : { [first]: a, [second]: b ?? '' };
  }
}
