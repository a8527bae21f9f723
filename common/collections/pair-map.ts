/**
 * A map keyed by a pair of strings, kept as a map of maps: a lookup builds no
 * key (a hot path counting decisions by disposition and rule, say, asks it
 * once per record).
 */
export class PairMap<V> {
  private readonly outer = new Map<string, Map<string, V>>();

  get(a: string, b: string): V | undefined {
    return this.outer.get(a)?.get(b);
  }

  set(a: string, b: string, value: V): void {
    let inner = this.outer.get(a);
    if (inner === undefined) {
      inner = new Map();
      this.outer.set(a, inner);
    }
    inner.set(b, value);
  }
}
