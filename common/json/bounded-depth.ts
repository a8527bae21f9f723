/**
 * Bounded nesting for JSON values read from outside. `JSON.parse` accepts
 * any depth (it does not recurse), but `JSON.stringify`, `structuredClone`
 * and every recursive walk overflow the stack somewhere past a few thousand
 * levels; one hostile record must not be able to throw from a store write or
 * a log line. Both functions here are iterative.
 */

/** Deeper than any record CloudTrail, EventBridge or GuardDuty writes (their documents nest about 10 levels). */
export const MAX_RECORD_DEPTH = 64;

export const TRUNCATED_MARKER = '[truncated: nested too deep]';

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return typeof v === 'object' && v !== null;
}

/** Past this many levels, `exceedsDepth` walks with a stack of its own instead of recursing. */
const RECURSION_LIMIT = 1_000;

/** Whether every container in `v` (a container itself) nests at most `left` levels, counting `v`. */
function nestsWithin(v: Record<string, unknown> | unknown[], left: number): boolean {
  if (left === 0) return false;
  // Indexes and for…in, not Object.values: this runs on every record the detector reads, and
  // allocates nothing. At most `left` calls deep, so never deeper than RECURSION_LIMIT.
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const c: unknown = v[i];
      if (isContainer(c) && !nestsWithin(c, left - 1)) return false;
    }
    return true;
  }
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    const c = v[k];
    if (isContainer(c) && !nestsWithin(c, left - 1)) return false;
  }
  return true;
}

/** Whether objects/arrays nest deeper than `maxDepth` (a scalar has depth 0, `{}` depth 1). */
export function exceedsDepth(value: unknown, maxDepth = MAX_RECORD_DEPTH): boolean {
  if (!isContainer(value)) return false;
  if (maxDepth <= RECURSION_LIMIT) return !nestsWithin(value, maxDepth);
  const stack: unknown[] = [value];
  const depths: number[] = [1];
  while (stack.length > 0) {
    const v = stack.pop() as Record<string, unknown> | unknown[];
    const d = depths.pop() as number;
    if (d > maxDepth) return true;
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const c of children) {
      if (isContainer(c)) {
        stack.push(c);
        depths.push(d + 1);
      }
    }
  }
  return false;
}

/**
 * The value itself when it nests at most `maxDepth` levels; otherwise a copy
 * in which every object or array at depth `maxDepth + 1` is replaced by
 * TRUNCATED_MARKER (the shallow fields a decision reads are kept).
 */
export function boundDepth(value: unknown, maxDepth = MAX_RECORD_DEPTH): { value: unknown; truncated: boolean } {
  if (!exceedsDepth(value, maxDepth)) return { value, truncated: false };
  const copyOf = (v: Record<string, unknown> | unknown[]): Record<string, unknown> | unknown[] => (Array.isArray(v) ? [] : {});
  const root = copyOf(value as Record<string, unknown> | unknown[]);
  const work: { from: Record<string, unknown> | unknown[]; to: Record<string, unknown> | unknown[]; depth: number }[] = [
    { from: value as Record<string, unknown> | unknown[], to: root, depth: 1 },
  ];
  while (work.length > 0) {
    const { from, to, depth } = work.pop()!;
    const entries: [string | number, unknown][] = Array.isArray(from) ? from.map((c, i) => [i, c]) : Object.entries(from);
    for (const [k, c] of entries) {
      let out: unknown = c;
      if (isContainer(c)) {
        if (depth >= maxDepth) out = TRUNCATED_MARKER;
        else {
          out = copyOf(c);
          work.push({ from: c, to: out as Record<string, unknown> | unknown[], depth: depth + 1 });
        }
      }
      // defineProperty, not assignment: a parsed "__proto__" key must stay a plain field.
      Object.defineProperty(to, k, { value: out, enumerable: true, writable: true, configurable: true });
    }
  }
  return { value: root, truncated: true };
}
