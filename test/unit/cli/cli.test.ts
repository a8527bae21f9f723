/**
 * The CLI as a user runs it: `node dist/cli/main.js …` as a child process
 * (`npm test` builds first). Exit codes: 0 ok, 1 invalid config or failure, 2 usage.
 */
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');
const threeMistakes = join(root, 'test/fixtures/config/invalid/agent-three-mistakes.yaml');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

let tmp: string;

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'egress-witness-cli-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('egress-witness CLI: usage', () => {
  it.concurrent('--version prints the package version and exits 0', async ({ expect }) => {
    expect(await run(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it.concurrent('--help exits 0 and lists every command', async ({ expect }) => {
    const r = await runOnce(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: egress-witness /);
    for (const c of ['agent', 'detector', 'check-config', 'doctor', 'suppression-rule', 'transparent-rules', 'ca', 'replay'])
      expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  const leaves = [
    'agent',
    'detector run',
    'detector decisions',
    'check-config',
    'doctor',
    'suppression-rule',
    'transparent-rules',
    'ca init',
    'replay',
  ];
  it.concurrent.for(leaves)('egress-witness %s --help exits 0 and shows Examples', async (cmd, { expect }) => {
    const r = await run([...cmd.split(' '), '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: egress-witness ${cmd} `));
    expect(r.stdout).toContain('\nExamples:\n  egress-witness ');
  });

  it.concurrent.for(['detector', 'ca'])('the group command egress-witness %s --help exits 0', async (cmd, { expect }) => {
    const r = await runOnce([cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: egress-witness ${cmd} `));
  });

  // The top-level program and the detector and ca groups have "Examples" help text too.
  it.for([
    { name: 'egress-witness', args: [] },
    { name: 'egress-witness detector', args: ['detector'] },
    { name: 'egress-witness ca', args: ['ca'] },
  ])('$name --help shows Examples', async ({ args }, { expect }) => {
    const r = await runOnce([...args, '--help']);
    expect(r.stdout).toContain('Examples:');
  });

  it.concurrent.for([
    { arg: 'bogus', message: "error: unknown command 'bogus'" },
    { arg: '--bogus', message: "error: unknown option '--bogus'" },
  ])('egress-witness $arg is a usage error: exit 2', async ({ arg, message }, { expect }) => {
    expect(await run([arg])).toEqual({ code: 2, stdout: '', stderr: `${message}\n(run with --help for usage)\n` });
  });
});

describe('egress-witness check-config', () => {
  const examples = readdirSync(join(root, 'config'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => `config/${f}`);

  it.concurrent.for(examples)('%s: exit 0 and a one-line summary', async (file, { expect }) => {
    const r = await runOnce(['check-config', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const kind = /^gateway:/m.test(readFileSync(join(root, file), 'utf8')) ? 'agent' : 'detector';
    expect(r.stdout).toMatch(new RegExp(`^${file.replace(/\./g, '\\.')}: ${kind} configuration OK — [^\\n]+\\n$`));
  });

  it.concurrent('summarizes what the agent example configures', async ({ expect }) => {
    const r = await runOnce(['check-config', 'config/agent.example.yaml']);
    expect(r.stdout).toContain('gateway gw-dc1, 1 egress CIDR, 2 networks, listen 0.0.0.0:3128, tunnel-only');
  });

  it.concurrent('the three-mistake file: exit 1, all three paths with their lines', async ({ expect }) => {
    const r = await run(['check-config', threeMistakes]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `${threeMistakes}: invalid agent configuration (3 problems)\n` +
        '  gateway.egress_cidrs[0]: "203.0.113.0/33" is not a valid CIDR (line 4, column 18)\n' +
        '  proxy.max_tunnels: expected max_tunnels (a positive integer), got "lots" (line 9, column 16)\n' +
        '  proxy.bogus_key: unknown key "bogus_key" (line 10, column 3)\n',
    );
  });

  it.concurrent('the detector example listens on loopback; opened to other hosts without a token it is refused', async ({ expect }) => {
    expect((await runOnce(['check-config', 'config/detector.example.yaml'])).stdout).toContain('listen 127.0.0.1:8443');
    const open = join(tmp, 'open-detector.yaml');
    await writeFile(
      open,
      readFileSync(join(root, 'config/detector.example.yaml'), 'utf8').replace(/^listen: .*$/m, 'listen: 0.0.0.0:8443'),
    );
    const r = await run(['check-config', open]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${open}: invalid detector configuration (1 problem)\n` +
        '  listen: 0.0.0.0:8443 is reachable from other hosts and ingest.token_file is not set: anyone who reaches it could post CloudTrail events and GuardDuty findings; set ingest.token_file (with tls), listen on 127.0.0.1, or accept the risk with ingest.allow_unauthenticated: true (line 8, column 9)\n',
    );
    const allowed = join(tmp, 'allowed-detector.yaml');
    await writeFile(allowed, readFileSync(open, 'utf8').replace('allow_unauthenticated: false', 'allow_unauthenticated: true'));
    expect(await run(['check-config', allowed])).toMatchObject({
      code: 0,
      stderr:
        'warning: listen: 0.0.0.0:8443 is reachable from other hosts without TLS: telemetry and the bearer token cross the network in clear; set tls.cert and tls.key (docs/operations.md#detector-tls-in-five-commands)\n',
    });
  });

  it.concurrent('findings.security_hub: named in the summary; its problems at their key, its CA file checked', async ({ expect }) => {
    const base = 'listen: 127.0.0.1:8443\nfindings:\n  security_hub:\n    region: us-east-1\n';
    const good = join(tmp, 'securityhub.yaml');
    await writeFile(good, `${base}    account_id: "012345678901"\n`);
    expect((await runOnce(['check-config', good])).stdout).toContain(', Security Hub us-east-1 (account 012345678901)\n');
    const bad = join(tmp, 'securityhub-bad.yaml');
    await writeFile(bad, `${base}    account_id: 12345\n    ca_file: ${join(tmp, 'no-such-ca.pem')}\n`);
    expect(await run(['check-config', bad])).toMatchObject({
      code: 1,
      stderr:
        `${bad}: invalid detector configuration (1 problem)\n` +
        '  findings.security_hub.account_id: expected a 12-digit AWS account id in quotes, e.g. "012345678901" (line 5, column 17)\n',
    });
    const missingCa = join(tmp, 'securityhub-ca.yaml');
    await writeFile(missingCa, `${base}    account_id: "012345678901"\n    ca_file: ${join(tmp, 'no-such-ca.pem')}\n`);
    const r = await run(['check-config', missingCa]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`  findings.security_hub.ca_file: ${join(tmp, 'no-such-ca.pem')}: no such file\n`);
  });

  it.concurrent('a missing file: exit 1, naming the file', async ({ expect }) => {
    const missing = join(tmp, 'does-not-exist.yaml');
    const r = await run(['check-config', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${missing}: no such file`);
  });

  it.concurrent('a secret file readable by others: exit 1 with the chmod to run', async ({ expect }) => {
    const secret = join(tmp, 'loose.key');
    await writeFile(secret, 'not-so-secret\n');
    await chmod(secret, 0o644);
    const file = join(tmp, 'loose.yaml');
    await writeFile(
      file,
      `gateway: {id: gw-test, egress_cidrs: [203.0.113.0/28]}\nnetworks: [{name: lab, cidrs: [127.0.0.0/8]}]\ntelemetry: {detector_url: "http://127.0.0.1:1/v1/telemetry", secret_file: "${secret}"}\n`,
    );
    const r = await run(['check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `telemetry.secret_file: ${secret}: the telemetry HMAC secret is readable by others (mode 644); run: chmod 640 ${secret}`,
    );
  });

  // The 16-byte minimum of the HMAC secret is checked by check-config (preflight) too, not only when
  // the agent starts (agent/ship/telemetry-shipping.ts).
  it('a secret shorter than 16 bytes: exit 1, as the agent itself refuses it', async ({ expect }) => {
    const secret = join(tmp, 'short.key');
    await writeFile(secret, 'short\n', { mode: 0o600 });
    const file = join(tmp, 'short.yaml');
    await writeFile(
      file,
      `gateway: {id: gw-test, egress_cidrs: [203.0.113.0/28]}\nnetworks: [{name: lab, cidrs: [127.0.0.0/8]}]\ntelemetry: {detector_url: "http://127.0.0.1:1/v1/telemetry", secret_file: "${secret}"}\n`,
    );
    const r = await run(['check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('shorter than 16 bytes');
  });

  // doc.toJS() throws on an alias to an undefined anchor; check-config must report it as a problem
  // (not "egress-witness: ReferenceError …" and a stack trace).
  it('an unresolved YAML alias is reported as a problem, not a stack trace', async ({ expect }) => {
    const file = join(tmp, 'alias.yaml');
    await writeFile(file, 'gateway: *nope\n');
    const r = await run(['check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('ReferenceError');
    expect(r.stderr).toContain(`${file}: invalid`);
  });
});

describe('egress-witness suppression-rule', () => {
  it.concurrent('prints CreateFilter JSON with Action ARCHIVE and the egress CIDR', async ({ expect }) => {
    const r = await run(['suppression-rule', '--config', 'config/agent.example.yaml']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const input = JSON.parse(r.stdout) as {
      Action: string;
      Name: string;
      FindingCriteria: { Criterion: Record<string, { Equals: string[] }> };
    };
    expect(input.Action).toBe('ARCHIVE');
    expect(input.Name).toBe('egress-witness-gateway-cidrs');
    expect(input.FindingCriteria.Criterion.type!.Equals).toEqual(['UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS']);
    expect(input.FindingCriteria.Criterion['service.action.awsApiCallAction.remoteIpDetails.ipAddressV4']!.Equals).toEqual([
      '203.0.113.0/28',
    ]);
  });

  it.concurrent('--format cli --expand --detector-id prints the aws command whose criteria parse back', async ({ expect }) => {
    const r = await run([
      'suppression-rule',
      '--config',
      'config/agent.example.yaml',
      '--format',
      'cli',
      '--expand',
      '--detector-id',
      '12abc34d567e8fa901bc2d34e56789f0',
      '--name',
      'gw-dc1-static',
      '--rank',
      '5',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^aws guardduty create-filter \\\n {2}--detector-id '12abc34d567e8fa901bc2d34e56789f0' \\\n {2}--name 'gw-dc1-static' \\\n/,
    );
    expect(r.stdout).toContain('--action ARCHIVE');
    expect(r.stdout).toContain('--rank 5');
    const criteria = /--finding-criteria '([^']*)'\n$/.exec(r.stdout);
    expect(criteria).not.toBeNull();
    const parsed = JSON.parse(criteria![1]!) as { Criterion: Record<string, { Equals: string[] }> };
    expect(parsed.Criterion['service.action.awsApiCallAction.remoteIpDetails.ipAddressV4']!.Equals).toEqual(
      Array.from({ length: 16 }, (_, i) => `203.0.113.${i}`),
    );
  });

  it.concurrent("takes every gateway's CIDRs from a detector config, with a note for IPv6", async ({ expect }) => {
    const file = join(tmp, 'detector-gateways.yaml');
    await writeFile(
      file,
      'gateways:\n  - {id: gw-a, egress_cidrs: [203.0.113.0/28], secret_file: /x}\n  - {id: gw-b, egress_cidrs: [198.51.100.9, "2001:db8::/48"], secret_file: /y}\n',
    );
    const r = await run(['suppression-rule', '--config', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      'note: 2001:db8::/48: IPv6 is not matched by the ipAddressV4 criterion; GuardDuty has no IPv6 filter attribute for it\n',
    );
    const input = JSON.parse(r.stdout) as { FindingCriteria: { Criterion: Record<string, { Equals: string[] }> } };
    expect(input.FindingCriteria.Criterion['service.action.awsApiCallAction.remoteIpDetails.ipAddressV4']!.Equals).toEqual([
      '203.0.113.0/28',
      '198.51.100.9',
    ]);
  });

  it.concurrent.for(['abc', '1.5', '0', '101', '-1', '1e2', ''])('--rank %j is a usage error: exit 2', async (rank, { expect }) => {
    const r = await run(['suppression-rule', '--config', 'config/agent.example.yaml', '--rank', rank]);
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr: `error: option '--rank <n>' argument '${rank}' is invalid. expected an integer 1-100, got "${rank}"\n(run with --help for usage)\n`,
    });
  });

  it.concurrent.for(['1', '100'])('--rank %s is accepted', async (rank, { expect }) => {
    const r = await run(['suppression-rule', '--config', 'config/agent.example.yaml', '--format', 'cli', '--rank', rank]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`--rank ${rank} \\\n`);
  });

  it.concurrent('exit 1 when there is nothing to put in the rule', async ({ expect }) => {
    const none = await run(['suppression-rule', '--config', 'config/detector.example.yaml']);
    expect(none).toMatchObject({ code: 1, stdout: '', stderr: 'suppression-rule: no IPv4 egress CIDRs to put in the rule\n' });
  });
});

describe('egress-witness ca init', () => {
  it.concurrent('writes a CA certificate and a 0600 key, and refuses to overwrite without --force', async ({ expect }) => {
    const out = join(tmp, 'ca');
    const first = await run(['ca', 'init', '--out', out]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`Wrote ${join(out, 'ca.pem')} (certificate) and ${join(out, 'ca-key.pem')} (private key, mode 0600).`);

    const certPem = await readFile(join(out, 'ca.pem'), 'utf8');
    const cert = new X509Certificate(certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toContain('CN=egress-witness inspection CA');
    expect(cert.checkPrivateKey(createPrivateKey(await readFile(join(out, 'ca-key.pem'))))).toBe(true);
    expect((await stat(join(out, 'ca-key.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(out, 'ca.pem'))).mode & 0o777).toBe(0o644);

    const again = await run(['ca', 'init', '--out', out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`ca init: ${join(out, 'ca-key.pem')} already exists; pass --force to replace it\n`);
    expect(await readFile(join(out, 'ca.pem'), 'utf8')).toBe(certPem);

    const forced = await run(['ca', 'init', '--out', out, '--force', '--name', 'Replaced CA']);
    expect(forced.code).toBe(0);
    const replaced = new X509Certificate(await readFile(join(out, 'ca.pem')));
    expect(replaced.subject).toContain('CN=Replaced CA');
    expect(replaced.serialNumber).not.toBe(cert.serialNumber);
    expect((await stat(join(out, 'ca-key.pem'))).mode & 0o777).toBe(0o600);
  });
});

describe('egress-witness ca init --validity-days', () => {
  it.concurrent.for(['abc', '1.5', '0', '3651', '-1', ''])(
    '--validity-days %j is a usage error: exit 2, and nothing is written',
    async (days, { expect }) => {
      const out = join(tmp, `ca-days-${days || 'empty'}`);
      const r = await run(['ca', 'init', '--out', out, '--validity-days', days]);
      expect(r).toEqual({
        code: 2,
        stdout: '',
        stderr: `error: option '--validity-days <n>' argument '${days}' is invalid. expected an integer 1-3650, got "${days}"\n(run with --help for usage)\n`,
      });
      expect(existsSync(out)).toBe(false);
    },
  );

  it.concurrent('--validity-days 30 makes a CA valid for 30 days', async ({ expect }) => {
    const out = join(tmp, 'ca-days-30');
    const r = await run(['ca', 'init', '--out', out, '--validity-days', '30']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const cert = new X509Certificate(await readFile(join(out, 'ca.pem')));
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(Math.round(days)).toBe(30);
  });
});

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const cache = new Map<string, Promise<RunResult>>();

/** `run`, once per argument list: tests that look at the same output share one process. */
function runOnce(args: string[]): Promise<RunResult> {
  const key = JSON.stringify(args);
  let p = cache.get(key);
  if (!p) cache.set(key, (p = run(args)));
  return p;
}

/** Runs the built CLI from the repository root, with no stdin and a 15 s limit. */
function run(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 15_000,
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
