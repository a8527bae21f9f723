/** replay's decision line in pieces: joined, the very line of the decision record, whatever its texts hold. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decisionLine, decisionLineParts } from '../../../../detector/replay/replay.js';
import { cloudTrailDecisionRow, decisionRecord } from '../../../../detector/decisions/record.js';
import type { Decision } from '../../../../detector/correlate/types.js';

const T = Date.parse('2026-11-25T00:00:00Z');

function decision(reason: string, eventId = 'e-1'): Decision {
  return {
    eventId,
    eventTime: '2026-11-25T00:00:00Z',
    accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
    sourceIPAddress: '203.0.113.5',
    disposition: 'suppressed',
    rule: 'attested',
    severity: null,
    gatewayId: 'gw-a',
    evidence: [],
    instanceId: null,
    reason,
  };
}

const whole = (d: Decision) => JSON.stringify(decisionRecord(cloudTrailDecisionRow(d, T, T + 5)));

describe('decisionLineParts', () => {
  it.each([
    'gateway gw-a saw key ASIA…TV7A from 10.20.1.4 (vpc-prod) at 00:00:00Z',
    '',
    '"reason":""',
    'quotes " and \\ and \n and \u2028',
  ])('joins to the decision record line for reason %j', (reason) => {
    const d = decision(reason, '"reason":""');
    expect(decisionLineParts(d, T, T + 5).join('')).toBe(whole(d));
    expect(decisionLine(d, T, T + 5)).toBe(whole(d));
  });

  it('joins to the decision record line for any reason and event ID', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string(), (reason, id) => {
        const d = decision(reason, id);
        return decisionLineParts(d, T, T + 5).join('') === whole(d);
      }),
      { numRuns: 2_000 },
    );
  });

  it('leaves the decision as it was', () => {
    const d = decision('key ASIA…TV7A used from 198.51.100.7');
    const before = JSON.stringify(d);
    decisionLineParts(d, T, T + 5);
    expect(JSON.stringify(d)).toBe(before);
    expect(Object.keys(d)).toEqual(Object.keys(decision('')));
  });

  it('is one line of valid JSON for a decision without a text reason (not one the rules make)', () => {
    const d = { ...decision('x'), reason: undefined } as unknown as Decision;
    const parts = decisionLineParts(d, T, T + 5);
    expect(parts).toHaveLength(1);
    expect(() => JSON.parse(parts.join('')) as unknown).not.toThrow();
  });
});
