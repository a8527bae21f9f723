/**
 * One leader among the detectors that share a store. Leader work (GuardDuty
 * polling and archiving, retention pruning, finding resolution, the store's
 * outboxes: Security Hub, findings webhook, GuardDuty archive calls) runs on
 * the leader only; ingest, CloudTrail and pending decisions run everywhere.
 *
 * The lock is the store's (PostgreSQL: a session advisory lock on a connection
 * of its own, postgres-leader.ts); an embedded store has one process, which
 * leads from the start (`alwaysLeader`). The election is a loop over the lock:
 *
 *   every `intervalMs`:  follower ─ tryAcquire ─┬─ got it ─────▶ leader (onChange true)
 *                                               └─ busy / error ─▶ follower
 *                        leader ─── check ──────┬─ alive ──────▶ leader
 *                                               └─ failed ─────▶ follower (onChange false), session closed
 *   the lock's session ends (error, server gone): leader ─▶ follower at once
 *
 * A leader whose session ended may no longer hold the lock (the server drops a
 * session's advisory locks with it), so it steps down before anything else; a
 * follower takes over within one interval of the session's end.
 */

export type LeaderRole = 'leader' | 'follower';

/** What the election learned: the lock was taken or not, the held session answered, or it is gone. */
export type LeaderObservation =
  { kind: 'acquired' } | { kind: 'busy' } | { kind: 'alive' } | { kind: 'lost'; reason: string } | { kind: 'error'; reason: string };

export interface LeaderTransition {
  role: LeaderRole;
  /** gained / lost: leader work starts / stops; null: no change. */
  change: 'gained' | 'lost' | null;
  /** Close the lock's session (a leader that can no longer vouch for it lets it go). */
  closeSession: boolean;
}

/** The election's state machine: pure. */
export function leaderTransition(role: LeaderRole, o: LeaderObservation): LeaderTransition {
  if (role === 'follower')
    return o.kind === 'acquired'
      ? { role: 'leader', change: 'gained', closeSession: false }
      : { role: 'follower', change: null, closeSession: o.kind === 'lost' || o.kind === 'error' };
  switch (o.kind) {
    case 'alive':
    case 'acquired':
      return { role: 'leader', change: null, closeSession: false };
    case 'busy':
      // The lock is held by someone else: this session no longer holds it.
      return { role: 'follower', change: 'lost', closeSession: true };
    case 'lost':
    case 'error':
      return { role: 'follower', change: 'lost', closeSession: true };
  }
}

/** The store's lock, as the election uses it (I/O). */
export interface LeaderLock {
  /** Tries to take the lock (connecting first when needed): true when this process holds it now. */
  tryAcquire(): Promise<boolean>;
  /** A round trip on the session that holds the lock: rejects when it did not answer. */
  check(): Promise<void>;
  /** Closes the session (its lock goes with it). */
  close(): Promise<void>;
  /** `cb` is told when the session ends without close() (an error, the server went away). */
  onLost(cb: (reason: string) => void): void;
}

export interface LeaderElectionOptions {
  lock: LeaderLock;
  /** How often a follower tries the lock and a leader checks its session (store.postgres.leader_check). */
  intervalMs: number;
  /** Leadership gained (true) or lost (false), with why; changes are told one at a time, in order. */
  onChange: (leader: boolean, reason: string) => Promise<void> | void;
  /** A try or check failed for a reason other than the lock being held (logged by the caller). */
  onError?: (reason: string) => void;
}

/** The loop over a LeaderLock. */
export class LeaderElection {
  private role: LeaderRole = 'follower';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private changes: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: LeaderElectionOptions) {
    o.lock.onLost((reason) => void this.observe({ kind: 'lost', reason }));
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  /** Tries at once, then every interval. */
  async start(): Promise<void> {
    await this.round();
    this.timer = setInterval(() => void this.round(), this.o.intervalMs);
    this.timer.unref();
  }

  /** One try or check (concurrent calls share it). */
  round(): Promise<void> {
    this.running ??= this.roundOnce().finally(() => (this.running = null));
    return this.running;
  }

  private async roundOnce(): Promise<void> {
    if (this.stopped) return;
    let o: LeaderObservation;
    try {
      if (this.role === 'leader') {
        await this.o.lock.check();
        o = { kind: 'alive' };
      } else o = (await this.o.lock.tryAcquire()) ? { kind: 'acquired' } : { kind: 'busy' };
    } catch (err) {
      o = { kind: 'error', reason: (err as Error).message };
      this.o.onError?.(o.reason);
    }
    await this.observe(o);
  }

  private async observe(o: LeaderObservation): Promise<void> {
    if (this.stopped) return;
    const t = leaderTransition(this.role, o);
    this.role = t.role;
    if (t.closeSession) await this.o.lock.close().catch(() => undefined);
    if (t.change !== null) {
      const reason =
        o.kind === 'acquired'
          ? 'took the lock'
          : o.kind === 'lost' || o.kind === 'error'
            ? `lock session ${o.reason}`
            : 'the lock is held by another detector';
      const leader = t.change === 'gained';
      this.changes = this.changes.then(() => this.o.onChange(leader, reason)).catch(() => undefined);
    }
    await this.changes;
  }

  /** Stops trying; a leader steps down (its leader work is stopped through onChange) and the session is closed. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    const wasLeader = this.role === 'leader';
    this.stopped = true;
    this.role = 'follower';
    if (wasLeader) this.changes = this.changes.then(() => this.o.onChange(false, 'stopping')).catch(() => undefined);
    await this.changes;
    await this.o.lock.close().catch(() => undefined);
  }
}

/** The lock of a store only one process uses (SQLite, memory): always held. */
export const ALWAYS_HELD: LeaderLock = {
  tryAcquire: () => Promise.resolve(true),
  check: () => Promise.resolve(),
  close: () => Promise.resolve(),
  onLost: () => undefined,
};
