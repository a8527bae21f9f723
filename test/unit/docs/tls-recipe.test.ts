/**
 * docs/operations.md "Detector TLS in five commands" runs as written: its shell block (openssl,
 * with the names changed to loopback's) makes the CA and the detector's certificate, its YAML
 * snippets configure a detector (child process) and an agent (child process), and the agent's
 * signed heartbeats reach the detector over TLS, trusted through upstream.ca_file.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { freePort } from '../../helpers/telemetry-receiver.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');

let tmp: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'egress-witness-tls-recipe-'));
});

afterAll(async () => {
  // The agent first: it drains to the detector, which is still there to take what it sends.
  for (const c of [...children].reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      const closed = new Promise((r) => c.once('close', r));
      c.kill('SIGTERM');
      // A daemon that drains slowly on a loaded machine is killed rather than holding the suite.
      const killer = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await closed;
      clearTimeout(killer);
    }
  }
  await rm(tmp, { recursive: true, force: true });
}, 60_000);

/** The recipe's section of docs/operations.md: its code blocks by language, in order. */
function recipe(): { sh: string[]; yaml: string[] } {
  const text = readFileSync(join(root, 'docs/operations.md'), 'utf8');
  const start = text.indexOf('### Detector TLS in five commands');
  expect(start).toBeGreaterThan(0);
  const rest = text.slice(start + 4);
  const section = rest.slice(0, rest.search(/^#{2,3} /m));
  const blocks = [...section.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)];
  return {
    sh: blocks.filter((b) => b[1] === 'sh').map((b) => b[2]!),
    yaml: blocks.filter((b) => b[1] === 'yaml').map((b) => b[2]!),
  };
}

/** The recipe's paths moved into the scratch folder, its names to loopback. */
function local(text: string, port: number): string {
  return text.replaceAll('/etc/egress-witness/', `${tmp}/`).replaceAll('detector.example.internal:8443', `127.0.0.1:${port}`);
}

describe('docs/operations.md: Detector TLS in five commands', () => {
  it('runs as written: the agent trusts the detector through upstream.ca_file and its heartbeats arrive', async () => {
    const { sh, yaml } = recipe();
    expect(sh).toHaveLength(1);
    const commands = sh[0]!.trim().split('\n');
    expect(commands).toHaveLength(5);
    expect(commands[0]).toBe('SAN="DNS:detector.example.internal"');
    commands[0] = 'SAN="DNS:localhost,IP:127.0.0.1"';
    execFileSync('bash', ['-euo', 'pipefail', '-c', commands.join('\n')], { cwd: tmp, stdio: 'pipe' });
    // As the recipe installs them: the certificate and key on the detector, ca.pem on the gateway.
    execFileSync('cp', [join(tmp, 'ca.pem'), join(tmp, 'detector-ca.pem')]);
    expect(execFileSync('openssl', ['verify', '-CAfile', 'ca.pem', 'detector.pem'], { cwd: tmp, encoding: 'utf8' })).toBe(
      'detector.pem: OK\n',
    );

    const [ingest, detAdmin] = [await freePort(), await freePort()];
    expect(yaml).toHaveLength(2);
    await writeFile(join(tmp, 'gw-tls.key'), 'tls-recipe-shared-secret-0123456789\n', { mode: 0o600 });
    const detector = {
      ...(parse(local(yaml[0]!, ingest)) as object),
      listen: `127.0.0.1:${ingest}`,
      admin: { listen: `127.0.0.1:${detAdmin}` },
      store: { path: join(tmp, 'detector.db') },
      gateways: [{ id: 'gw-tls', egress_cidrs: ['203.0.113.0/28'], secret_file: join(tmp, 'gw-tls.key') }],
    };
    const agentSnippet = parse(local(yaml[1]!, ingest)) as { telemetry: object; upstream: object };
    const agent = {
      gateway: { id: 'gw-tls', egress_cidrs: ['203.0.113.0/28'] },
      networks: [{ name: 'lab', cidrs: ['127.0.0.0/8'] }],
      proxy: { listen: '127.0.0.1:0' },
      admin: { listen: '127.0.0.1:0' },
      telemetry: {
        ...agentSnippet.telemetry,
        secret_file: join(tmp, 'gw-tls.key'),
        spool_dir: join(tmp, 'spool'),
        heartbeat_interval: '1s',
        flush_interval: '500ms',
      },
      upstream: agentSnippet.upstream,
    };
    expect(agent.telemetry).toMatchObject({ detector_url: `https://127.0.0.1:${ingest}/v1/telemetry` });
    await writeFile(join(tmp, 'detector.yaml'), stringify(detector));
    await writeFile(join(tmp, 'agent.yaml'), stringify(agent));
    for (const f of ['detector.yaml', 'agent.yaml']) {
      const r = execFileSync(process.execPath, [bin, 'check-config', join(tmp, f)], { encoding: 'utf8' });
      expect(r).toContain('configuration OK');
    }
    expect(execFileSync(process.execPath, [bin, 'check-config', join(tmp, 'detector.yaml')], { encoding: 'utf8' })).toContain(
      `listen 127.0.0.1:${ingest} (TLS)`,
    );

    const start = (file: string): ChildProcess => {
      const c = spawn(process.execPath, [bin, file.startsWith('detector') ? 'detector' : 'agent', '--config', join(tmp, file)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      children.push(c);
      return c;
    };
    start('detector.yaml');
    start('agent.yaml');
    let status: { gateways?: { id: string; last_heartbeat: string | null }[] } = {};
    for (let i = 0; i < 300; i++) {
      try {
        status = (await (await fetch(`http://127.0.0.1:${detAdmin}/status`)).json()) as typeof status;
        if (status.gateways?.[0]?.last_heartbeat) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status.gateways).toEqual([{ id: 'gw-tls', last_heartbeat: expect.any(String) as string }]);
  });
});
