/**
 * The shipped example files never rot: each validates, and each documents
 * every key of its schema (as an active line or a commented one).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { formatProblem, loadConfigText } from '../../../../common/config/load.js';
import { agentConfigSchema } from '../../../../agent/config/schema.js';
import { detectorConfigSchema } from '../../../../detector/config/schema.js';

const configDir = fileURLToPath(new URL('../../../../config/', import.meta.url));
const files = readdirSync(configDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function schemaFor(text: string): { kind: 'agent' | 'detector'; schema: z.ZodType } {
  return /^gateway:/m.test(text) ? { kind: 'agent', schema: agentConfigSchema } : { kind: 'detector', schema: detectorConfigSchema };
}

interface Def {
  type: string;
  innerType?: Schema;
  in?: Schema;
  element?: Schema;
  shape?: Record<string, Schema>;
}
interface Schema {
  def: Def;
  shape?: Record<string, Schema>;
}

/** Every object key in a zod schema, at any depth, as dotted paths (arrays add nothing). */
function keyPaths(schema: Schema, prefix = ''): string[] {
  const def = schema.def;
  switch (def.type) {
    case 'default':
    case 'nullable':
    case 'optional':
      return keyPaths(def.innerType!, prefix);
    case 'pipe':
      return keyPaths(def.in!, prefix);
    case 'array':
      return keyPaths(def.element!, prefix);
    case 'object':
      return Object.entries(schema.shape ?? {}).flatMap(([k, v]) => {
        const path = prefix ? `${prefix}.${k}` : k;
        return [path, ...keyPaths(v, path)];
      });
    default:
      return [];
  }
}

describe('config/*.yaml', () => {
  it('holds the agent and detector examples', () => {
    expect(files).toEqual(expect.arrayContaining(['agent.example.yaml', 'detector.example.yaml']));
  });

  it.each(files)('%s validates', (file) => {
    const text = readFileSync(`${configDir}${file}`, 'utf8');
    const r = loadConfigText(text, schemaFor(text).schema);
    expect(r.ok ? [] : r.problems.map(formatProblem)).toEqual([]);
  });

  it.each([
    ['agent.example.yaml', agentConfigSchema],
    ['detector.example.yaml', detectorConfigSchema],
  ])('%s documents every key of its schema', (file, schema) => {
    const text = readFileSync(`${configDir}${file}`, 'utf8');
    const paths = keyPaths(schema);
    expect(paths.length).toBeGreaterThan(30);
    const missing = paths.filter((p) => !new RegExp(`^[\\s#-]*${p.split('.').pop()!}:`, 'm').test(text));
    expect(missing).toEqual([]);
  });

  it('the agent example is production-shaped: two networks, IPv6 included, every default spelled out', () => {
    const text = readFileSync(`${configDir}agent.example.yaml`, 'utf8');
    const r = loadConfigText(text, agentConfigSchema);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const minimal = loadConfigText(
      'gateway: {id: gw-dc1, egress_cidrs: [203.0.113.0/28]}\nnetworks: [{name: a, cidrs: [10.0.0.0/8]}]\n',
      agentConfigSchema,
    );
    if (!minimal.ok) throw new Error('minimal config must validate');
    // The example's explicit values are the defaults: copying it changes nothing by surprise.
    expect({ ...r.value, gateway: null, networks: null }).toEqual({ ...minimal.value, gateway: null, networks: null });
    expect(r.value.networks.map((n) => n.name)).toEqual(['vpc-prod', 'outpost-rack1']);
    expect(r.value.networks[1]!.cidrs).toContain('fd12:3456:789a::/48');
  });

  it('the detector example spells out the defaults', () => {
    const text = readFileSync(`${configDir}detector.example.yaml`, 'utf8');
    const r = loadConfigText(text, detectorConfigSchema);
    const empty = loadConfigText('', detectorConfigSchema);
    expect(r.ok && empty.ok).toBe(true);
    if (r.ok && empty.ok) expect(r.value).toEqual(empty.value);
  });
});
