import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SpanIndex } from '../../../../detector/correlate/span-index.js';

describe('SpanIndex', () => {
  it('finds overlaps inclusively at both ends', () => {
    const idx = new SpanIndex<string>();
    idx.add(100, 200, 'a');
    idx.add(300, 300, 'b');
    expect(idx.overlapping(200, 250)).toEqual(['a']);
    expect(idx.overlapping(201, 299)).toEqual([]);
    expect(idx.overlapping(0, 100)).toEqual(['a']);
    expect(idx.overlapping(300, 300)).toEqual(['b']);
    expect(idx.hasOverlap(201, 299)).toBe(false);
    expect(idx.hasOverlap(150, 150)).toBe(true);
  });

  it('finds a long span that starts long before the query', () => {
    const idx = new SpanIndex<string>();
    for (let i = 0; i < 100; i++) idx.add(i * 10, i * 10 + 5, `short${i}`);
    idx.add(0, 10_000, 'long');
    expect(idx.overlapping(9_000, 9_001)).toEqual(['long']);
  });

  it('agrees with a linear scan for any spans, inserted in any order', () => {
    const span = fc.tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 500 }));
    fc.assert(
      fc.property(
        fc.array(span, { maxLength: 200 }),
        fc.array(fc.tuple(fc.integer({ min: -600, max: 11_000 }), fc.integer({ min: 0, max: 2_000 })), { minLength: 1, maxLength: 20 }),
        (spans, queries) => {
          const idx = new SpanIndex<number>();
          spans.forEach(([s, len], i) => idx.add(s, s + len, i));
          for (const [from, len] of queries) {
            const to = from + len;
            const expected = spans.flatMap(([s, l], i) => (s <= to && s + l >= from ? [i] : [])).sort((a, b) => a - b);
            expect(idx.overlapping(from, to).sort((a, b) => a - b)).toEqual(expected);
            expect(idx.hasOverlap(from, to)).toBe(expected.length > 0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
