import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseSize } from '../../../../common/config/units.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10 * SECOND],
    ['5m', 5 * MINUTE],
    ['1h', HOUR],
    ['2d', 2 * DAY],
    ['1h30m', HOUR + 30 * MINUTE],
    ['1d2h3m4s5ms', DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND + 5],
    ['1.5s', 1500],
    ['0.25h', 15 * MINUTE],
    ['0s', 0],
    ['0', 0],
    ['10', 10 * SECOND],
    ['2.5', 2500],
    [' 10s ', 10 * SECOND],
    ['10S', 10 * SECOND],
    ['5M', 5 * MINUTE],
    ['1.5ms', 2],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    '',
    ' ',
    'ms',
    's',
    '10x',
    '10 s',
    '1h 30m',
    '-1s',
    '-5',
    '+5s',
    '1.0.0s',
    '.5s',
    '5.s',
    '1e3',
    '1e3s',
    '10sec',
    '10mins',
    '1w',
    'NaN',
    'Infinity',
    's10',
  ])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeNull();
  });

  it.each(['1m1m', '1s1s', '1h1h30m', '1d1d', '5ms1ms', '30m1h', '1ms1s', '30s1h', '1h1d', '10s5m', '1h30s1m'])(
    'rejects %j: units go from largest to smallest, each at most once',
    (text) => {
      expect(parseDuration(text)).toBeNull();
    },
  );

  it.each([
    ['1d1h', DAY + HOUR],
    ['1h1m', HOUR + MINUTE],
    ['1h1s', HOUR + SECOND],
    ['1m1ms', MINUTE + 1],
    ['90m', 90 * MINUTE],
  ])('accepts %j: units in order, with some left out', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['1.2344', 1234],
    ['1.2346', 1235],
    ['0.0001', 0],
    ['0.0004', 0],
    ['0.0006', 1],
    ['2.0006', 2001],
  ])('rounds bare fractional seconds %j to %d whole ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('rounds fractional numbers of seconds to whole ms', () => {
    expect(parseDuration(1.2344)).toBe(1234);
    expect(parseDuration(1.2346)).toBe(1235);
    expect(parseDuration(0.0004)).toBe(0);
    expect(parseDuration(0.0006)).toBe(1);
  });

  it('always gives whole milliseconds for bare seconds with a fraction', () => {
    fc.assert(
      fc.property(fc.nat({ max: 100_000 }), fc.stringMatching(/^\d{1,9}$/), fc.boolean(), (whole, frac, asNumber) => {
        const text = `${whole}.${frac}`;
        const ms = parseDuration(asNumber ? Number(text) : text);
        expect(Number.isInteger(ms)).toBe(true);
        expect(Math.abs(ms! - Number(text) * 1000)).toBeLessThanOrEqual(0.5 + 1e-6);
      }),
    );
  });

  it('takes numbers as seconds and rejects negative or non-finite ones', () => {
    expect(parseDuration(0)).toBe(0);
    expect(parseDuration(30)).toBe(30 * SECOND);
    expect(parseDuration(2.5)).toBe(2500);
    expect(parseDuration(-1)).toBeNull();
    expect(parseDuration(Number.NaN)).toBeNull();
    expect(parseDuration(Number.POSITIVE_INFINITY)).toBeNull();
  });

  it('adds up any combination of units written in order', () => {
    const part = fc.nat({ max: 1000 });
    fc.assert(
      fc.property(part, part, part, part, part, (d, h, m, s, ms) => {
        expect(parseDuration(`${d}d${h}h${m}m${s}s${ms}ms`)).toBe(d * DAY + h * HOUR + m * MINUTE + s * SECOND + ms);
      }),
    );
  });

  it('reads each unit alone, in any letter case', () => {
    const unit = fc.constantFrom(['ms', 1], ['s', SECOND], ['m', MINUTE], ['h', HOUR], ['d', DAY]);
    fc.assert(
      fc.property(fc.nat({ max: 100_000 }), unit, fc.boolean(), (n, [u, factor], upper) => {
        expect(parseDuration(`${n}${upper ? u.toUpperCase() : u}`)).toBe(n * factor);
      }),
    );
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [1, '1ms'],
    [999, '999ms'],
    [1500, '1500ms'],
    [SECOND, '1s'],
    [90 * SECOND, '90s'],
    [MINUTE, '1m'],
    [90 * MINUTE, '90m'],
    [HOUR, '1h'],
    [36 * HOUR, '36h'],
    [DAY, '1d'],
    [7 * DAY, '7d'],
  ])('%d ms is %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration for every whole number of milliseconds', () => {
    fc.assert(
      fc.property(fc.nat({ max: 400 * DAY }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
    );
  });

  it('round-trips values built from whole units (the common case in config files)', () => {
    const unit = fc.constantFrom(SECOND, MINUTE, HOUR, DAY);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), unit, (n, factor) => {
        const text = formatDuration(n * factor);
        expect(text).toMatch(/^\d+(ms|s|m|h|d)$/);
        expect(parseDuration(text)).toBe(n * factor);
      }),
    );
  });
});

describe('parseSize', () => {
  it.each([
    ['0', 0],
    ['10', 10],
    ['10b', 10],
    ['10B', 10],
    ['64KiB', 64 * 1024],
    ['64kib', 64 * 1024],
    ['1MiB', 1024 ** 2],
    ['1GiB', 1024 ** 3],
    ['1TiB', 1024 ** 4],
    ['10KB', 10_000],
    ['10kb', 10_000],
    ['10MB', 10_000_000],
    ['1GB', 1e9],
    ['1tb', 1e12],
    ['1.5KiB', 1536],
    ['1 KiB', 1024],
    [' 2MiB ', 2 * 1024 ** 2],
    ['1.5', 1],
  ])('%j is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'KiB', '1PiB', '1PB', '-1', '-1KiB', '1K', '1Ki', '1 K i B', '1e3', 'lots', '1KiB2', '0x10'])('rejects %j', (text) => {
    expect(parseSize(text)).toBeNull();
  });

  it('takes numbers as bytes, flooring fractions, and rejects negative or non-finite ones', () => {
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize(1.9)).toBe(1);
    expect(parseSize(-1)).toBeNull();
    expect(parseSize(Number.NaN)).toBeNull();
    expect(parseSize(Number.POSITIVE_INFINITY)).toBeNull();
  });

  it('multiplies by the binary or decimal unit, with or without a space, in any case', () => {
    const unit = fc.constantFrom(
      ['B', 1],
      ['KiB', 1024],
      ['MiB', 1024 ** 2],
      ['GiB', 1024 ** 3],
      ['TiB', 1024 ** 4],
      ['KB', 1e3],
      ['MB', 1e6],
      ['GB', 1e9],
      ['TB', 1e12],
    );
    fc.assert(
      fc.property(fc.nat({ max: 1000 }), unit, fc.boolean(), fc.constantFrom('', ' '), (n, [u, factor], lower, space) => {
        const text = `${n}${space}${lower ? (u as string).toLowerCase() : (u as string)}`;
        expect(parseSize(text)).toBe(n * factor);
      }),
    );
  });
});
