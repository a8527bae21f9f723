/**
 * The in-memory store's replay options: values kept as handed over, and
 * decision rows without their detail, or only their verdicts. What a later
 * read needs answers as with the full rows; a read that needs more than a
 * verdict says so instead of answering wrong.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../../detector/store/memory-store.js';
import type { StoredDecision } from '../../../../detector/store/store.js';

const T = Date.parse('2026-11-27T12:00:00Z');

function decision(over: Partial<StoredDecision> = {}): StoredDecision {
  return {
    kind: 'cloudtrail',
    subjectId: 'e-1',
    timeMs: T,
    decidedMs: T + 1000,
    disposition: 'finding',
    rule: 'external',
    accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
    sourceIp: '198.51.100.7',
    gatewayId: null,
    detail: { reason: 'used from outside' },
    ...over,
  };
}

describe("MemoryStore decisions: 'without-detail'", () => {
  it('keeps what later reads need and lists decisions with a null detail', async () => {
    const store = new MemoryStore({ copyValues: false, decisions: 'without-detail' });
    await store.withTransaction(async (tx) => {
      expect(await tx.saveDecision(decision())).toBe(true);
      expect(await tx.saveDecision(decision())).toBe(false);
    });
    expect(await store.decisionOf('cloudtrail', 'e-1')).toBe('finding');
    expect(await store.findingsForKey('ASIAY34FZKBOKMUTVV7A', T - 1, T + 1)).toBe(1);
    const [listed] = await store.listDecisions({ sinceMs: 0, disposition: null, limit: 10 });
    expect(listed).toEqual({ ...decision(), detail: null });
    expect(await store.withTransaction((tx) => tx.takeDecision('cloudtrail', 'e-1'))).toEqual({ disposition: 'finding', rule: 'external' });
    expect(await store.decisionOf('cloudtrail', 'e-1')).toBeNull();
  });

  it('keeps the detail by default', async () => {
    const store = new MemoryStore();
    await store.withTransaction(async (tx) => void (await tx.saveDecision(decision())));
    const [listed] = await store.listDecisions({ sinceMs: 0, disposition: null, limit: 10 });
    expect(listed?.detail).toEqual({ reason: 'used from outside' });
  });
});

describe("MemoryStore decisions: 'verdict'", () => {
  it('saves once per subject, answers and takes back the verdict, and refuses the reads that need rows', async () => {
    const store = new MemoryStore({ copyValues: false, decisions: 'verdict' });
    await store.withTransaction(async (tx) => {
      expect(await tx.saveDecision(decision())).toBe(true);
      expect(await tx.saveDecision(decision({ disposition: 'suppressed', rule: 'attested' }))).toBe(false);
      expect(await tx.saveDecision(decision({ subjectId: 'e-2', disposition: 'suppressed', rule: 'attested' }))).toBe(true);
      expect(await tx.saveDecision(decision({ subjectId: 'e-3' }))).toBe(true);
      expect(await tx.saveDecision(decision({ kind: 'guardduty', disposition: 'archive', rule: 'attested' }))).toBe(true);
    });
    expect(await store.decisionOf('cloudtrail', 'e-1')).toBe('finding');
    expect(await store.decisionOf('cloudtrail', 'e-2')).toBe('suppressed');
    expect(await store.decisionOf('guardduty', 'e-1')).toBe('archive');
    expect(await store.withTransaction((tx) => tx.takeDecision('cloudtrail', 'e-1'))).toEqual({ disposition: 'finding', rule: 'external' });
    expect(await store.decisionOf('cloudtrail', 'e-1')).toBeNull();
    expect(await store.decisionOf('cloudtrail', 'e-3')).toBe('finding');
    await expect(store.findingsForKey('ASIAY34FZKBOKMUTVV7A', T - 1, T + 1)).rejects.toThrow(/keeps only their verdicts/);
    await expect(store.listDecisions({ sinceMs: 0, disposition: null, limit: 10 })).rejects.toThrow(/keeps only their verdicts/);
  });

  it('a saved verdict is undone with its transaction', async () => {
    const store = new MemoryStore({ decisions: 'verdict' });
    await expect(
      store.withTransaction(async (tx) => {
        await tx.saveDecision(decision());
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await store.decisionOf('cloudtrail', 'e-1')).toBeNull();
    expect(await store.withTransaction((tx) => tx.saveDecision(decision()))).toBe(true);
  });
});
