/**
 * proxy.max_tunnels across proxy workers: the primary holds the cap, each
 * worker leases slots from it in blocks and admits tunnels from its lease
 * without asking (no round trip per tunnel). A worker that runs out asks for
 * more and its new tunnels wait for the answer; when the free budget cannot
 * cover a waiting worker, the primary recalls the other workers' spare slots
 * first. The sum of the leases never exceeds the cap, so neither do the
 * tunnels; a worker that gets no answer in time refuses (the cap holds even
 * when the primary is slow). Pure bookkeeping: the messages are the caller's.
 *
 *   worker: take() ─ spare slot? ─yes─▶ admitted (spare low: ask for a block, in the background)
 *                        └─no─▶ lease-want(waiting) ─▶ primary: free? grant : recall others' spare, then grant what there is
 *                                                        lease n ─▶ admit the waiting (none left to grant: refuse them)
 *   worker: give() ─ more than two blocks spare ─▶ lease-return (down to one block)
 */

/** How long a waiting worker's ask may take at the primary while other workers' spare slots are recalled. */
export const RECALL_MS = 250;
/** How long a new tunnel waits for slots before it is refused as over the cap. */
export const LEASE_WAIT_MS = 2_000;

/** The block a worker leases at a time and keeps spare at most: small against the cap, at least 1. */
export function leaseBlock(cap: number, workers: number): number {
  return Math.max(1, Math.floor(cap / (8 * Math.max(1, workers))));
}

export interface BudgetOptions {
  cap: number;
  workers: number;
  /** `waiting`: the ask this answers had connections waiting on it. */
  grant(worker: number, n: number, cap: number, waiting: boolean): void;
  recall(worker: number): void;
}

interface Want {
  n: number;
  /** Workers asked to give their spare slots back, not answered yet. */
  recalling: Set<number>;
  timer: NodeJS.Timeout | null;
}

/** The primary's side. */
export class TunnelBudget {
  private cap: number;
  private readonly held: number[];
  private readonly wants = new Map<number, Want>();

  constructor(private readonly opts: BudgetOptions) {
    this.cap = opts.cap;
    this.held = new Array<number>(opts.workers).fill(0);
  }

  get leased(): number {
    return this.held.reduce((a, b) => a + b, 0);
  }

  private get free(): number {
    return Math.max(0, this.cap - this.leased);
  }

  setCap(cap: number): void {
    this.cap = cap;
    // Lowered below what is leased: every worker gives back its spare slots.
    if (this.leased > cap) for (let i = 0; i < this.held.length; i++) if ((this.held[i] ?? 0) > 0) this.opts.recall(i);
  }

  /**
   * Worker `i` asks for `n` more slots. `waiting`: connections wait on the answer, so other workers'
   * spare slots are recalled when the free budget is short; otherwise (a top-up) it gets what is free.
   */
  want(i: number, n: number, waiting: boolean): void {
    if (this.wants.has(i)) return;
    // A top-up while others wait for recalled slots would take them from under those waiting.
    if (!waiting) return this.grant(i, this.wants.size > 0 ? 0 : n, false);
    if (this.free >= n) return this.grant(i, n, true);
    const recalling = new Set<number>();
    for (let j = 0; j < this.held.length; j++)
      if (j !== i && (this.held[j] ?? 0) > 0) {
        recalling.add(j);
        this.opts.recall(j);
      }
    if (recalling.size === 0) return this.grant(i, n, true);
    const want: Want = { n, recalling, timer: null };
    want.timer = setTimeout(() => this.settle(i), RECALL_MS);
    want.timer.unref();
    this.wants.set(i, want);
  }

  /** Worker `i` gives back `n` slots (n may be 0: its answer to a recall). */
  giveBack(i: number, n: number): void {
    this.held[i] = Math.max(0, (this.held[i] ?? 0) - n);
    for (const [j, want] of this.wants) {
      want.recalling.delete(i);
      if (want.recalling.size === 0 || this.free >= want.n) this.settle(j);
    }
  }

