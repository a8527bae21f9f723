/**
 * Errors an operator meets in the first hour, each as a child process of the built CLI
 * (`npm test` builds first): the message names the key or flag to change, usage errors exit 2,
 * invalid configuration and runtime failures exit 1.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restartNeededMessage } from '../../../common/config/hot-reload.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');

let tmp: string;
const held: net.Server[] = [];

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'egress-witness-operator-'));
});

afterAll(async () => {
  for (const s of held) await new Promise((r) => s.close(r));
  await rm(tmp, { recursive: true, force: true });
});

/** A loopback port some other process holds for the whole test. */
async function takenPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  held.push(s);
  return (s.address() as net.AddressInfo).port;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], cwd = root): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The daemon's JSON log lines (pino, on stdout). */
function events(stdout: string): { event?: string; msg?: string; err?: { message?: string } }[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event?: string; msg?: string });
}

function agentYaml(o: { proxy?: number; admin?: number; extra?: string }): string {
  return [
    'gateway: {id: gw-test, egress_cidrs: [203.0.113.0/28]}',
    'networks: [{name: lab, cidrs: [127.0.0.0/8]}]',
    `proxy: {listen: "127.0.0.1:${o.proxy ?? 0}"}`,
    `admin: {listen: "127.0.0.1:${o.admin ?? 0}"}`,
    `telemetry: {spool_dir: ${join(tmp, 'spool')}}`,
    o.extra ?? '',
  ].join('\n');
}

