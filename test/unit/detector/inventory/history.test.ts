/** The address history: holdings opened, confirmed, released and dated, and who owned an address when. */
import { describe, expect, it } from 'vitest';
import { AddressHistory, type ListedInstance } from '../../../../detector/inventory/history.js';

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
});
