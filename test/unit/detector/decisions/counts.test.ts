/** DecisionCounts: the `disposition/rule` summary, keys in the order first counted. */
import { describe, expect, it } from 'vitest';
import { DecisionCounts } from '../../../../detector/decisions/counts.js';

describe('DecisionCounts', () => {
  it('counts per disposition and rule, keyed disposition/rule in the order first seen', () => {
    const c = new DecisionCounts();
    expect(c.toRecord()).toEqual({});
    for (const [d, r] of [
      ['finding', 'external'],
      ['suppressed', 'attested'],
      ['finding', 'external'],
      ['finding', 'wrong-client'],
      ['suppressed', 'attested'],
      ['finding', 'external'],
    ] as const)
      c.add(d, r);
    const counted = c.toRecord();
    expect(counted).toEqual({ 'finding/external': 3, 'suppressed/attested': 2, 'finding/wrong-client': 1 });
    expect(Object.keys(counted)).toEqual(['finding/external', 'suppressed/attested', 'finding/wrong-client']);
  });
});
