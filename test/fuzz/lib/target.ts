/**
 * One fuzz target: a parser that reads bytes from outside, an arbitrary that
 * reaches deep into it (structured valid inputs, then mutated), and the
 * checks every case must pass. The same targets run in the test suite (a
 * few hundred cases each) and in `npm run fuzz` (100,000 and more):
 *
 *   arbitrary ─▶ case ─▶ check(case) ─┬─ returns            pass
 *                                     ├─ throws a FuzzFailure   a property broke (not the parser's answer)
 *                                     └─ throws anything else   the parser threw what it must not
 *
 * Cases are timed one by one (CPU time); a case slower than `maxCaseMs` fails
 * the run (a parser that can be made to spin is a denial of service).
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';

export interface FuzzTarget<T> {
  /** Short name for --only and the report, e.g. "client-hello". */
  readonly name: string;
  /** The parser under test, as an operator would name it. */
  readonly title: string;
  readonly arbitrary: fc.Arbitrary<T>;
  /** Throws when a property does not hold for this case. */
  check(input: T): void;
}

// Targets of different input types live in one list.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- heterogenous registry, each target is internally typed
export type AnyFuzzTarget = FuzzTarget<any>;

export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
}

/** Fails the case with `message` unless `condition` holds. */
export function ensure(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new FuzzFailure(typeof message === 'string' ? message : message());
}

/**
 * Calls the parser; anything it throws that is not an instance of one of
 * `allowed` (its own error types) becomes a failure naming what was thrown.
 */
export function callParser<R>(what: string, fn: () => R, allowed: readonly (new (...args: never[]) => Error)[] = []): R | undefined {
  try {
    return fn();
  } catch (err) {
    if (allowed.some((E) => err instanceof E)) return undefined;
    const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new FuzzFailure(`${what} threw instead of answering: ${text.slice(0, 300)}`);
  }
}

/** Structural equality of data, key order and prototypes (fast-check's records have none) ignored. */
export function deepEqual(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(structuredClone(a), structuredClone(b));
}

export interface PropertyOptions {
  /** A case that takes more CPU time than this fails (Infinity: not judged). */
  maxCaseMs: number;
  /** Called with each case's duration, for the slowest-case report. */
  onCase?: (ms: number) => void;
}

/**
 * The property fast-check runs. A case is timed in CPU time (user + system of
 * this process), not wall time: a busy machine that preempts the fuzzer does
 * not make a parser look slow, a parser that spins does.
 */
export function propertyOf<T>(target: FuzzTarget<T>, opts: PropertyOptions): fc.IPropertyWithHooks<[T]> {
  return fc.property(target.arbitrary, (input) => {
    const before = process.cpuUsage();
    target.check(input);
    const used = process.cpuUsage(before);
    const ms = (used.user + used.system) / 1000;
    opts.onCase?.(ms);
    if (ms > opts.maxCaseMs) throw new FuzzFailure(`one case took ${ms.toFixed(0)} ms of CPU (limit ${opts.maxCaseMs} ms)`);
  });
}
