import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clockTimeOf, isoTime } from '../../../../common/time/iso-time.js';

describe('isoTime', () => {
  it.each([0, -1, 999, 1000, 951_782_400_000, Date.parse('2026-11-25T13:01:07.123Z'), 253_402_300_799_999, 253_402_300_800_000, 1.5])(
    'matches toISOString for %d',
    (ms) => expect(isoTime(ms)).toBe(new Date(ms).toISOString()),
  );

  it('matches toISOString for any millisecond, also when times of one second and of seconds sharing its slot alternate', () => {
    const near = Date.parse('2026-11-25T00:00:00Z');
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.integer({ min: near - 10_000, max: near + 10_000 }),
            // 4096 seconds apart: the same slot of the table.
            fc.integer({ min: 0, max: 3 }).map((k) => near + k * 4_096_000 + 5),
            fc.integer({ min: -62_167_219_200_000 - 10 ** 12, max: 253_402_300_799_999 + 10 ** 12 }),
          ),
          { minLength: 1, maxLength: 50 },
        ),
        (times) =>
          times.every(
            (ms) => isoTime(ms) === new Date(ms).toISOString() && clockTimeOf(ms) === `${new Date(ms).toISOString().slice(11, 19)}Z`,
          ),
      ),
      { numRuns: 2_000 },
    );
  });

  it('throws like toISOString for a time it cannot print', () => {
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => clockTimeOf(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});
