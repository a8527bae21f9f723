import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { meetsEngines } from '../../../../common/runtime/node-support.js';

const engines = (JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } })
  .engines.node;

describe('meetsEngines', () => {
  it('tells the supported lines from older ones, by the project engines', () => {
    expect(meetsEngines('v20.20.2', engines)).toBe(false);
    expect(meetsEngines('v22.12.9', engines)).toBe(false);
    expect(meetsEngines('v22.13.0', engines)).toBe(true);
    expect(meetsEngines('v24.1.0', engines)).toBe(true);
    expect(meetsEngines('v22.13.1', '>=22.13.0')).toBe(true);
    expect(meetsEngines('v23.0.0', '>= 22.13.0')).toBe(true);
  });

  it('stays silent on what it cannot read', () => {
    expect(meetsEngines('v20.1.0', '^22 || ^24')).toBeNull();
    expect(meetsEngines('nightly', '>=22.13.0')).toBeNull();
    expect(meetsEngines('v20.1.0', '')).toBeNull();
  });
});
