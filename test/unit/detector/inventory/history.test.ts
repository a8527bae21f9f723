/** The address history: holdings opened, confirmed, released and dated, and who owned an address when. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp } from '../../../../common/cidr/ip.js';
import { AddressHistory, type Holding, type ListedInstance } from '../../../../detector/inventory/history.js';

const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
const at = (min: number) => min * 60_000;
const inst = (instanceId: string, addresses: string[], sinceMs: number | null = null, untilMs: number | null = null): ListedInstance => ({
  instanceId,
  addresses,
  sinceMs,
  untilMs,
});

describe('AddressHistory', () => {
  it('a first read without dates speaks for the past; a later one dates what is new from the read', () => {
    let h = AddressHistory.empty().withSource('file:a', [inst(A, ['10.0.0.1'])], at(100));
    expect(h.ownerAt('10.0.0.1', at(-10_000))).toBe(A);
    h = h.withSource('file:a', [inst(A, ['10.0.0.1']), inst(B, ['10.0.0.2'])], at(200));
    expect(h.ownerAt('10.0.0.2', at(150))).toBeNull();
    expect(h.ownerAt('10.0.0.2', at(200))).toBe(B);
    expect(h.holdings().find((x) => x.instanceId === A)).toMatchObject({ firstSeenMs: -Infinity, lastSeenMs: at(200), endedMs: null });
  });

  it('a launch time dates the holding; an address no source lists any more ends at that read', () => {
    let h = AddressHistory.empty().withSource('ec2:own:r', [inst(A, ['10.0.0.1'], at(50))], at(100));
    expect(h.knows(A, at(40))).toBe(false);
    expect(h.knows(A, at(60))).toBe(true);
    h = h.withSource('ec2:own:r', [], at(200));
    expect(h.holdings()).toEqual([
      { instanceId: A, address: '10.0.0.1', firstSeenMs: at(50), lastSeenMs: at(100), endedMs: at(200), sources: [] },
    ]);
    expect(h.knows(A, at(150))).toBe(true);
    expect(h.knows(A, at(201))).toBe(false);
  });

  it('of two holders at once the later taker owns the address; before it took it, the earlier one', () => {
    let h = AddressHistory.empty().withSource('ec2:own:r', [inst(A, ['10.0.0.1'], at(0))], at(100));
    h = h.withSource('ec2:own:r', [inst(B, ['10.0.0.1'], at(150))], at(200));
    expect(h.ownerAt('10.0.0.1', at(120))).toBe(A);
    expect(h.ownerAt('10.0.0.1', at(160))).toBe(B);
    expect(h.ownerAt('10.0.0.1', at(300))).toBe(B);
    expect(h.addressesAt(A, at(300))).toEqual([]);
  });

  it('a pair held again after a gap keeps its earlier holding beside the new one', () => {
    let h = AddressHistory.empty().withSource('s', [inst(A, ['10.0.0.1'], at(0))], at(10));
    h = h.withSource('s', [], at(20));
    h = h.withSource('s', [inst(A, ['10.0.0.1'])], at(30));
    expect(h.size.holdings).toBe(2);
    expect(h.knows(A, at(25))).toBe(false);
    expect(h.knows(A, at(15))).toBe(true);
    expect(h.knows(A, at(35))).toBe(true);
  });

  it('a holding two sources list ends only when both stop listing it', () => {
    let h = AddressHistory.empty().withSource('file:a', [inst(A, ['10.0.0.1'])], at(0));
    h = h.withSource('file:b', [inst(A, ['10.0.0.1'])], at(0));
    h = h.withSource('file:a', [], at(10));
    expect(h.knows(A, at(100))).toBe(true);
    h = h.withSource('file:b', [], at(20));
    expect(h.knows(A, at(100))).toBe(false);
  });

  it('dated entries are the closed spans they state, and go when no source states them', () => {
    let h = AddressHistory.empty().withSource(
      'file:h',
      [inst(A, ['10.0.0.1'], at(0), at(10)), inst(B, ['10.0.0.1'], at(20), at(30))],
      at(100),
    );
    expect(h.ownerAt('10.0.0.1', at(5))).toBe(A);
    expect(h.ownerAt('10.0.0.1', at(15))).toBeNull();
    expect(h.ownerAt('10.0.0.1', at(25))).toBe(B);
    h = h.withSource('file:h', [inst(B, ['10.0.0.1'], at(20), at(30))], at(200));
    expect(h.ownerAt('10.0.0.1', at(5))).toBeNull();
    expect(h.prunedBefore(at(1_000)).size.holdings).toBe(1);
  });

  it('prunes observed holdings that ended before the cutoff, and nothing else', () => {
    let h = AddressHistory.empty().withSource('s', [inst(A, ['10.0.0.1']), inst(B, ['10.0.0.2'])], at(0));
    h = h.withSource('s', [inst(B, ['10.0.0.2'])], at(10));
    expect(h.prunedBefore(at(5)).size.holdings).toBe(2);
    expect(h.prunedBefore(at(11)).size).toEqual({ current: 1, instances: 1, holdings: 1 });
  });

  it('an update leaves the history it came from as it was', () => {
    const before = AddressHistory.empty().withSource('s', [inst(A, ['10.0.0.1'])], at(0));
    before.withSource('s', [], at(10));
    expect(before.knows(A, at(100))).toBe(true);
  });

  it('answers knows, ownerAt and addressesAt as a scan of its holdings does, for any history', () => {
    // The answers read off the holdings one by one: an address's holders at t, the later taker first.
    const heldAt = (h: Holding, t: number) => h.firstSeenMs <= t && (h.endedMs === null || t <= h.endedMs);
    const newer = (a: Holding, b: Holding): Holding => {
      if (a.firstSeenMs !== b.firstSeenMs) return a.firstSeenMs > b.firstSeenMs ? a : b;
      if ((a.endedMs === null) !== (b.endedMs === null)) return a.endedMs === null ? a : b;
      if (a.lastSeenMs !== b.lastSeenMs) return a.lastSeenMs > b.lastSeenMs ? a : b;
      return a.instanceId <= b.instanceId ? a : b;
    };
    const scan = (holdings: Holding[]) => ({
      knows: (id: string, t: number) => holdings.some((h) => h.instanceId === id && heldAt(h, t)),
      ownerAt: (address: string, t: number) => {
        let list = holdings.filter((h) => h.address === address);
        if (list.length === 0) list = holdings.filter((h) => h.address === (canonicalIp(address) ?? address));
        let best: Holding | null = null;
        for (const h of list) if (heldAt(h, t)) best = best === null ? h : newer(best, h);
        return best?.instanceId ?? null;
      },
      addressesAt: (id: string, t: number) =>
        [...new Set(holdings.filter((h) => h.instanceId === id && heldAt(h, t)).map((h) => h.address))].sort(),
    });
    const ids = [A, B, 'i-0ccccccccccccccc', 'i-0dddddddddddddddd'];
    // Canonical text as the inventory stores it; queries also in other spellings of the same addresses.
    const stored = ['10.0.0.1', '10.0.0.2', '10.0.1.1', 'fd12::1', 'fd12::a:1', '2001:db8::5'];
    const asked = [...stored, 'FD12::1', 'fd12:0:0:0:0:0:0:1', 'fd12::A:1', '2001:DB8:0::5', '10.0.0.9', 'fd12::2', 'not an address'];
    const time = fc.integer({ min: 0, max: 40 });
    const listedInstance = fc.record({
      instanceId: fc.constantFrom(...ids),
      addresses: fc.subarray(stored, { minLength: 1, maxLength: 3 }),
      sinceMs: fc.option(time, { nil: null }),
      span: fc.option(fc.integer({ min: 0, max: 15 }), { nil: null }),
    });
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('read' as const),
        source: fc.constantFrom('file:a', 'file:b', 'ec2:own:r'),
        listed: fc.array(listedInstance, { maxLength: 6 }),
        dt: fc.integer({ min: 0, max: 8 }),
      }),
      fc.record({ kind: fc.constant('prune' as const), cutoff: time }),
    );
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 12 }),
        fc.array(fc.tuple(fc.constantFrom(...asked), fc.constantFrom(...ids, 'i-0eeeeeeeeeeeeeeee'), time), {
          minLength: 1,
          maxLength: 30,
        }),
        (steps, queries) => {
          let h = AddressHistory.empty();
          let now = 0;
          for (const s of steps) {
            if (s.kind === 'prune') {
              h = h.prunedBefore(s.cutoff);
              continue;
            }
            now += s.dt;
            const listed = s.listed.map((l) =>
              inst(l.instanceId, l.addresses, l.sinceMs, l.span === null ? null : (l.sinceMs ?? 0) + l.span),
            );
            h = h.withSource(s.source, listed, now);
          }
          const ref = scan(h.holdings());
          for (const [address, id, t] of queries) {
            for (const at of [t, -Infinity, Infinity]) {
              expect(h.knows(id, at)).toBe(ref.knows(id, at));
              expect(h.ownerAt(address, at)).toBe(ref.ownerAt(address, at));
              expect(h.addressesAt(id, at)).toEqual(ref.addressesAt(id, at));
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
