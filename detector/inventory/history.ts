/**
 * The address history behind instance binding: which instance held which
 * private address, and when, as (instance, address, firstSeen, lastSeen)
 * holdings. Pure and immutable: each update (a file read, a poll of one
 * region) returns a new history, so a batch of decisions reads one stable
 * view while the next poll builds another.
 *
 * Every holding comes from one or more sources (an inventory file, one
 * account and region polled). When a source lists (instance, address):
 *   - an open holding of the pair is confirmed: lastSeen moves to the read;
 *   - otherwise a holding opens, first seen at the instance's launch time if
 *     the source gives one, else at the read — or, on a source's first read,
 *     "since ever" (a snapshot file speaks for the past it does not date).
 * A pair a source stops listing is released by it; when no source holds it
 * any more the holding ends there (endedMs). A holding with an explicit end
 * (a list entry's lastSeen) is closed from the start.
 *
 * An address is held at t by the holdings with firstSeen ≤ t ≤ (ended, or
 * forever while open); of several, the one that took it last (latest
 * firstSeen) owns it: an address reused by a new instance is the new
 * instance's from its launch, the old one's before.
 */
import { canonicalIp } from '../../common/cidr/ip.js';

/** One instance as a source lists it. */
export interface ListedInstance {
  instanceId: string;
  /** Private addresses (IPv4 and IPv6), canonical text. */
  addresses: string[];
  /** Held since (LaunchTime, or a list entry's firstSeen); null when the source does not say. */
  sinceMs: number | null;
  /** Held until (a list entry's lastSeen); null: still held. */
  untilMs: number | null;
}

export interface Holding {
  readonly instanceId: string;
  readonly address: string;
  /** -Infinity: held since before anything the detector decides. */
  readonly firstSeenMs: number;
  /** The last read that listed it (or the end a list entry gives). */
  readonly lastSeenMs: number;
  /** When the last source holding it stopped listing it (or the end a list entry gives); null while held. */
  readonly endedMs: number | null;
  readonly sources: readonly string[];
}

/**
 * Of two holdings of one address at one time, which owns it: the later taker; an open one over
 * an ended one; the later confirmed; the smaller instance id. Negative: `a` owns it.
 */
function ownerOrder(a: Holding, b: Holding): number {
  if (a.firstSeenMs !== b.firstSeenMs) return a.firstSeenMs > b.firstSeenMs ? -1 : 1;
  if ((a.endedMs === null) !== (b.endedMs === null)) return a.endedMs === null ? -1 : 1;
  if (a.lastSeenMs !== b.lastSeenMs) return a.lastSeenMs > b.lastSeenMs ? -1 : 1;
  return a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0;
}

/**
 * Holdings grouped by one key (instance or address) for the per-event questions, as plain
 * numbers: `at.get(key)` is the group's number g, its holdings are slots start[g] ≤ i < start[g+1],
 * and slot i is held over [spans[2i], spans[2i+1]] (+Infinity while open) by ids[i] (or of
 * address ids[i]). A question then reads one map entry and two typed arrays instead of a list of
 * holding objects and their boxed times.
 */
class HoldingIndex {
  readonly at = new Map<string, number>();
  readonly start: Int32Array;
  readonly spans: Float64Array;
  readonly ids: string[] = [];

  /** `order` sorts a group's holdings; `id` is what a slot answers. */
  constructor(groups: ReadonlyMap<string, Holding[]>, order: (a: Holding, b: Holding) => number, id: (h: Holding) => string) {
    let n = 0;
    for (const list of groups.values()) n += list.length;
    this.start = new Int32Array(groups.size + 1);
    this.spans = new Float64Array(2 * n);
    let g = 0;
    let i = 0;
    for (const [key, list] of groups) {
      this.at.set(key, g);
      this.start[g++] = i;
      for (const h of list.sort(order)) {
        this.spans[2 * i] = h.firstSeenMs;
        this.spans[2 * i + 1] = h.endedMs ?? Infinity;
        this.ids.push(id(h));
        i++;
      }
    }
    this.start[g] = i;
  }

  /** The first slot of the group held at t, or -1. */
  firstHeld(g: number, t: number): number {
    const spans = this.spans;
    for (let i = this.start[g] as number, end = this.start[g + 1] as number; i < end; i++)
      if ((spans[2 * i] as number) <= t && t <= (spans[2 * i + 1] as number)) return i;
    return -1;
  }
}

const byAddressText = (a: Holding, b: Holding) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0);

/** Keys: `o` the pair's current (or last) observed holding, `e` an earlier one, `d` a dated one a source states. */
const openKey = (instanceId: string, address: string) => `o ${instanceId} ${address}`;
const spanKey = (kind: 'e' | 'd', h: Pick<Holding, 'instanceId' | 'address' | 'firstSeenMs' | 'endedMs'>) =>
  `${kind} ${h.instanceId} ${h.address} ${h.firstSeenMs} ${h.endedMs}`;

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list === undefined) m.set(k, [v]);
  else list.push(v);
}

export class AddressHistory {
  /** Per instance, its holdings by address (addressesAt answers sorted, once each). */
  private readonly byInstance: HoldingIndex;
  /** Per address, its holdings owner first (ownerAt answers the first held). */
  private readonly byAddress: HoldingIndex;

