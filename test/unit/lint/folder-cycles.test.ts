import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain JavaScript module of the lint setup, without declarations
import plugin, { describeCycles, folderOf } from '../../../lint/folder-cycles.mjs';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-witness-cycles-'));
  roots.push(root);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

async function lint(root: string): Promise<{ file: string; message: string }[]> {
  const eslint = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [
      {
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser },
        plugins: { 'egress-witness': plugin as never },
        rules: { 'egress-witness/no-folder-cycle': 'error' },
      },
    ],
  });
  const results = await eslint.lintFiles(['**/*.ts']);
  return results.flatMap((r) => r.messages.map((m) => ({ file: path.relative(root, r.filePath), message: m.message })));
}

describe('no-folder-cycle', () => {
  it('maps files to their design folder', () => {
    expect(folderOf('agent/proxy/tunnel.ts')).toBe('agent/proxy');
    expect(folderOf('detector/correlate/rules/external.ts')).toBe('detector/correlate');
    expect(folderOf('agent/app.ts')).toBe('agent');
  });

  it('reports both imports of a two-folder cycle, naming the way back', async () => {
    const root = tree({
      'agent/proxy/server.ts': "import type { Inspector } from '../inspect/inspector.js';\nexport const s = (i: Inspector) => i;\n",
      'agent/inspect/inspector.ts': "import { dial } from '../proxy/dial.js';\nexport interface Inspector { d: typeof dial }\n",
      'agent/proxy/dial.ts': 'export const dial = 1;\n',
    });
    const messages = await lint(root);
    expect(messages).toHaveLength(2);
    expect(messages.find((m) => m.file === 'agent/proxy/server.ts')?.message).toContain(
      'agent/proxy → agent/inspect closes a folder cycle: agent/proxy → agent/inspect → agent/proxy (back through agent/inspect/inspector.ts)',
    );
    expect(describeCycles(root)).toHaveLength(2);
  });

  it('finds a cycle through three folders and dynamic imports and re-exports', async () => {
    const root = tree({
      'detector/a/x.ts': "export * from '../b/y.js';\n",
      'detector/b/y.ts': "export const y = () => import('../c/z.js');\n",
      'detector/c/z.ts': "export { q } from '../a/q.js';\n",
      'detector/a/q.ts': 'export const q = 1;\n',
    });
    const messages = await lint(root);
    expect(messages.map((m) => m.file).sort()).toEqual(['detector/a/x.ts', 'detector/b/y.ts', 'detector/c/z.ts']);
    expect(messages[0]?.message).toMatch(/detector\/a → detector\/b → detector\/c → detector\/a/);
  });

  it('accepts layering, sub-folders importing their parent, packages and node built-ins', async () => {
    const root = tree({
      'detector/correlate/rule.ts': "import fs from 'node:fs';\nexport type Rule = typeof fs;\n",
      'detector/correlate/rules/external.ts': "import type { Rule } from '../rule.js';\nexport const r: Rule | null = null;\n",
      'detector/correlate/decide.ts': "import { r } from './rules/external.js';\nexport const d = r;\n",
      'detector/store/store.ts': "import { d } from '../correlate/decide.js';\nimport YAML from 'yaml';\nexport const s = [d, YAML];\n",
      'detector/app.ts': "import { s } from './store/store.js';\nexport const app = s;\n",
    });
    expect(await lint(root)).toEqual([]);
    expect(describeCycles(root)).toEqual([]);
  });

  it('holds for the project itself', () => {
    expect(describeCycles(path.resolve(import.meta.dirname, '../../..'))).toEqual([]);
  });
});
