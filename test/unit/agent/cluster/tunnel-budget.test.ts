// The tunnel cap shared by proxy workers: the primary's budget and each worker's lease, wired as the
// channel wires them (each message delivered on a later turn), with the cap checked on every step.
import { describe, expect, it } from 'vitest';
import { TunnelBudget, TunnelLease, leaseBlock } from '../../../../agent/cluster/tunnel-budget.js';

function rig(cap: number, workers: number) {
  const later = (f: () => void) => setImmediate(f);
  const leases: TunnelLease[] = [];
  const messages = { wants: 0, returns: 0 };
  const budget = new TunnelBudget({
    cap,
    workers,
    grant: (i, n, c, waiting) => later(() => leases[i]!.granted(n, c, waiting)),
    recall: (i) => later(() => leases[i]!.recalled()),
  });
  for (let i = 0; i < workers; i++)
    leases.push(
      new TunnelLease({
        workers,
        cap,
        want: (n, waiting) => {
          messages.wants++;
          later(() => budget.want(i, n, waiting));
        },
        giveBack: (n) => {
          messages.returns++;
          later(() => budget.giveBack(i, n));
        },
      }),
    );
  const settle = () => new Promise((r) => setTimeout(r, 5));
  return { budget, leases, messages, settle };
}

const take = async (l: TunnelLease) => {
  const t = l.take();
  return t === true || t === false ? t : await t;
};

describe('the shared tunnel cap', () => {
  it('a cap of 1 over two workers admits one tunnel in all; the slot moves to the other worker once it is free', async () => {
    const r = rig(1, 2);
    expect(await take(r.leases[0]!)).toBe(true);
    expect(await take(r.leases[1]!)).toBe(false);
    expect(await take(r.leases[0]!)).toBe(false);
    r.leases[0]!.give();
    await r.settle();
    // Worker 0 keeps its free slot as spare; worker 1 is short, so the primary recalls it.
    expect(await take(r.leases[1]!)).toBe(true);
    expect(r.budget.leased).toBeLessThanOrEqual(1);
    expect(await take(r.leases[0]!)).toBe(false);
  });

  it('never leases more than the cap, however the workers ask', async () => {
    const r = rig(50, 3);
    const asked = Array.from({ length: 90 }, (_, k) => r.leases[k % 3]!);
    const admitted = await Promise.all(asked.map(take));
    expect(admitted.filter(Boolean)).toHaveLength(50);
    expect(r.budget.leased).toBe(50);
    // 20 of the admitted tunnels end, wherever they were.
    asked
      .filter((_, k) => admitted[k])
      .slice(0, 20)
      .forEach((l) => l.give());
    await r.settle();
    expect(r.budget.leased).toBeLessThanOrEqual(50);
    const again = await Promise.all(Array.from({ length: 40 }, (_, k) => take(r.leases[k % 3]!)));
    expect(again.filter(Boolean)).toHaveLength(20);
    expect(r.budget.leased).toBe(50);
  });

  it('admits from the lease without asking: one ask per block, not per tunnel', async () => {
    const r = rig(10_000, 2);
    expect(leaseBlock(10_000, 2)).toBe(625);
    for (let k = 0; k < 300; k++) expect(await take(r.leases[0]!)).toBe(true);
    await r.settle();
    expect(r.messages.wants).toBeLessThanOrEqual(2);
    for (let k = 0; k < 300; k++) r.leases[0]!.give();
    await r.settle();
    // A block stays spare for the next tunnels: nothing was sent back, one tunnel at a time or otherwise.
    expect(r.leases[0]!.leased).toBe(leaseBlock(10_000, 2));
    expect(r.messages.returns).toBe(0);
  });

  it('a worker that is gone gives its slots back', async () => {
    const r = rig(2, 2);
    expect(await take(r.leases[0]!)).toBe(true);
    expect(await take(r.leases[0]!)).toBe(true);
    expect(await take(r.leases[1]!)).toBe(false);
    r.budget.forget(0);
    expect(await take(r.leases[1]!)).toBe(true);
  });

  it('a lowered cap recalls the spare slots', async () => {
    const r = rig(100, 2);
    expect(await take(r.leases[0]!)).toBe(true);
    await r.settle();
    expect(r.budget.leased).toBeGreaterThan(1);
    r.budget.setCap(1);
    await r.settle();
    expect(r.budget.leased).toBe(1);
    expect(await take(r.leases[1]!)).toBe(false);
  });
});
