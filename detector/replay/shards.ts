/**
 * How `replay --jobs N` splits CloudTrail records over N workers and puts their
 * decision lines back in the order one worker would have printed them. Pure:
 * no threads, files or streams here (parallel.ts runs the workers).
 *
 * Every worker holds all the evidence (the whole telemetry and inventory), so a
 * record is decided the same wherever it goes. What a record's decision also
 * depends on is the copy of its event kept before it (a repeat is decided once,
 * a copy that differs is a conflict): so the worker is chosen by the eventID,
 * and every copy of an event goes to the same one.
 */

/** Records (of a file, counted from its start) a worker looks through at once: its part of them is one batch. */
export const RECORDS_PER_ROUND = 1_000;

/** The most workers `--jobs auto` starts: each holds all the evidence, so memory grows with them. */
export const MAX_AUTO_JOBS = 4;

/** The most `--jobs` takes. */
export const MAX_JOBS = 64;

/** FNV-1a over the UTF-16 code units: the same answer in every worker and every run. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The worker (0 … jobs-1) that decides a record: by its eventID; a record without one (invalid anyway) goes to worker 0. */
export function shardOf(raw: unknown, jobs: number): number {
  if (jobs <= 1) return 0;
  const id = typeof raw === 'object' && raw !== null ? (raw as { eventID?: unknown }).eventID : undefined;
  return typeof id === 'string' ? hash(id) % jobs : 0;
}

/** The number of workers for `--jobs VALUE`: a number from 1 to MAX_JOBS, or `auto` (one per core, at most MAX_AUTO_JOBS). */
export function replayJobs(value: string, cores: number): { jobs: number } | { error: string } {
  if (value === 'auto') return { jobs: Math.max(1, Math.min(cores, MAX_AUTO_JOBS)) };
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_JOBS)
    return { error: `--jobs ${value}: give a number of workers from 1 to ${MAX_JOBS}, or auto` };
  return { jobs: Number(value) };
}

/**
 * Whether a record with this outcome of `processBatch` was told as its batch committed, and so
 * printed a line then (a held one prints at the end; a repeat, a conflict or an invalid one never).
 */
export function toldInBatch(outcome: string): boolean {
  return outcome === 'decided' || outcome === 'not-instance-credential';
}

/** A worker's lines, each with the record it came from (ascending within a round), or its sort key. */
export interface IndexedLines {
  /** Per line, the index it sorts by. */
  readonly order: ArrayLike<number>;
  /** Per line, a second key, compared first when given (the tick's due time). */
  readonly first?: ArrayLike<number>;
}

/**
 * The lines of several workers in one order, as [worker, line] pairs: by `first` (when given),
 * then by `order`. Each worker's own lines are in that order already; this merges them.
 */
export function mergeLines(parts: readonly IndexedLines[]): [number, number][] {
  const at = parts.map(() => 0);
  const out: [number, number][] = [];
  for (;;) {
    let best = -1;
    for (let w = 0; w < parts.length; w++) {
      const p = parts[w]!;
      if (at[w]! >= p.order.length) continue;
      if (best < 0 || before(p, at[w]!, parts[best]!, at[best]!)) best = w;
    }
    if (best < 0) return out;
    out.push([best, at[best]!]);
    at[best] = at[best]! + 1;
  }
}

function before(a: IndexedLines, i: number, b: IndexedLines, j: number): boolean {
  const fa = a.first?.[i] ?? 0;
  const fb = b.first?.[j] ?? 0;
  if (fa !== fb) return fa < fb;
  return a.order[i]! < b.order[j]!;
}
