import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatPath, formatProblem, loadConfigText, parseYaml, validateConfig } from '../../../../common/config/load.js';
import { show } from '../../../../common/config/schema-helpers.js';
import { agentConfigSchema } from '../../../../agent/config/schema.js';
import { detectorConfigSchema } from '../../../../detector/config/schema.js';

/** A small strict schema so these tests do not depend on the agent's or detector's. */
const schema = z.strictObject({
  name: z.string().min(1),
  port: z.number().int().default(80),
  items: z.array(z.strictObject({ id: z.number() })).default([]),
  nested: z.strictObject({ deep: z.strictObject({ flag: z.boolean() }) }).optional(),
});

describe('formatPath', () => {
  it.each([
    [[], ''],
    [['gateway'], 'gateway'],
    [['gateway', 'egress_cidrs', 0], 'gateway.egress_cidrs[0]'],
    [['networks', 2, 'cidrs', 10], 'networks[2].cidrs[10]'],
    [[0, 'a'], '[0].a'],
    [['a', 'b', 'c'], 'a.b.c'],
  ] as [PropertyKey[], string][])('%j → %j', (path, text) => {
    expect(formatPath(path)).toBe(text);
  });
});

describe('formatProblem', () => {
  it.each([
    [{ path: 'proxy.max_tunnels', message: 'bad' }, 'proxy.max_tunnels: bad'],
    [{ path: 'proxy.max_tunnels', message: 'bad', line: 3 }, 'proxy.max_tunnels: bad (line 3)'],
    [{ path: 'proxy.max_tunnels', message: 'bad', line: 3, column: 7 }, 'proxy.max_tunnels: bad (line 3, column 7)'],
    [{ path: '', message: 'YAML syntax error: x', line: 1, column: 2 }, '(file): YAML syntax error: x (line 1, column 2)'],
  ])('%j', (problem, text) => {
    expect(formatProblem(problem)).toBe(text);
  });
});

