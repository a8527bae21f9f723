/**
 * The in-memory store's replay options: values kept as handed over, and
 * decision rows without their detail. Everything else a later read needs
 * (the disposition of an event, a key's findings) answers as with the full rows.
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

describe('MemoryStore decisionDetails: false', () => {
  it('keeps what later reads need and lists decisions with a null detail', async () => {
    const store = new MemoryStore({ copyValues: false, decisionDetails: false });
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
