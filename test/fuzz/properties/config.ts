/**
 * YAML configuration loading (common/config/load.ts with the agent and
 * detector schemas): the shipped example files, their values replaced at
 * random paths, written back as YAML, then damaged the ways YAML can be —
 * anchors and aliases (self-referential ones too), merge keys, tags, flow
 * collections, indentation, duplicate keys, odd numbers — and as plain text.
 *
 * Properties: never throws; a refusal lists at least one problem, each with
 * a path and a message (and a position inside the text when it has one);
 * a value written as YAML loads exactly as the value itself validates
 * (writer → loader round trip).
 */
import fc from 'fast-check';
import YAML from 'yaml';
import type { z } from 'zod';
import { loadConfigText, validateConfig, type ConfigResult } from '../../../common/config/load.js';
import { agentConfigSchema } from '../../../agent/config/schema.js';
import { detectorConfigSchema } from '../../../detector/config/schema.js';
import { applyJsonMutations, applyTextMutations, jsonMutation, textMutation, type JsonMutation, type TextMutation } from '../lib/mutate.js';
import { readRepoFile } from '../lib/repo-file.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

type YamlMutation =
  | { op: 'anchor-alias'; anchorLine: number; aliasLine: number; merge: boolean }
  | { op: 'tag'; line: number; tag: string }
  | { op: 'indent'; line: number; delta: number }
  | { op: 'duplicate'; line: number }
  | { op: 'insert'; line: number; text: string };

const TAGS = ['!!binary', '!!set', '!!omap', '!!int', '!!float', '!!str', '!!timestamp', '!!null', '!!map', '!!seq', '!custom', '!!bool'];
const SNIPPETS = [
  '---',
  '...',
  '%YAML 1.1',
  'x: {a: [1, 2}',
  '? [complex, key]\n: value',
  'n: 1e400',
  'n: 0x7fffffffffffffffff',
  'n: .nan',
  'n: -.inf',
  'n: 0o17',
  'n: 12345678901234567890123',
  'd: 2001-12-14t21:59:43.10-05:00',
  's: "\\u0000\\x7f"',
  's: |\n  multi\n  line',
  'l: [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]',
  'a: &x [*x]',
  'b: *undefined',
  '<<: {proxy: {}}',
  '"quoted key": 1',
  '- item',
  ': nokey',
  '\t tab: 1',
];

const yamlMutation: fc.Arbitrary<YamlMutation> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('anchor-alias' as const), anchorLine: fc.nat(), aliasLine: fc.nat(), merge: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('tag' as const), line: fc.nat(), tag: fc.constantFrom(...TAGS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('indent' as const), line: fc.nat(), delta: fc.constantFrom(-4, -2, -1, 1, 2, 4) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate' as const), line: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('insert' as const), line: fc.nat(), text: fc.constantFrom(...SNIPPETS) }) },
);

