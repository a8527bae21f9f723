/** The decision line built field by field: byte for byte JSON.stringify of the same decision record, whatever it holds. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cloudTrailDecisionJsonParts } from '../../../../detector/decisions/encode.js';
import { cloudTrailDecisionRow, decisionRecord } from '../../../../detector/decisions/record.js';
import { decisionLineParts } from '../../../../detector/replay/replay.js';
import type { Binding, Decision, Evidence } from '../../../../detector/correlate/types.js';

/** Any UTF-16 code unit (lone surrogates too), with the ones JSON escapes or treats specially often. */
const unit = fc.oneof(
  fc.constantFrom('"', '\\', '\n', '\r', '\t', '\b', '\f', '\u0000', '\u001f', '\u007f', '\u2028', '\u2029', '\ud800', '\udfff', '…', '/'),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 2 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 4 }),
);
const text = fc.string({ unit, maxLength: 40 });
const textOrNull = fc.option(text, { nil: null });
const num = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 5, 8, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_VALUE, 1e21, 1e-7),
);

const evidence: fc.Arbitrary<Evidence> = fc.record(
  {
    gatewayId: text,
    clientIp: text,
    network: textOrNull,
    firstSeen: text,
    lastSeen: text,
    count: num,
    host: text,
    service: textOrNull,
    region: textOrNull,
    action: textOrNull,
    mode: text,
    capture: text,
    deltaMs: num,
    binding: fc.constantFrom<Binding>('instance', 'other', 'unknown', 'translated'),
    clientInstanceId: textOrNull,
  },
  {
    requiredKeys: [
      'gatewayId',
      'clientIp',
      'network',
      'firstSeen',
      'lastSeen',
      'count',
      'host',
      'service',
      'region',
      'action',
      'mode',
      'capture',
      'deltaMs',
    ],
  },
);

/** Decisions as decide() builds them: a plain object, every key, in its order. */
const decision: fc.Arbitrary<Decision> = fc
  .record({
    eventId: text,
    eventTime: text,
    accessKeyId: textOrNull,
    sourceIPAddress: text,
    disposition: fc.oneof(fc.constantFrom('ignored', 'suppressed', 'finding'), text),
    rule: fc.oneof(fc.constantFrom('attested', 'wrong-client', 'external'), text),
    severity: fc.option(num, { nil: null }),
    gatewayId: textOrNull,
    evidence: fc.array(evidence, { maxLength: 5 }),
    instanceId: textOrNull,
    reason: text,
  })
  .map((d) => ({ ...d }) as Decision);

const ms = fc.integer({ min: 0, max: 253_402_300_799_999 });

const whole = (d: Decision, t: number, decided: number) => JSON.stringify(decisionRecord(cloudTrailDecisionRow(d, t, decided)));

describe('cloudTrailDecisionJsonParts', () => {
  it('joins to JSON.stringify of the decision record for any decision of the rules’ shape', () => {
    fc.assert(
      fc.property(decision, ms, ms, (d, t, decided) => {
        const parts = cloudTrailDecisionJsonParts(d, t, decided);
        expect(parts).not.toBeNull();
        expect(parts!.join('')).toBe(whole(d, t, decided));
        expect(parts![1]).toBe(JSON.stringify(d.reason));
        expect(parts![2]).toBe('}}');
      }),
      { numRuns: 3_000 },
    );
  });

  it('declines a decision of another shape, and decisionLineParts still prints its record exactly', () => {
    const reshaped = fc.oneof(
      // keys moved
      decision
        .chain((d) => fc.shuffledSubarray(Object.keys(d), { minLength: 11, maxLength: 11 }).map((keys) => ({ d, keys })))
        .map(({ d, keys }) => {
          const out: Record<string, unknown> = {};
          for (const k of keys) out[k] = (d as unknown as Record<string, unknown>)[k];
          return out;
        }),
      // a key more, a key less, a value of another type or undefined
      fc.tuple(decision, text, fc.anything()).map(([d, k, v]) => ({ ...d, [k]: v })),
      fc.tuple(decision, fc.constantFrom('eventId', 'severity', 'evidence', 'instanceId', 'reason')).map(([d, k]) => {
        const out: Record<string, unknown> = { ...d };
        delete out[k];
        return out;
      }),
      fc
        .tuple(decision, fc.constantFrom('accessKeyId', 'severity', 'evidence', 'instanceId', 'reason'), fc.anything())
        .map(([d, k, v]) => ({ ...d, [k]: v })),
    );
    fc.assert(
      fc.property(reshaped, ms, ms, (o, t, decided) => {
        const d = o as unknown as Decision;
        let expected: string;
        try {
          expected = whole(d, t, decided);
        } catch {
          return; // not printable as JSON at all (a BigInt): nothing to compare
        }
        const parts = cloudTrailDecisionJsonParts(d, t, decided);
        if (parts !== null) expect(parts.join('')).toBe(expected);
        expect(decisionLineParts(d, t, decided).join('')).toBe(expected);
      }),
      { numRuns: 2_000 },
    );
  });

  it('declines a decision with its own toJSON or a prototype of its own', () => {
    const d: Decision = {
      eventId: 'e-1',
      eventTime: '2026-11-25T00:00:00Z',
      accessKeyId: null,
      sourceIPAddress: '203.0.113.5',
      disposition: 'finding',
      rule: 'external',
      severity: 8,
      gatewayId: null,
      evidence: [],
      instanceId: null,
      reason: 'r',
    };
    expect(cloudTrailDecisionJsonParts(d, 0, 0)).not.toBeNull();
    const withToJson = Object.defineProperty({ ...d }, 'toJSON', { value: () => 'x', enumerable: false });
    expect(cloudTrailDecisionJsonParts(withToJson, 0, 0)).toBeNull();
    expect(cloudTrailDecisionJsonParts(Object.assign(Object.create({ inherited: 1 }) as Decision, d), 0, 0)).toBeNull();
  });
});
