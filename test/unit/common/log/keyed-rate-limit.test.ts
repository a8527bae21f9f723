import { describe, expect, it } from 'vitest';
import { KeyedRateLimit } from '../../../../common/log/keyed-rate-limit.js';

function limiter(maxKeys = 100) {
  let now = 1_000_000;
  const l = new KeyedRateLimit({ intervalMs: 60_000, maxKeys, now: () => now });
  return { l, advance: (ms: number) => (now += ms) };
}

describe('KeyedRateLimit', () => {
  it('lets the first line of a key through, holds the rest for the interval, then reports how many it held', () => {
    const { l, advance } = limiter();
    expect(l.take('10.0.0.1')).toEqual({ suppressed: 0 });
    expect(l.take('10.0.0.1')).toBeNull();
    advance(59_999);
    expect(l.take('10.0.0.1')).toBeNull();
    advance(1);
    expect(l.take('10.0.0.1')).toEqual({ suppressed: 2 });
    expect(l.take('10.0.0.1')).toBeNull();
  });

  it('keys are independent', () => {
    const { l } = limiter();
    expect(l.take('a')).toEqual({ suppressed: 0 });
    expect(l.take('b')).toEqual({ suppressed: 0 });
    expect(l.take('a')).toBeNull();
  });

  it('stays bounded: past maxKeys the key let through longest ago is forgotten', () => {
    const { l, advance } = limiter(3);
    for (const k of ['a', 'b', 'c']) {
      l.take(k);
      advance(1);
    }
    l.take('d');
    expect(l.size).toBe(3);
    expect(l.take('a')).toEqual({ suppressed: 0 }); // forgotten, so let through again
    expect(l.take('c')).toBeNull();
  });
});
