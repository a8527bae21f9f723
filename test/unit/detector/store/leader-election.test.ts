/**
 * The leader election's state machine: a follower leads once it takes the
 * lock; a leader steps down (and lets its session go) as soon as the session
 * fails, ends or finds the lock held by another.
 */
import { describe, expect, it } from 'vitest';
import { leaderTransition, type LeaderObservation } from '../../../../detector/store/leader-election.js';

describe('leaderTransition', () => {
  it('a follower leads only when it took the lock', () => {
    expect(leaderTransition('follower', { kind: 'acquired' })).toEqual({ role: 'leader', change: 'gained', closeSession: false });
    expect(leaderTransition('follower', { kind: 'busy' })).toEqual({ role: 'follower', change: null, closeSession: false });
  });

  it('a follower whose session failed lets it go and tries again with a new one', () => {
    for (const o of [
      { kind: 'error', reason: 'connect ECONNREFUSED' },
      { kind: 'lost', reason: 'ended' },
    ] as LeaderObservation[])
      expect(leaderTransition('follower', o)).toEqual({ role: 'follower', change: null, closeSession: true });
  });

  it('a leader stays while its session answers', () => {
    expect(leaderTransition('leader', { kind: 'alive' })).toEqual({ role: 'leader', change: null, closeSession: false });
  });

  it('a leader steps down at once when its session fails, ends, or another holds the lock', () => {
    for (const o of [
      { kind: 'error', reason: 'Query read timeout' },
      { kind: 'lost', reason: 'failed: Connection terminated unexpectedly' },
      { kind: 'busy' },
    ] as LeaderObservation[])
      expect(leaderTransition('leader', o)).toEqual({ role: 'follower', change: 'lost', closeSession: true });
  });
});