describe('detector decisions', () => {
  it('a store.path that does not exist: exit 1 naming store.path and the config file, and no file is created', async () => {
    const config = join(tmp, 'relative-store.yaml');
    await writeFile(config, 'store: {path: data/detector.db}\n');
    const r = await run(['detector', 'decisions', '--config', config], tmp);
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr:
        `detector decisions: store.path data/detector.db does not exist: the detector creates it when it first starts; ` +
        `a relative path is resolved from the current directory, here ${join(tmp, 'data/detector.db')}: give the absolute path the detector uses (set in ${config}; docs/configuration.md#listen-tls-admin-store)\n`,
    });
    expect(existsSync(join(tmp, 'data'))).toBe(false);
  });

  it('a file that is not a detector store: exit 1, left as it was', async () => {
    const notStore = join(tmp, 'notes.db');
    await writeFile(notStore, 'not a database\n');
    const config = join(tmp, 'wrong-store.yaml');
    await writeFile(config, `store: {path: ${notStore}}\n`);
    const r = await run(['detector', 'decisions', '--config', config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^detector decisions: store.path ${notStore} is not a detector store: `));
    expect(readFileSync(notStore, 'utf8')).toBe('not a database\n');
  });

  it('--since yesterday is a usage error about --since alone: exit 2', async () => {
    const r = await run(['detector', 'decisions', '--config', 'config/detector.example.yaml', '--since', 'yesterday']);
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr:
        `error: option '--since <duration>' argument 'yesterday' is invalid. expected a duration like 30m, 1h, 1h30m or 7d, got "yesterday"\n` +
        '(run with --help for usage)\n',
    });
  });
});

describe('usage errors exit 2 everywhere', () => {
  it.concurrent.for([
    {
      args: ['suppression-rule', '--config', 'config/agent.example.yaml', '--name', 'my rule'],
      message: `error: option '--name <name>' argument 'my rule' is invalid. expected 3-64 of A-Z a-z 0-9 . _ - (no spaces), got "my rule"`,
    },
    {
      args: ['suppression-rule', '--config', 'config/agent.example.yaml', '--rank', '1.5'],
      message: `error: option '--rank <n>' argument '1.5' is invalid. expected an integer 1-100, got "1.5"`,
    },
    {
      args: ['ca', 'init', '--out', 'never-written', '--name', ''],
      message: `error: option '--name <cn>' argument '' is invalid. expected 1-64 characters, got ""`,
    },
  ])('$args.0 $args.3 $args.4', async ({ args, message }, { expect }) => {
    expect(await run(args)).toEqual({ code: 2, stdout: '', stderr: `${message}\n(run with --help for usage)\n` });
  });

  it('detector --help shows --config, which its example uses', async () => {
    const r = await run(['detector', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: egress-witness detector \[run\] --config <file> \| decisions --config <file> \[options\]\n/);
    expect(r.stdout).toContain('  -c, --config <file>  detector configuration file (YAML)\n');
    expect(r.stdout).toContain('egress-witness detector --config /etc/egress-witness/detector.yaml\n');
  });
});

describe('the wrong kind of configuration file', () => {
  it('agent --config detector.yaml says it is a detector file', async () => {
    const r = await run(['agent', '--config', 'config/detector.example.yaml']);
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'config/detector.example.yaml: invalid configuration\n' +
        '  (file): this is a detector configuration file (it has "listen", "tls", "store", …), but egress-witness agent needs an agent configuration file (docs/configuration.md#agent-file)\n',
    });
  });

  it('detector --config agent.yaml and detector decisions say it is an agent file', async () => {
    for (const args of [['detector'], ['detector', 'decisions']]) {
      const r = await run([...args, '--config', 'config/agent.example.yaml']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('(file): this is an agent configuration file (it has "gateway", "networks", "proxy", …), but ');
      expect(r.stderr).toContain(' needs a detector configuration file (docs/configuration.md#detector-file)\n');
      expect(r.stderr).not.toContain('unknown key');
    }
  });
});

describe('check-config warnings (exit 0, on stderr)', () => {
  it('an agent shipping over http:// to another host is told to use TLS', async () => {
    const secret = join(tmp, 'warn.key');
    await writeFile(secret, 'check-config-warning-secret-0123456789\n', { mode: 0o600 });
    const file = join(tmp, 'http-agent.yaml');
    await writeFile(
      file,
      `gateway: {id: gw-test, egress_cidrs: [203.0.113.0/28]}\nnetworks: [{name: lab, cidrs: [10.0.0.0/8]}]\ntelemetry: {detector_url: "http://detector.example.internal:8443/v1/telemetry", secret_file: ${secret}}\n`,
    );
    const r = await run(['check-config', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agent configuration OK');
    expect(r.stderr).toBe(
      'warning: telemetry.detector_url: http:// to another host: telemetry (access key ids, client addresses) crosses the network in clear; give the detector tls.cert and tls.key and use https:// (docs/operations.md#detector-tls-in-five-commands)\n',
    );
    const loopback = join(tmp, 'http-loopback-agent.yaml');
    await writeFile(loopback, readFileSync(file, 'utf8').replace('detector.example.internal', '127.0.0.1'));
    expect(await run(['check-config', loopback])).toMatchObject({ code: 0, stderr: '' });
  });
});

describe('check-config lists problems in line order', () => {
  it('an unknown key on line 1 comes before a bad value on line 2', async () => {
    const file = join(tmp, 'order.yaml');
    await writeFile(
      file,
      'bogus: 1\ngateway: {id: gw-x, egress_cidrs: [203.0.113.0/33]}\nnetworks: [{name: lab, cidrs: [10.0.0.0/8]}]\nproxy: {max_tunnels: lots}\n',
    );
    const r = await run(['check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${file}: invalid agent configuration (3 problems)\n` +
        '  bogus: unknown key "bogus" (line 1, column 1)\n' +
        '  gateway.egress_cidrs[0]: "203.0.113.0/33" is not a valid CIDR (line 2, column 36)\n' +
        '  proxy.max_tunnels: expected max_tunnels (a positive integer), got "lots" (line 4, column 22)\n',
    );
  });
});

describe('a listen address in use names its key', () => {
  it('agent admin.listen and proxy.listen: start_failed names the key, and no "stopped" before it', async () => {
    const port = await takenPort();
    for (const [key, yaml] of [
      ['admin.listen', agentYaml({ admin: port })],
      ['proxy.listen', agentYaml({ proxy: port })],
    ] as const) {
      const file = join(tmp, `agent-${key}.yaml`);
      await writeFile(file, yaml);
      const r = await run(['agent', '--config', file]);
      expect(r.code).toBe(1);
      const log = events(r.stdout);
      expect(log.map((l) => l.event)).not.toContain('stopped');
      const failed = log.find((l) => l.event === 'start_failed');
      expect(failed?.msg).toBe(
        `agent failed to start: ${key}: 127.0.0.1:${port} is already in use by another process (EADDRINUSE); stop that process or set ${key} to a free address (docs/configuration.md#listen-addresses)`,
      );
    }
  });

  it('detector listen and admin.listen', async () => {
    const port = await takenPort();
    for (const [key, yaml] of [
      ['listen', `listen: 127.0.0.1:${port}\nadmin: {listen: "127.0.0.1:0"}\n`],
      ['admin.listen', `listen: 127.0.0.1:0\nadmin: {listen: "127.0.0.1:${port}"}\n`],
    ] as const) {
      const file = join(tmp, `detector-${key}.yaml`);
      await writeFile(file, `${yaml}store: {path: ${join(tmp, `${key}.db`)}}\n`);
      const r = await run(['detector', '--config', file]);
      expect(r.code).toBe(1);
      const failed = events(r.stdout).find((l) => l.event === 'start_failed');
      expect(failed?.msg).toBe(
        `detector failed to start: ${key}: 127.0.0.1:${port} is already in use by another process (EADDRINUSE); stop that process or set ${key} to a free address (docs/configuration.md#listen-addresses)`,
      );
    }
  });
});

