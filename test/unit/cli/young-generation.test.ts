/** replay runs itself again with a larger young generation, once, unless the size was given. */
import { describe, expect, it } from 'vitest';
import { REPLAY_SEMI_SPACE_MB, relaunchArgs } from '../../../cli/young-generation.js';

const argv = ['/usr/bin/node', '/opt/ew/dist/cli/main.js', 'replay', '--config', 'd.yaml', '--cloudtrail', 'a.json.gz'];

describe('relaunchArgs', () => {
  it('keeps node options and the command line, adding the semi-space size', () => {
    expect(relaunchArgs(['--enable-source-maps'], '', argv)).toEqual([
      '--enable-source-maps',
      `--max-semi-space-size=${REPLAY_SEMI_SPACE_MB}`,
      '/opt/ew/dist/cli/main.js',
      'replay',
      '--config',
      'd.yaml',
      '--cloudtrail',
      'a.json.gz',
    ]);
  });

  it('runs as it is when the size is given on the command line, in either spelling', () => {
    expect(relaunchArgs(['--max-semi-space-size=8'], '', argv)).toBeNull();
    expect(relaunchArgs(['--max-semi-space-size', '8'], '', argv)).toBeNull();
    expect(relaunchArgs(['--max_semi_space_size=8'], '', argv)).toBeNull();
  });

  it('runs as it is when NODE_OPTIONS gives the size', () => {
    expect(relaunchArgs([], '--trace-warnings --max-semi-space-size=32', argv)).toBeNull();
  });

  it('a relaunched process does not relaunch again', () => {
    const again = relaunchArgs([], '', argv);
    expect(again).not.toBeNull();
    const execArgv = again!.slice(0, again!.indexOf('/opt/ew/dist/cli/main.js'));
    expect(relaunchArgs(execArgv, '', ['/usr/bin/node', ...again!.slice(execArgv.length)])).toBeNull();
  });
});