describe('loadConfigText', () => {
  it('applies defaults and returns the typed value', () => {
    expect(loadConfigText('name: a\n', schema)).toEqual({ ok: true, value: { name: 'a', port: 80, items: [] } });
  });

  it('accepts JSON (JSON is YAML)', () => {
    expect(loadConfigText('{"name": "a", "port": 8080, "items": [{"id": 1}]}', schema)).toEqual({
      ok: true,
      value: { name: 'a', port: 8080, items: [{ id: 1 }] },
    });
  });

  it('treats an empty file as an empty mapping', () => {
    const r = loadConfigText('# only a comment\n', schema);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems).toEqual([{ path: 'name', message: 'Invalid input: expected string, received undefined' }]);
  });

  it('collects every problem at once, each with its path and position: a bad value at the value, an unknown key at the key', () => {
    const text = [
      'name: ""',
      'port: eighty',
      'items:',
      '  - id: 1',
      '  - id: two',
      '    extra: 1',
      'nested:',
      '  deep:',
      '    flag: 1',
      'surprise: true',
      '',
    ].join('\n');
    const r = loadConfigText(text, schema);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const byPath = Object.fromEntries(r.problems.map((p) => [p.path, p]));
    expect(Object.keys(byPath).sort()).toEqual(['items[1].extra', 'items[1].id', 'name', 'nested.deep.flag', 'port', 'surprise']);
    expect(byPath.name).toMatchObject({ line: 1, column: 7 });
    expect(byPath.port).toMatchObject({ line: 2, column: 7 });
    expect(byPath['items[1].id']).toMatchObject({ line: 5, column: 9 });
    expect(byPath['items[1].extra']).toMatchObject({ message: 'unknown key "extra"', line: 6, column: 5 });
    expect(byPath['nested.deep.flag']).toMatchObject({ line: 9, column: 11 });
    expect(byPath.surprise).toMatchObject({ message: 'unknown key "surprise"', line: 10, column: 1 });
  });

  it('points a missing key at its parent mapping', () => {
    const r = loadConfigText('port: 1\nnested:\n  deep: {}\n', schema);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.find((p) => p.path === 'nested.deep.flag')).toMatchObject({ line: 3, column: 9 });
    expect(r.problems.find((p) => p.path === 'name')).toMatchObject({ line: 1, column: 1 });
  });

  it('reports several unknown keys of one mapping one by one, each at its key', () => {
    const r = loadConfigText('name: a\nfoo: 1\nbar: 2\n', schema);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map(formatProblem)).toEqual([
      'foo: unknown key "foo" (line 2, column 1)',
      'bar: unknown key "bar" (line 3, column 1)',
    ]);
  });

  it('points an unknown key with a block value at the line of the key, not of its value', () => {
    const r = loadConfigText('name: a\nnested:\n  deep:\n    flag: true\n    colour:\n      - red\n', schema);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map(formatProblem)).toEqual(['nested.deep.colour: unknown key "colour" (line 5, column 5)']);
  });

  it('points an unknown key in a flow mapping at the key', () => {
    const r = loadConfigText('name: a\nitems: [{id: 1, extra: {x: 1}}]\n', schema);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map(formatProblem)).toEqual(['items[0].extra: unknown key "extra" (line 2, column 17)']);
  });

  it.each([
    [
      'an unclosed flow sequence',
      'name: a\nitems: [1, 2\nport: 3\n',
      'Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
    ['a bad indentation', 'nested:\n  deep: 1\n bad: 1\n', 'All mapping items must start at the same column'],
    ['a tab indentation', 'items:\n\t- id: 1\n', 'Tabs are not allowed as indentation'],
    ['an unterminated quote', 'name: "a\n', 'Missing closing "quote'],
    ['a duplicate key', 'name: a\nport: 1\nname: b\n', 'Map keys must be unique'],
    ['several documents', 'name: a\n---\nname: b\n', 'Source contains multiple documents; please use YAML.parseAllDocuments()'],
  ])('turns %s into a YAML syntax problem', (_what, text, message) => {
    const r = loadConfigText(text, schema);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems[0]).toMatchObject({
      path: '',
      message: `YAML syntax error: ${message}`,
      line: expect.any(Number) as number,
      column: expect.any(Number) as number,
    });
  });

  it('gives YAML syntax errors a line and column', () => {
    const r = loadConfigText('name: a\nitems: [1, 2\nport: 3\n', schema);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems[0]).toMatchObject({ line: 3, column: 1 });
    expect(formatProblem(r.problems[0]!)).toMatch(/\(line 3, column 1\)$/);
  });

  it('gives a duplicate key the line of the second occurrence', () => {
    const r = loadConfigText('name: a\nport: 1\nname: b\n', schema);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]).toMatchObject({ line: 3 });
  });

  // doc.toJS() throws ReferenceError for an alias to an undefined anchor and for an alias bomb; the
  // throw must become a problem (else check-config prints a stack trace, and a SIGHUP reload with
  // such a file kills the agent).
  it('reports an unresolved alias as a problem instead of throwing', () => {
    const r = loadConfigText('name: *nope\n', schema);
    expect(r.ok).toBe(false);
  });

  it('reports an alias bomb as a problem instead of throwing', () => {
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (const [prev, cur] of [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'd'],
      ['d', 'e'],
    ])
      rows.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    const r = loadConfigText(`${rows.join('\n')}\nname: x\n`, schema);
    expect(r.ok).toBe(false);
  });

  // An alias inside its own anchor builds a value that contains itself; the messages about it used to
  // throw "Converting circular structure to JSON" out of check-config and a SIGHUP reload.
  it('reports an alias inside its own anchor as a problem at the alias', () => {
    const r = loadConfigText('name: x\nnested: &n\n  deep: *n\n', schema);
    expect(r).toEqual({
      ok: false,
      problems: [
        {
          path: '',
          message: 'YAML error: alias *n refers to the node that contains it (a value cannot contain itself)',
          line: 3,
          column: 9,
        },
      ],
    });
  });

  it('reports a merge key that merges its own mapping as a problem', () => {
    const r = loadConfigText('name: x\nnested: &n\n  deep:\n    <<: *n\n', schema);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems[0]?.message).toMatch(/alias \*n refers to the node that contains it/);
  });

  it('never throws on a self-referencing value in the agent and detector schemas', () => {
    for (const [text, s] of [
      ['gateway: &a {id: *a, egress_cidrs: [1.2.3.4/32]}\n', agentConfigSchema],
      ['proxy: &a {listen: *a}\ngateway: {id: x, egress_cidrs: [1.2.3.4/32]}\n', agentConfigSchema],
      ['gateways: &g [{id: *g}]\n', detectorConfigSchema],
    ] as const) {
      const r = loadConfigText(text, s);
      expect(r.ok).toBe(false);
    }
  });

  it('resolves a few ordinary aliases', () => {
    const r = loadConfigText('name: &n shared\nnested: {deep: {flag: true}}\nitems: [{id: 1}]\n', schema);
    expect(r).toEqual({ ok: true, value: { name: 'shared', port: 80, items: [{ id: 1 }], nested: { deep: { flag: true } } } });
  });
});

describe('show (values in messages)', () => {
  it('never throws and stays short', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(show(cyclic)).toBe('[object Object]');
    expect(show(10n)).toBe('[object BigInt]');
    expect(show('x'.repeat(500))).toHaveLength(121);
    expect(show(undefined)).toBe('undefined');
    expect(show({ a: 1 })).toBe('{"a":1}');
  });
});

describe('parseYaml', () => {
  it('returns the document and a line counter for valid text', () => {
    const r = parseYaml('a: 1\nb: [2]\n');
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.doc.toJS()).toEqual({ a: 1, b: [2] });
      expect(r.lines.linePos(5)).toEqual({ line: 2, col: 1 });
    }
  });
});

describe('validateConfig', () => {
  it('validates a plain object and uses the locator for positions: at the key for an unknown key, else at the value', () => {
    const seen: string[] = [];
    const r = validateConfig({ name: 5, extra: true }, schema, (path, atKey) => {
      seen.push(`${formatPath(path)} ${atKey ? 'key' : 'value'}`);
      return { line: 42 };
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map(formatProblem)).toEqual([
      'name: Invalid input: expected string, received number (line 42)',
      'extra: unknown key "extra" (line 42)',
    ]);
    expect(seen.sort()).toEqual(['extra key', 'name value']);
  });

  it('works without a locator', () => {
    expect(validateConfig({ name: 'x' }, schema)).toEqual({ ok: true, value: { name: 'x', port: 80, items: [] } });
    expect(validateConfig(null, schema)).toEqual({
      ok: false,
      problems: [{ path: '', message: 'Invalid input: expected object, received null' }],
    });
  });
});