  private constructor(
    /** Open holdings under `instance address`, closed ones under `instance address first ended`. */
    private readonly all: ReadonlyMap<string, Holding>,
    /** Sources read at least once. */
    private readonly seenSources: ReadonlySet<string>,
  ) {
    const instances = new Map<string, Holding[]>();
    const addresses = new Map<string, Holding[]>();
    for (const h of all.values()) {
      push(instances, h.instanceId, h);
      push(addresses, h.address, h);
    }
    this.byInstance = new HoldingIndex(instances, byAddressText, (h) => h.address);
    this.byAddress = new HoldingIndex(addresses, ownerOrder, (h) => h.instanceId);
  }

  static empty(): AddressHistory {
    return new AddressHistory(new Map(), new Set());
  }

  /** Instances holding an address now (an open holding), instances in the history, and holdings kept. */
  get size(): { current: number; instances: number; holdings: number } {
    const current = new Set<string>();
    for (const h of this.all.values()) if (h.endedMs === null) current.add(h.instanceId);
    return { current: current.size, instances: this.byInstance.at.size, holdings: this.all.size };
  }

  holdings(): Holding[] {
    return [...this.all.values()];
  }

  /** What `source` lists at `atMs` replaces what it listed before. */
  withSource(source: string, listed: readonly ListedInstance[], atMs: number): AddressHistory {
    const next = new Map(this.all);
    const firstRead = !this.seenSources.has(source);
    const listedKeys = new Set<string>();
    for (const inst of listed) {
      for (const address of inst.addresses) {
        if (inst.untilMs !== null) {
          const h = { instanceId: inst.instanceId, address, firstSeenMs: inst.sinceMs ?? -Infinity, endedMs: inst.untilMs };
          const key = spanKey('d', h);
          listedKeys.add(key);
          next.set(key, { ...h, lastSeenMs: inst.untilMs, sources: withItem(next.get(key)?.sources ?? [], source) });
          continue;
        }
        const key = openKey(inst.instanceId, address);
        listedKeys.add(key);
        const old = next.get(key);
        if (old !== undefined && old.endedMs === null) {
          next.set(key, {
            ...old,
            firstSeenMs: inst.sinceMs !== null ? Math.min(old.firstSeenMs, inst.sinceMs) : old.firstSeenMs,
            lastSeenMs: Math.max(old.lastSeenMs, atMs),
            sources: withItem(old.sources, source),
          });
          continue;
        }
        // The pair was held before and released: that holding stays in the history beside the new one.
        if (old !== undefined) next.set(spanKey('e', old), old);
        next.set(key, {
          instanceId: inst.instanceId,
          address,
          firstSeenMs: inst.sinceMs ?? (firstRead ? -Infinity : atMs),
          lastSeenMs: atMs,
          endedMs: null,
          sources: [source],
        });
      }
    }
    for (const [key, h] of next) {
      if (listedKeys.has(key) || !h.sources.includes(source)) continue;
      const sources = h.sources.filter((s) => s !== source);
      if (key.startsWith('d ')) {
        // A dated holding is the source's statement: gone when no source states it any more.
        if (sources.length === 0) next.delete(key);
        else next.set(key, { ...h, sources });
      } else next.set(key, sources.length === 0 ? { ...h, sources, endedMs: atMs } : { ...h, sources });
    }
    return new AddressHistory(next, new Set([...this.seenSources, source]));
  }

  /** Without the observed holdings that ended before `cutoffMs` (the evidence of that time is pruned too). */
  prunedBefore(cutoffMs: number): AddressHistory {
    let dropped = false;
    const next = new Map<string, Holding>();
    for (const [k, h] of this.all) {
      if (!k.startsWith('d ') && h.endedMs !== null && h.endedMs < cutoffMs) dropped = true;
      else next.set(k, h);
    }
    return dropped ? new AddressHistory(next, this.seenSources) : this;
  }

  knows(instanceId: string, atMs: number): boolean {
    const g = this.byInstance.at.get(instanceId);
    return g !== undefined && this.byInstance.firstHeld(g, atMs) >= 0;
  }

  ownerAt(address: string, atMs: number): string | null {
    const index = this.byAddress;
    const g = index.at.get(address) ?? index.at.get(canonicalIp(address) ?? address);
    if (g === undefined) return null;
    const i = index.firstHeld(g, atMs);
    return i < 0 ? null : (index.ids[i] as string);
  }

  addressesAt(instanceId: string, atMs: number): string[] {
    const index = this.byInstance;
    const g = index.at.get(instanceId);
    const out: string[] = [];
    if (g === undefined) return out;
    const spans = index.spans;
    for (let i = index.start[g] as number, end = index.start[g + 1] as number; i < end; i++) {
      const address = index.ids[i] as string;
      if ((spans[2 * i] as number) <= atMs && atMs <= (spans[2 * i + 1] as number) && out[out.length - 1] !== address) out.push(address);
    }
    return out;
  }
}

function withItem(list: readonly string[], item: string): string[] {
  return list.includes(item) ? [...list] : [...list, item];
}