const KEY_LINE = /^(\s*(?:- )?)([^\s#:][^:#]*):(.*)$/;

function applyYamlMutations(text: string, ms: readonly YamlMutation[]): string {
  const lines = text.split('\n');
  let anchors = 0;
  for (const m of ms) {
    const n = lines.length;
    if (n === 0) break;
    switch (m.op) {
      case 'anchor-alias': {
        const keyLines = lines.map((l, i) => (KEY_LINE.test(l) ? i : -1)).filter((i) => i >= 0);
        if (keyLines.length === 0) break;
        const a = keyLines[m.anchorLine % keyLines.length] as number;
        const b = keyLines[m.aliasLine % keyLines.length] as number;
        const name = `a${anchors++}`;
        const [, ind = '', key = '', rest = ''] = KEY_LINE.exec(lines[a] as string) ?? [];
        lines[a] = `${ind}${key}: &${name}${rest}`;
        const mb = KEY_LINE.exec(lines[b] as string);
        if (!mb) break;
        if (m.merge) lines.splice(b + 1, 0, `${' '.repeat((mb[1] ?? '').length + 2)}<<: *${name}`);
        else lines[b] = `${mb[1] ?? ''}${mb[2] ?? ''}: *${name}`;
        break;
      }
      case 'tag': {
        const i = m.line % n;
        const mm = KEY_LINE.exec(lines[i] as string);
        if (mm) lines[i] = `${mm[1] ?? ''}${mm[2] ?? ''}: ${m.tag}${mm[3] ?? ''}`;
        break;
      }
      case 'indent': {
        const i = m.line % n;
        const l = lines[i] as string;
        lines[i] = m.delta > 0 ? ' '.repeat(m.delta) + l : l.replace(new RegExp(`^ {0,${-m.delta}}`), '');
        break;
      }
      case 'duplicate': {
        const i = m.line % n;
        lines.splice(i, 0, lines[i] as string);
        break;
      }
      case 'insert':
        lines.splice(m.line % (n + 1), 0, ...m.text.split('\n'));
        break;
    }
  }
  return lines.join('\n');
}

interface ConfigCase {
  text: string;
  /** The YAML value written, when the text is exactly YAML.stringify of it. */
  written: unknown;
}

function configCase(exampleFile: string): fc.Arbitrary<ConfigCase> {
  let example: { text: string; value: unknown } | null = null;
  const load = () => {
    if (!example) {
      const text = readRepoFile(exampleFile);
      example = { text, value: YAML.parse(text) as unknown };
    }
    return example;
  };
  return fc
    .tuple(
      fc.array(jsonMutation, { maxLength: 3 }),
      fc.boolean(),
      fc.array(yamlMutation, { maxLength: 3 }),
      fc.array(textMutation, { maxLength: 2 }),
    )
    .map(([jm, fromExample, ym, tm]: [JsonMutation[], boolean, YamlMutation[], TextMutation[]]) => {
      const ex = load();
      const value = jm.length === 0 ? ex.value : applyJsonMutations(ex.value, jm);
      const verbatim = fromExample && jm.length === 0;
      const base = verbatim ? ex.text : YAML.stringify(value);
      const text = applyTextMutations(applyYamlMutations(base, ym), tm);
      return { text, written: !verbatim && ym.length === 0 && tm.length === 0 ? value : undefined };
    });
}

function checkLoad<S extends z.ZodType>(name: string, schema: S, { text, written }: ConfigCase): void {
  const r = callParser<ConfigResult<z.output<S>>>(`loadConfigText (${name})`, () => loadConfigText(text, schema));
  ensure(r !== undefined, 'no answer');
  if (!r.ok) {
    ensure(r.problems.length > 0, 'refused without a problem');
    const lineCount = text.split('\n').length;
    for (const p of r.problems) {
      ensure(typeof p.path === 'string' && typeof p.message === 'string' && p.message !== '', () => `odd problem ${fc.stringify(p)}`);
      ensure(
        p.line === undefined || (p.line >= 1 && p.line <= lineCount + 1),
        () => `problem at line ${p.line} of a ${lineCount}-line file`,
      );
    }
  }
  if (written !== undefined) {
    // The text is exactly YAML.stringify(written): reading it must agree with validating the value itself.
    const direct = validateConfig(written, schema);
    ensure(direct.ok === r.ok, () => `the value ${direct.ok ? 'validates' : 'is refused'} but its YAML ${r.ok ? 'loads' : 'is refused'}`);
    if (direct.ok && r.ok) ensure(deepEqual(direct.value, r.value), 'the config did not load the same after being written as YAML');
  }
}

export const agentConfigTarget: FuzzTarget<ConfigCase> = {
  name: 'agent-config',
  title: 'agent YAML config loading',
  arbitrary: configCase('config/agent.example.yaml'),
  check: (c) => checkLoad('agent', agentConfigSchema, c),
};

export const detectorConfigTarget: FuzzTarget<ConfigCase> = {
  name: 'detector-config',
  title: 'detector YAML config loading',
  arbitrary: configCase('config/detector.example.yaml'),
  check: (c) => checkLoad('detector', detectorConfigSchema, c),
};
