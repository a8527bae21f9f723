/**
 * Detectors on one PostgreSQL schema: one leader through the session advisory
 * lock, held on a connection of its own; a leader whose session the server
 * ends steps down at once and another takes over at its next try; a row queued
 * in the outbox by any detector wakes the leader's listener on commit; due
 * pending rows claimed in one detector's transaction are skipped by another's;
 * one finding merged by two detectors at once loses neither update; two
 * transactions that deadlock leave one committed and the other rolled back
 * whole, for its caller to decide again.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../../detector/store/postgres-store.js';
import { LeaderElection } from '../../../detector/store/leader-election.js';
import { createTestSchema, POSTGRES_TEST_URL, postgresTestsRun, type TestSchema } from '../../helpers/postgres.js';
import { waitFor } from '../../helpers/detector.js';

const CHECK_MS = 300;

describe.runIf(postgresTestsRun(import.meta.filename))('PostgreSQL leader election', () => {
  let schema: TestSchema;
  const stores: PostgresStore[] = [];
  const elections: LeaderElection[] = [];

  beforeEach(async () => {
    schema = await createTestSchema(import.meta.filename);
  });

  afterEach(async () => {
    for (const e of elections.splice(0)) await e.stop();
    for (const s of stores.splice(0)) await s.close();
    await schema.drop();
  });

  async function detector(name: string, changes: string[], outbox: string[] = []): Promise<LeaderElection> {
    const store = await PostgresStore.open(schema.config());
    stores.push(store);
    const e = new LeaderElection({
      lock: store.leaderLock({ checkTimeoutMs: 2_000, onOutbox: (sink) => outbox.push(sink) }),
      intervalMs: CHECK_MS,
      onChange: (leader, reason) => void changes.push(`${name} ${leader ? 'leads' : 'follows'}: ${reason}`),
    });
    elections.push(e);
    await e.start();
    return e;
  }

  /** The server-side sessions that hold this schema's leader lock. */
  async function lockHolders(): Promise<number[]> {
    const c = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await c.connect();
    try {
      const r = await c.query<{ pid: number }>(
        `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objid = hashtext($2)::oid`,
        [0x45570002, schema.name],
      );
      return r.rows.map((row) => row.pid);
    } finally {
      await c.end();
    }
  }

  async function terminate(pid: number): Promise<void> {
    const c = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await c.connect();
    try {
      await c.query('SELECT pg_terminate_backend($1)', [pid]);
    } finally {
      await c.end();
    }
  }

  it('one of three detectors leads, on a session outside the pool; when the server ends that session another takes over', async () => {
    const changes: string[] = [];
    const all = [await detector('a', changes), await detector('b', changes), await detector('c', changes)];
    expect(all.map((e) => e.isLeader)).toEqual([true, false, false]);
    expect(changes).toEqual(['a leads: took the lock']);
    const [holder] = await lockHolders();
    expect(await lockHolders()).toHaveLength(1);
    // The pool's connections are not the lock's: every pool of a detector holds no advisory lock.
    const c = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await c.connect();
    const apps = await c.query<{ application_name: string }>('SELECT application_name FROM pg_stat_activity WHERE pid = $1', [holder]);
    await c.end();
    expect(apps.rows[0]?.application_name).toBe('egress-witness-detector-leader');

    await terminate(holder!);
    await waitFor(() => changes.some((l) => l.startsWith('a follows')), 'the old leader stepping down', 5_000);
    expect(all[0]!.isLeader).toBe(false);
    await waitFor(() => all.filter((e) => e.isLeader).length === 1, 'a new leader', 5_000);
    expect(changes.filter((l) => l.includes('leads'))).toHaveLength(2);
    const [next] = await lockHolders();
    expect(next).not.toBe(holder);
    // The old leader, a follower now, tries again with a new session and finds the lock held.
    await new Promise((r) => setTimeout(r, CHECK_MS * 3));
    expect(all.filter((e) => e.isLeader)).toHaveLength(1);
    expect(await lockHolders()).toHaveLength(1);
  });

  it('a leader that stops lets the lock go at once', async () => {
    const changes: string[] = [];
    const a = await detector('a', changes);
    const b = await detector('b', changes);
    await a.stop();
    expect(changes).toContain('a follows: stopping');
    await waitFor(() => b.isLeader, 'b taking over', 5_000);
  });

  it("a row queued in the outbox wakes the leader's listener when its transaction commits, and only for its own schema", async () => {
    const changes: string[] = [];
    const woken: string[] = [];
    await detector('a', changes, woken);
    const other = await createTestSchema(import.meta.filename);
    const otherStore = await PostgresStore.open(other.config());
    try {
      await otherStore.enqueueDelivery('webhook', 'finding-elsewhere', Date.now());
      const store = stores[0]!;
      let seenInside = -1;
      await store.withTransaction(async (tx) => {
        await tx.enqueueDelivery('guardduty-archive', 'finding-1', Date.now());
        await new Promise((r) => setTimeout(r, 200));
        seenInside = woken.length;
      });
      expect(seenInside).toBe(0);
      await waitFor(() => woken.length > 0, 'the notification', 5_000);
      expect(woken).toEqual(['guardduty-archive']);
    } finally {
      await otherStore.close();
      await other.drop();
    }
  });

  it("due pending rows claimed in one detector's transaction are skipped by another's", async () => {
    const [a, b] = [await PostgresStore.open(schema.config()), await PostgresStore.open(schema.config())];
    stores.push(a, b);
    for (let i = 0; i < 6; i++) await a.addPending({ eventId: `ev-${i}`, eventTimeMs: 1_000 + i, dueMs: 2_000 + i, raw: { i } });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let claimedByA: string[] = [];
    const first = a.withTransaction(async (tx) => {
      claimedByA = (await tx.duePending(10_000, 4)).map((p) => p.eventId);
      await held;
      for (const id of claimedByA) await tx.removePending(id);
    });
    await waitFor(() => claimedByA.length > 0, "a's claim");
    const claimedByB = await b.withTransaction(async (tx) => (await tx.duePending(10_000, 10)).map((p) => p.eventId));
    release();
    await first;
    expect(claimedByA).toEqual(['ev-0', 'ev-1', 'ev-2', 'ev-3']);
    expect(claimedByB).toEqual(['ev-4', 'ev-5']);
    expect((await b.duePending(10_000, 10)).map((p) => p.eventId)).toEqual(['ev-4', 'ev-5']);
  });

  it('one finding merged by two detectors at once: the second reads what the first wrote', async () => {
    const [a, b] = [await PostgresStore.open(schema.config()), await PostgresStore.open(schema.config())];
    stores.push(a, b);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let aRead = false;
    const merge = (s: PostgresStore, wait: Promise<void> | null) =>
      s.withTransaction(async (tx) => {
        const f = (await tx.getFinding('finding-1')) as { count: number } | null;
        aRead = true;
        if (wait) await wait;
        await tx.putFinding('finding-1', { count: (f?.count ?? 0) + 1 }, Date.now());
      });
    const first = merge(a, held);
    await waitFor(() => aRead, "a's read");
    let bDone = false;
    const second = merge(b, null).then(() => (bDone = true));
    await new Promise((r) => setTimeout(r, 300));
    // b waits for a's transaction: it has not read yet.
    expect(bDone).toBe(false);
    release();
    await Promise.all([first, second]);
    expect(await a.getFinding('finding-1')).toEqual({ count: 2 });
  });

  it('findings locked up front in one order: two transactions naming them in opposite orders wait in line', async () => {
    const [a, b] = [await PostgresStore.open(schema.config()), await PostgresStore.open(schema.config())];
    stores.push(a, b);
    let aLocked!: () => void;
    const locked = new Promise<void>((r) => (aLocked = r));
    const order: string[] = [];
    const first = a.withTransaction(async (tx) => {
      await tx.lockFindings(['finding-x', 'finding-y']);
      aLocked();
      await new Promise((r) => setTimeout(r, 300));
      await tx.putFinding('finding-x', { by: 'a' }, Date.now());
      order.push('a');
    });
    await locked;
    const second = b.withTransaction(async (tx) => {
      await tx.lockFindings(['finding-y', 'finding-x']);
      order.push('b');
      await tx.putFinding('finding-x', { by: 'b', after: await tx.getFinding('finding-x') }, Date.now());
    });
    await Promise.all([first, second]);
    expect(order).toEqual(['a', 'b']);
    expect(await a.getFinding('finding-x')).toEqual({ by: 'b', after: { by: 'a' } });
  });

  it('two transactions that deadlock in savepoints: one commits, the other is rolled back whole though its callback went on', async () => {
    const [a, b] = [await PostgresStore.open(schema.config()), await PostgresStore.open(schema.config())];
    stores.push(a, b);
    let aHolds!: () => void;
    let bHolds!: () => void;
    const aHeld = new Promise<void>((r) => (aHolds = r));
    const bHeld = new Promise<void>((r) => (bHolds = r));
    const parts: string[] = [];
    const crosswise = (s: PostgresStore, name: string, mine: string, theirs: string, held: () => void, other: Promise<void>) =>
      s.withTransaction(async (tx) => {
        await tx.savepoint(async (p) => {
          await p.getFinding(mine);
          await p.putFinding(mine, { by: name }, Date.now());
        });
        held();
        await other;
        try {
          await tx.savepoint(async (p) => {
            await p.getFinding(theirs);
            await p.putFinding(theirs, { by: name }, Date.now());
          });
          parts.push(`${name} ok`);
        } catch (err) {
          parts.push(`${name} ${(err as { code?: string }).code ?? 'failed'}`);
        }
        return name;
      });
    const results = await Promise.allSettled([
      crosswise(a, 'a', 'finding-x', 'finding-y', aHolds, bHeld),
      crosswise(b, 'b', 'finding-y', 'finding-x', bHolds, aHeld),
    ]);
    expect(parts.filter((p) => p.endsWith(' ok'))).toHaveLength(1);
    expect(parts.filter((p) => p.endsWith(' 40P01'))).toHaveLength(1);
    const committed = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const rolledBack = results.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    expect(committed).toHaveLength(1);
    expect(rolledBack).toEqual([expect.stringContaining("met another detector's transaction")]);
    // Only the winner's writes are there: both findings by it.
    const winner = committed[0]!;
    expect(parts).toContain(`${winner} ok`);
    expect([await a.getFinding('finding-x'), await a.getFinding('finding-y')]).toEqual([{ by: winner }, { by: winner }]);
  });
});
