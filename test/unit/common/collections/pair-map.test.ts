/** PairMap: a value per pair of strings; the pair's order matters and no pair is confused with another. */
import { describe, expect, it } from 'vitest';
import { PairMap } from '../../../../common/collections/pair-map.js';

describe('PairMap', () => {
  it('keeps a value per pair, replaces it on set, and tells pairs apart by both parts and their order', () => {
    const m = new PairMap<number>();
    expect(m.get('finding', 'external')).toBeUndefined();
    m.set('finding', 'external', 1);
    m.set('finding', 'wrong-client', 2);
    m.set('external', 'finding', 3);
    m.set('finding/external', '', 4);
    expect(m.get('finding', 'external')).toBe(1);
    expect(m.get('finding', 'wrong-client')).toBe(2);
    expect(m.get('external', 'finding')).toBe(3);
    expect(m.get('finding/external', '')).toBe(4);
    expect(m.get('suppressed', 'external')).toBeUndefined();
    m.set('finding', 'external', 5);
    expect(m.get('finding', 'external')).toBe(5);
  });
});
