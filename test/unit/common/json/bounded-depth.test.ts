import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { boundDepth, exceedsDepth, MAX_RECORD_DEPTH, TRUNCATED_MARKER } from '../../../../common/json/bounded-depth.js';

/** `levels` nested objects around a leaf, built from text as a hostile sender would (no recursion to build it). */
function nested(levels: number): unknown {
  return JSON.parse(`${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);
}

describe('exceedsDepth', () => {
  it('counts objects and arrays, not scalars', () => {
    expect(exceedsDepth(1, 0)).toBe(false);
    expect(exceedsDepth({}, 0)).toBe(true);
    expect(exceedsDepth({}, 1)).toBe(false);
    expect(exceedsDepth({ a: [1, { b: 2 }] }, 2)).toBe(true);
    expect(exceedsDepth({ a: [1, { b: 2 }] }, 3)).toBe(false);
    expect(exceedsDepth(nested(MAX_RECORD_DEPTH))).toBe(false);
    expect(exceedsDepth(nested(MAX_RECORD_DEPTH + 1))).toBe(true);
  });

  it('walks a million levels without overflowing the stack, under any limit', () => {
    expect(exceedsDepth(nested(1_000_000))).toBe(true);
    expect(exceedsDepth(nested(1_000_000), 5_000)).toBe(true);
    expect(exceedsDepth(nested(1_000_000), 2_000_000)).toBe(false);
  });

  it('answers as the depth measured another way, for any value and limit', () => {
    // Depth from the JSON text: the deepest run of unclosed brackets outside strings.
    const depthOf = (v: unknown): number => {
      let d = 0;
      let most = 0;
      let inString = false;
      const text = JSON.stringify(v);
      for (let i = 0; i < text.length; i++) {
        const ch = text[i];
        if (inString) {
          if (ch === '\\') i++;
          else if (ch === '"') inString = false;
        } else if (ch === '"') inString = true;
        else if (ch === '{' || ch === '[') most = Math.max(most, ++d);
        else if (ch === '}' || ch === ']') d--;
      }
      return most;
    };
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 10 }), fc.integer({ min: 0, max: 12 }), (value, max) => {
        expect(exceedsDepth(value, max)).toBe(depthOf(value) > max);
      }),
      { numRuns: 500 },
    );
  });
});

describe('boundDepth', () => {
  it('returns a shallow enough value itself', () => {
    const v = { eventID: 'x', requestParameters: { a: [1, 2, { b: null }] } };
    const r = boundDepth(v);
    expect(r.truncated).toBe(false);
    expect(r.value).toBe(v);
  });

  it('cuts what nests deeper than the limit, keeps the rest, and the copy can be serialised', () => {
    const deep = JSON.parse(
      `{"eventID":"e-1","list":[1,"two"],"requestParameters":${'[{"k":'.repeat(5_000)}0${'}]'.repeat(5_000)}}`,
    ) as unknown;
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    const r = boundDepth(deep, 6);
    expect(r.truncated).toBe(true);
    expect(r.value).toEqual({
      eventID: 'e-1',
      list: [1, 'two'],
      requestParameters: [{ k: [{ k: [TRUNCATED_MARKER] }] }],
    });
    expect(JSON.parse(JSON.stringify(boundDepth(deep).value))).toBeTruthy();
  });

  it('keeps a parsed "__proto__" key as a plain field', () => {
    const v = JSON.parse(`{"__proto__":{"polluted":${'['.repeat(10)}${']'.repeat(10)}}}`) as Record<string, unknown>;
    const r = boundDepth(v, 3).value as Record<string, unknown>;
    expect(Object.getPrototypeOf(r)).toBe(Object.prototype);
    expect(Object.keys(r)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('never leaves anything deeper than the limit, and changes nothing within it', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 1, max: 8 }), (value, max) => {
        const r = boundDepth(value, max);
        expect(exceedsDepth(r.value, max)).toBe(false);
        expect(r.truncated).toBe(exceedsDepth(value, max));
        if (!r.truncated) expect(r.value).toBe(value);
      }),
    );
  });
});
