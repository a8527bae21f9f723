/**
 * Which of the primary's node flags its proxy workers start with: the heap
 * flags (the launcher's --no-memory-reducer, heap sizes), nothing else.
 */
import { describe, expect, it } from 'vitest';
import { workerExecArgv } from '../../../../agent/cluster/workers.js';

describe('workerExecArgv', () => {
  it('passes the heap flags on', () => {
    expect(
      workerExecArgv(['--no-memory-reducer', '--max-old-space-size=512', '--min-semi-space-size=16', '--max-semi-space-size=64']),
    ).toEqual(['--no-memory-reducer', '--max-old-space-size=512', '--min-semi-space-size=16', '--max-semi-space-size=64']);
  });

  it('keeps profiler, debugger, loader and malformed flags to the primary', () => {
    expect(
      workerExecArgv([
        '--cpu-prof',
        '--cpu-prof-dir=/tmp/p',
        '--inspect=9229',
        '--import',
        'tsx',
        '--max-old-space-size',
        '--max-old-space-size=big',
        '--no-memory-reducer-for-small-heaps',
      ]),
    ).toEqual([]);
  });
});
