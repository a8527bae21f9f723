/**
 * Decisions counted by disposition and rule, as the `disposition/rule` summary
 * replay and `detector backfill` print. Counted without building a key per
 * decision (replay counts one per record); the keys come in the order first seen.
 */
import { PairMap } from '../../common/collections/pair-map.js';

export class DecisionCounts {
  private readonly counts = new PairMap<{ key: string; n: number }>();
  private readonly order: { key: string; n: number }[] = [];

  add(disposition: string, rule: string): void {
    let count = this.counts.get(disposition, rule);
    if (count === undefined) {
      count = { key: `${disposition}/${rule}`, n: 0 };
      this.counts.set(disposition, rule, count);
      this.order.push(count);
    }
    count.n++;
  }

  /** `{ "disposition/rule": n, … }`, in the order first counted. */
  toRecord(): Record<string, number> {
    return Object.fromEntries(this.order.map(({ key, n }) => [key, n]));
  }
}
