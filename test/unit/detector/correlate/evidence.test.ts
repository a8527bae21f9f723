/** Evidence order: the nearest sightings first, as a sort of all of them cut to the first few. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { distanceMs, nearestSightings } from '../../../../detector/correlate/evidence.js';
import type { Sighting } from '../../../../detector/correlate/types.js';

const sighting = (firstSeenMs: number, lastSeenMs: number, clientIp: string): Sighting => ({
  gatewayId: 'gw1',
  clientIp,
  network: 'vpc-prod',
  firstSeenMs,
  lastSeenMs,
  count: 1,
  host: 'sts.amazonaws.com',
  service: 'sts',
  region: null,
  action: null,
  accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
  mode: 'inspect',
  capture: 'explicit',
  outcome: 'ok',
});

describe('nearestSightings', () => {
  it('nearest first, the later one first when as near, else in the order given', () => {
    const [a, b, c, d] = [sighting(0, 10, 'a'), sighting(90, 95, 'b'), sighting(100, 100, 'c'), sighting(95, 100, 'd')];
    expect(nearestSightings([a, b, c, d], 100).map((s) => s.clientIp)).toEqual(['c', 'd', 'b', 'a']);
    expect(nearestSightings([a, b, c, d], 100, 2).map((s) => s.clientIp)).toEqual(['c', 'd']);
  });

  it('is a stable sort of all of them by distance, then latest, cut to max', () => {
    const span = fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 10 }));
    fc.assert(
      fc.property(fc.array(span, { maxLength: 25 }), fc.integer({ min: -5, max: 45 }), fc.integer({ min: 1, max: 7 }), (spans, at, max) => {
        const sightings = spans.map(([s, len], i) => sighting(s, s + len, `10.0.0.${i}`));
        const expected = [...sightings].sort((x, y) => distanceMs(x, at) - distanceMs(y, at) || y.lastSeenMs - x.lastSeenMs).slice(0, max);
        expect(nearestSightings(sightings, at, max)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});
