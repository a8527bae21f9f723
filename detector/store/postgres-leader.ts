/**
 * The leader lock on PostgreSQL: a session-level advisory lock
 * (`pg_try_advisory_lock`) held on a connection of its own, never a pooled
 * one (a pooled connection goes back to the pool and would take the lock to
 * whoever uses it next). The lock is per schema: detectors on one schema elect
 * one leader. When the process holding it dies, the server ends its session and
 * the lock with it, and a follower's next try takes it.
 *
 * The same connection LISTENs on the outbox channel: a row queued in the
 * outbox by any detector (store.enqueueDelivery NOTIFYs on commit) wakes the
 * leader's delivery at once (`onOutbox(sink)`).
 */
import pg from 'pg';
import type { LeaderLock } from './leader-election.js';
import type { PostgresTarget } from './postgres-connection.js';

/** Advisory lock class of the leader (the second key is the schema's name, hashed); migrations use 0x45570001. */
export const LEADER_LOCK_CLASS = 0x45570002;
/** The NOTIFY channel of the outbox; the payload is "schema sink". */
export const OUTBOX_CHANNEL = 'egress_witness_outbox';

export interface PostgresLeaderLockOptions {
  /** A check the server does not answer within this fails (ms). */
  checkTimeoutMs: number;
  /** A row was queued in this schema's outbox for `sink`. */
  onOutbox?: (sink: string) => void;
}

export class PostgresLeaderLock implements LeaderLock {
  private client: pg.Client | null = null;
  private schema: string | null = null;
  private lost: (reason: string) => void = () => undefined;

  constructor(
    private readonly target: PostgresTarget,
    private readonly o: PostgresLeaderLockOptions,
  ) {}

  onLost(cb: (reason: string) => void): void {
    this.lost = cb;
  }

  private async session(): Promise<{ client: pg.Client; schema: string }> {
    if (this.client !== null && this.schema !== null) return { client: this.client, schema: this.schema };
    const { max: _max, idleTimeoutMillis: _idle, ...config } = this.target.pool;
    const client = new pg.Client({
      ...config,
      application_name: 'egress-witness-detector-leader',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      query_timeout: this.o.checkTimeoutMs,
    });
    let ended = false;
    const end = (reason: string) => {
      if (ended) return;
      ended = true;
      if (this.client === client) {
        this.client = null;
        this.schema = null;
        this.lost(reason);
      }
    };
    client.on('error', (err) => end(`failed: ${err.message}`));
    client.on('end', () => end('ended'));
    client.on('notification', (n) => {
      if (n.channel !== OUTBOX_CHANNEL || n.payload === undefined) return;
      const space = n.payload.indexOf(' ');
      if (space > 0 && n.payload.slice(0, space) === this.schema) this.o.onOutbox?.(n.payload.slice(space + 1));
    });
    try {
      await client.connect();
      const schema = (await client.query<{ s: string | null }>('SELECT current_schema() AS s')).rows[0]?.s ?? null;
      if (schema === null) throw new Error('the search_path names no existing schema');
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      this.client = client;
      this.schema = schema;
      return { client, schema };
    } catch (err) {
      ended = true;
      await client.end().catch(() => undefined);
      throw new Error(`store.postgres ${this.target.describe}: leader lock: ${(err as Error).message}`, { cause: err });
    }
  }

  async tryAcquire(): Promise<boolean> {
    const { client, schema } = await this.session();
    const r = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS got', [LEADER_LOCK_CLASS, schema]);
    return r.rows[0]?.got === true;
  }

  async check(): Promise<void> {
    const c = this.client;
    if (c === null) throw new Error('no session');
    await c.query('SELECT 1');
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.schema = null;
    // Ending the session releases its advisory locks.
    if (c !== null) await c.end().catch(() => undefined);
  }
}
