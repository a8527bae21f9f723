import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isoFromMs } from '../../../../common/time/iso.js';

describe('isoFromMs', () => {
  it.each([
    0,
    -1,
    951_782_400_000 /* 2000-02-29 */,
    4_107_542_400_000 /* 2100-03-01 */,
    Date.parse('2026-11-25T13:01:07.123Z'),
    -62_167_219_200_000 /* 0000-01-01 */,
    253_402_300_799_999 /* 9999-12-31 */,
  ])('matches toISOString for %d', (ms) => expect(isoFromMs(ms)).toBe(new Date(ms).toISOString()));

  it('matches toISOString for any millisecond in years 0000-9999 (and beyond, by falling back)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -62_167_219_200_000 - 10 ** 12, max: 253_402_300_799_999 + 10 ** 12 }),
        (ms) => isoFromMs(ms) === new Date(ms).toISOString(),
      ),
      { numRuns: 20_000 },
    );
  });

  it('throws like toISOString for non-finite input', () => {
    expect(() => isoFromMs(Number.NaN)).toThrow(RangeError);
  });
});