describe('agent start failures', () => {
  it('a CA certificate and a key that do not match: start_failed says so, with no "stopped" before it', async () => {
    for (const d of ['a', 'b']) {
      await mkdir(join(tmp, `ca-${d}`), { recursive: true });
      expect((await run(['ca', 'init', '--out', join(tmp, `ca-${d}`)])).code).toBe(0);
    }
    const file = join(tmp, 'mismatch.yaml');
    await writeFile(
      file,
      agentYaml({ extra: `inspect: {ca_cert: ${join(tmp, 'ca-a/ca.pem')}, ca_key: ${join(tmp, 'ca-b/ca-key.pem')}}\n` }),
    );
    const r = await run(['agent', '--config', file]);
    expect(r.code).toBe(1);
    const log = events(r.stdout).map((l) => l.event);
    expect(log).toContain('start_failed');
    expect(log).not.toContain('stopped');
    expect(log).not.toContain('draining');
    expect(events(r.stdout).find((l) => l.event === 'start_failed')?.msg).toContain('inspect.ca_key does not match inspect.ca_cert');
  });
});

describe('the watch directory reads what replay --cloudtrail reads', () => {
  it('an EventBridge-shaped file in cloudtrail.watch_dir is decided, as replay decides it', async () => {
    const watch = join(tmp, 'watch');
    await mkdir(watch, { recursive: true });
    await writeFile(join(watch, 'events.json'), readFileSync(join(root, 'test/fixtures/cloudtrail/eventbridge-events.json')));
    const file = join(tmp, 'watching-detector.yaml');
    await writeFile(
      file,
      `listen: 127.0.0.1:0\nadmin: {listen: "127.0.0.1:0"}\nstore: {path: ${join(tmp, 'watch.db')}}\ncloudtrail: {watch_dir: ${watch}, poll_interval: 200ms}\n`,
    );
    const replayed = await run(['replay', '--config', file, '--cloudtrail', join(watch, 'events.json'), '--no-telemetry', '--quiet']);
    expect(replayed.code, replayed.stderr).toBe(0);
    const expected = replayed.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string; disposition: string; rule: string })
      .filter((d) => d.rule !== 'not-instance-credential')
      .map((d) => ({ id: d.id, disposition: d.disposition, rule: d.rule }));
    expect(expected.length).toBeGreaterThan(0);

    const daemon = spawn(process.execPath, [bin, 'detector', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stdout.on('data', (d: Buffer) => (log += d.toString()));
    try {
      for (let i = 0; !events(log).some((l) => l.event === 'cloudtrail_file_processed' || l.event === 'cloudtrail_file_failed'); i++) {
        if (i > 200 || daemon.exitCode !== null) throw new Error(`the detector did not read the file:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(events(log).map((l) => l.event)).not.toContain('cloudtrail_file_failed');
      const listed = await run(['detector', 'decisions', '--config', file]);
      expect(listed.code, listed.stderr).toBe(0);
      const decided = listed.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { id: string; disposition: string; rule: string })
        .map((d) => ({ id: d.id, disposition: d.disposition, rule: d.rule }));
      expect(decided.sort((a, b) => a.id.localeCompare(b.id))).toEqual(expected.sort((a, b) => a.id.localeCompare(b.id)));
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('close', r));
    }
  });
});

describe('reload_partial', () => {
  it('reads as English for one key and for several', () => {
    expect(restartNeededMessage(['telemetry.max_in_flight'])).toBe(
      'configuration reloaded; telemetry.max_in_flight keeps its running value until a restart (docs/configuration.md#what-sighup-reloads)',
    );
    expect(restartNeededMessage(['proxy.listen', 'telemetry.max_in_flight'])).toBe(
      'configuration reloaded; proxy.listen, telemetry.max_in_flight keep their running values until a restart (docs/configuration.md#what-sighup-reloads)',
    );
  });
});
