/**
 * The fuzz targets of test/fuzz/properties/ with a small budget, so every
 * run of the suite exercises every parser that reads bytes from outside.
 * `npm run fuzz` runs the same properties with 100,000 cases each. The seed
 * is fixed here (a failure reproduces as it is); FUZZ_SEED overrides it.
 * Cases are not timed here: the per-case limit is the fuzz runner's.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { FUZZ_TARGETS } from './properties/index.js';
import { propertyOf } from './lib/target.js';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 20_260_401;
const RUNS = 300;

describe('fuzz targets (small budget)', () => {
  for (const target of FUZZ_TARGETS) {
    it(`${target.name}: ${target.title}`, () => {
      fc.assert(propertyOf(target, { maxCaseMs: Infinity }), { numRuns: RUNS, seed: SEED });
    });
  }
});