  /** Worker `i` is gone, and its tunnels with it. */
  forget(i: number): void {
    const want = this.wants.get(i);
    if (want?.timer) clearTimeout(want.timer);
    this.wants.delete(i);
    this.giveBack(i, this.held[i] ?? 0);
  }

  private settle(i: number): void {
    const want = this.wants.get(i);
    if (!want) return;
    if (want.timer) clearTimeout(want.timer);
    this.wants.delete(i);
    this.grant(i, want.n, true);
  }

  private grant(i: number, n: number, waiting: boolean): void {
    const g = Math.min(n, this.free);
    this.held[i] = (this.held[i] ?? 0) + g;
    this.opts.grant(i, g, this.cap, waiting);
  }
}

export interface TunnelAdmission {
  /** A slot for one more tunnel now, or false: the cap is reached. */
  take(): boolean | Promise<boolean>;
  /** The tunnel a slot was taken for has ended. */
  give(): void;
}

export interface LeaseOptions {
  workers: number;
  /** proxy.max_tunnels, until the primary's answers say otherwise. */
  cap: number;
  want(n: number, waiting: boolean): void;
  giveBack(n: number): void;
}

/** A worker's side: the slots it holds and uses. */
export class TunnelLease implements TunnelAdmission {
  private held = 0;
  private used = 0;
  private cap: number;
  /** The ask in flight: a top-up, or one that connections wait on. */
  private asking: 'top-up' | 'waiting' | null = null;
  /** What the ask in flight asked for. */
  private askedFor = 0;
  private readonly waiters: { resolve(ok: boolean): void; timer: NodeJS.Timeout }[] = [];

  constructor(private readonly opts: LeaseOptions) {
    this.cap = opts.cap;
  }

  /** Slots held now (used and spare). */
  get leased(): number {
    return this.held;
  }

  private get block(): number {
    return leaseBlock(this.cap, this.opts.workers);
  }

  take(): boolean | Promise<boolean> {
    if (this.used < this.held) {
      this.used++;
      if (this.held - this.used < Math.ceil(this.block / 2)) this.ask(false);
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const waiter = {
        resolve,
        timer: setTimeout(() => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          resolve(false);
        }, LEASE_WAIT_MS),
      };
      this.waiters.push(waiter);
      this.ask(true);
    });
  }

  give(): void {
    this.used = Math.max(0, this.used - 1);
    // More than two blocks spare: back to one (not a message per tunnel as a burst winds down).
    const spare = this.held - this.used;
    if (spare > 2 * this.block && this.waiters.length === 0) this.returnSlots(spare - this.block);
  }

  /** The primary's answer: `n` more slots (0: none free); `cap` the whole agent's; `waiting` echoes the ask. */
  granted(n: number, cap: number, waiting: boolean): void {
    const answered = this.asking === (waiting ? 'waiting' : 'top-up');
    const short = answered && n < this.askedFor;
    if (answered) this.asking = null;
    this.cap = cap;
    this.held += n;
    while (this.waiters.length > 0 && this.used < this.held) {
      const w = this.waiters.shift()!;
      clearTimeout(w.timer);
      this.used++;
      w.resolve(true);
    }
    // Less than a waiting ask asked for: the cap is reached for those still waiting.
    if (waiting && short && this.used >= this.held) {
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.resolve(false);
      }
    }
    if (this.waiters.length > 0) this.ask(true);
  }

  /** The primary wants the spare slots back (another worker is short, or the cap went down). */
  recalled(): void {
    this.returnSlots(Math.max(0, this.held - this.used), true);
  }

  private returnSlots(n: number, always = false): void {
    if (n <= 0 && !always) return;
    this.held -= n;
    this.opts.giveBack(n);
  }

  private ask(waiting: boolean): void {
    if (this.asking === 'waiting' || (this.asking === 'top-up' && !waiting)) return;
    this.asking = waiting ? 'waiting' : 'top-up';
    this.askedFor = Math.max(this.block, this.waiters.length);
    this.opts.want(this.askedFor, waiting);
  }
}
