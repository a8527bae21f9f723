/**
 * An embedded, synchronous store engine (SQLite through better-sqlite3, or
 * memory) behind the asynchronous DetectorStore: every operation and every
 * transaction takes one lock in turn, so nothing runs between a
 * transaction's BEGIN and its COMMIT or ROLLBACK except that transaction.
 *
 *   op ───────────────▶ lock ─▶ engine.op() ─▶ release
 *   withTransaction ──▶ lock ─▶ BEGIN ─▶ await fn(tx) ─┬─ resolves ─▶ COMMIT ───┬─▶ release
 *                                 (tx ops: engine.op())  └─ rejects ─▶ ROLLBACK ─┘
 *   tx.savepoint ─▶ SAVEPOINT ─▶ await fn(tx) ─┬─ resolves ─▶ RELEASE
 *                                              └─ rejects ─▶ ROLLBACK TO, RELEASE ─▶ rejects
 *
 * Without the lock, a write arriving while a transaction awaits (a telemetry
 * batch during a CloudTrail record) would run inside that transaction on the
 * one connection and be rolled back with it.
 */
import { STORE_OPERATIONS, type DetectorStore, type StoreOps, type StoreTx, type TransactionalEngine } from './store.js';

/** A FIFO lock for async work. */
export class AsyncLock {
  private held = false;
  private readonly waiting: (() => void)[] = [];

  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.held = true;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // Handed over while still held: nothing can slip in between.
      if (next !== undefined) next();
      else this.held = false;
    }
  }
}

type Operation = (...args: unknown[]) => unknown;

// The operations are built per name in the constructor; this declares them on the class.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unused-vars
export interface SerialStore<E extends TransactionalEngine> extends StoreOps {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class SerialStore<E extends TransactionalEngine> implements DetectorStore {
  private readonly lock = new AsyncLock();
  private closed = false;
  /** The prototype of every transaction's handle: its operations go straight to the engine while it is the open one. */
  private readonly handle: Record<string, Operation> = {};
  private openTx: StoreTx | null = null;
  /** Savepoints open in the transaction, innermost last. */
  private savepoints = 0;
  /** What the open transaction runs once it has committed. */
  private commitHooks: (() => void)[] = [];

  constructor(protected readonly engine: E) {
    const self = this as unknown as Record<string, Operation>;
    const ops = engine as unknown as Record<string, Operation>;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the handle's methods need both the store and the handle (their `this`)
    const store = this;
    for (const name of STORE_OPERATIONS) {
      const op = (ops[name] as Operation).bind(engine);
      self[name] = (...args: unknown[]) => this.lock.run(() => op(...args));
      this.handle[name] = function (this: StoreTx, ...args: unknown[]) {
        if (store.openTx !== this)
          return Promise.reject(new Error(`store transaction already ended: ${name} must run in a transaction of its own`));
        try {
          return Promise.resolve(op(...args));
        } catch (err) {
          return Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
    }
    this.handle.savepoint = async function (this: StoreTx, fn: unknown) {
      if (store.openTx !== this) throw new Error('store transaction already ended: savepoint must run in a transaction of its own');
      return store.runSavepoint(this, fn as (tx: StoreTx) => Promise<unknown>);
    };
    this.handle.afterCommit = function (this: StoreTx, fn: unknown) {
      if (store.openTx !== this) throw new Error('store transaction already ended: afterCommit must run in a transaction of its own');
      store.commitHooks.push(fn as () => void);
    };
    // One transaction at a time: no other transaction can hold a finding.
    this.handle.lockFindings = () => Promise.resolve();
  }

  private async runSavepoint<T>(tx: StoreTx, fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const depth = ++this.savepoints;
    const hooks = this.commitHooks.length;
    this.engine.savepoint();
    const ended = () => {
      // Another savepoint begun beside this one and still open would be ended in its place.
      if (this.savepoints !== depth) throw new Error('savepoints of one transaction must run one at a time');
      this.savepoints--;
    };
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      ended();
      this.engine.rollbackToSavepoint();
      this.commitHooks.length = hooks;
      throw err;
    }
    ended();
    this.engine.releaseSavepoint();
    return result;
  }

  async withTransaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const { result, hooks } = await this.lock.run(async () => {
      const tx = Object.create(this.handle) as StoreTx;
      this.openTx = tx;
      this.savepoints = 0;
      this.commitHooks = [];
      this.engine.begin();
      try {
        const result = await fn(tx);
        this.openTx = null;
        this.engine.commit();
        return { result, hooks: this.commitHooks };
      } catch (err) {
        this.openTx = null;
        this.engine.rollback();
        throw err;
      } finally {
        this.commitHooks = [];
      }
    });
    runCommitHooks(hooks);
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lock.run(() => this.engine.close());
  }
}

/** Runs a committed transaction's hooks, each even when one before it threw; a throw is passed on, saying the transaction committed. */
export function runCommitHooks(hooks: readonly (() => void)[]): void {
  let failure: Error | null = null;
  for (const hook of hooks) {
    try {
      hook();
    } catch (err) {
      failure ??= err instanceof Error ? err : new Error(String(err));
    }
  }
  if (failure !== null)
    throw new Error(`the transaction committed, but a hook run after the commit failed: ${failure.message}`, {
      cause: failure,
    });
}
