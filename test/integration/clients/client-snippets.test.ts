// The client snippets of docs/clients.md, run as their users would run them — each a child process of the real
// client (the AWS SDK for JavaScript v3, the AWS CLI, botocore) — through an inspecting agent on loopback to a
// loopback "STS". Each must succeed, trust the inspection CA the way the guide says, and be attributed: the
// agent's observation names the key and the action. The guide shows each file's code verbatim.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInspectionCa } from '../../../agent/tls/ca.js';
import { writeCaFiles } from '../../../agent/tls/ca-files.js';
import { createTestCa } from '../../helpers/pki.js';
import { startFakeAws, type FakeAws } from '../../helpers/fake-aws.js';
import { startAgent, type TestAgent } from '../../helpers/agent.js';

const run = promisify(execFile);
const SNIPPETS = resolve('docs/clients');
const guide = readFileSync(resolve('docs/clients.md'), 'utf8');
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

let dir: string;
let fake: FakeAws;
let agent: TestAgent;
let caPath: string;
let bundlePath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ew-clients-'));
  const upstreamCa = await createTestCa('fake AWS CA');
  writeFileSync(join(dir, 'upstream-ca.pem'), upstreamCa.certPem);
  fake = await startFakeAws(await upstreamCa.issue({ dns: ['*.us-east-1.amazonaws.com', 'sts.amazonaws.com'] }));
  const ca = await createInspectionCa({ permittedDomains: ['amazonaws.com', 'api.aws'] });
  const paths = await writeCaFiles(join(dir, 'ca'), ca);
  caPath = paths.certPath;
  // What AWS_CA_BUNDLE must hold: the system roots (tunnelled hosts show AWS's own certificates) and the inspection CA.
  bundlePath = join(dir, 'bundle.pem');
  writeFileSync(bundlePath, `${systemRoots()}\n${ca.certPem}`);
  agent = await startAgent({
    proxy: { allow_destination_cidrs: ['127.0.0.1/32'] },
    inspect: { ca_cert: paths.certPath, ca_key: paths.keyPath },
    upstream: { ca_file: join(dir, 'upstream-ca.pem'), resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}` } },
  });
}, 30_000);

afterAll(async () => {
  await agent?.stop();
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function systemRoots(): string {
  for (const f of ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt']) {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      // next
    }
  }
  return '';
}

/** A fresh key per client, so that each observation is told apart. */
let n = 0;
function credentials(): { key: string; env: Record<string, string> } {
  const key = `ASIAY34FZKBOKMUTV${String(++n).padStart(3, '0')}`;
  return {
    key,
    env: {
      AWS_ACCESS_KEY_ID: key,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_SESSION_TOKEN: 'example-session-token',
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(dir, 'no-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-credentials'),
    },
  };
}

/** The environment of a routed client: only the proxy and no other (no inherited proxy, no inherited CA settings). */
function clientEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir, LANG: 'C.UTF-8' };
  return { ...env, HTTPS_PROXY: `http://127.0.0.1:${agent.proxyPort}`, NO_PROXY: '169.254.169.254,fd00:ec2::254', ...extra };
}

async function attributed(key: string): Promise<Record<string, unknown>> {
  await agent.flush();
  const o = agent.observations().find((x) => x.accessKeyId === key);
  expect(o, `an observation with the key ${key}`).toBeDefined();
  return o!;
}

function expectInGuide(file: string): void {
  const code = readFileSync(join(SNIPPETS, file), 'utf8').trim();
  expect(guide.includes(code), `docs/clients.md shows docs/clients/${file} verbatim`).toBe(true);
}

const CI = process.env.CI !== undefined && process.env.CI !== '';
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const nodeHasProxyEnv = major > 24 || (major === 24 && minor >= 5);

describe('AWS SDK for JavaScript v3', () => {
  it('hpagent + NODE_EXTRA_CA_CERTS: attributed through the agent', async () => {
    expectInGuide('js-sdk-v3-hpagent.mjs');
    const { key, env } = credentials();
    const { stdout } = await run(process.execPath, [join(SNIPPETS, 'js-sdk-v3-hpagent.mjs')], {
      env: clientEnv({ ...env, NODE_EXTRA_CA_CERTS: caPath }),
      timeout: 30_000,
    });
    expect(JSON.parse(stdout)).toMatchObject({ Account: '123456789012' });
    expect(await attributed(key)).toMatchObject({ mode: 'inspect', action: 'GetCallerIdentity', aws: { service: 'sts' } });
  });

  it(`Node.js ≥ 24.5, https.Agent proxyEnv: attributed through the agent where the running Node.js has it (this run: Node.js ${process.versions.node})`, async () => {
    expectInGuide('js-sdk-v3-node24.mjs');
    expect(guide).toContain('24.5');
    // Older Node.js lines ignore proxyEnv: the snippet's call would not pass the agent, so only the guide is checked there.
    if (!nodeHasProxyEnv) return;
    const { key, env } = credentials();
    const { stdout } = await run(process.execPath, [join(SNIPPETS, 'js-sdk-v3-node24.mjs')], {
      env: clientEnv({ ...env, NODE_EXTRA_CA_CERTS: caPath }),
      timeout: 30_000,
    });
    expect(JSON.parse(stdout)).toMatchObject({ Account: '123456789012' });
    expect(await attributed(key)).toMatchObject({ mode: 'inspect', action: 'GetCallerIdentity' });
  });
});

/** Each distinct client found among `candidates` (by its `--version`-like answer), so v1 and v2 both run where both exist. */
async function distinct(candidates: string[], args: string[]): Promise<{ bin: string; version: string }[]> {
  const out = new Map<string, string>();
  for (const c of candidates) {
    try {
      const { stdout, stderr } = await run(c, args, { timeout: 20_000 });
      const version = `${stdout}${stderr}`.trim().split('\n')[0]!;
      if (![...out.values()].includes(version)) out.set(c, version);
    } catch {
      // not installed
    }
  }
  return [...out].map(([bin, version]) => ({ bin, version }));
}

const MISSING = (what: string, pkg: string): string =>
  `${what} is not installed here: the snippet is not run (CI installs the Debian package ${pkg}; apt-get install ${pkg})`;

describe('AWS CLI', () => {
  it('HTTPS_PROXY and AWS_CA_BUNDLE: attributed through the agent, every CLI version installed', async (ctx) => {
    const clis = await distinct(['/usr/bin/aws', 'aws'], ['--version']);
    if (clis.length === 0) {
      if (CI) throw new Error(MISSING('the AWS CLI', 'awscli'));
      ctx.skip(MISSING('the AWS CLI', 'awscli'));
    }
    expect(guide).toContain('AWS_CA_BUNDLE=/etc/egress-witness/ca-bundle.pem aws sts get-caller-identity');
    for (const cli of clis) {
      const { key, env } = credentials();
      const { stdout } = await run(cli.bin, ['sts', 'get-caller-identity', '--output', 'json'], {
        env: clientEnv({ ...env, AWS_CA_BUNDLE: bundlePath }),
        timeout: 60_000,
      });
      expect(JSON.parse(stdout), cli.version).toMatchObject({ Account: '123456789012' });
      expect(await attributed(key), cli.version).toMatchObject({ mode: 'inspect', action: 'GetCallerIdentity' });
    }
  }, 120_000);
});

describe('boto3 / botocore', () => {
  it('HTTPS_PROXY and AWS_CA_BUNDLE: attributed through the agent, every botocore installed', async (ctx) => {
    const pythons = await distinct(['/usr/bin/python3', 'python3'], ['-c', 'import botocore; print("botocore", botocore.__version__)']);
    if (pythons.length === 0) {
      if (CI) throw new Error(MISSING('botocore', 'python3-botocore'));
      ctx.skip(MISSING('botocore', 'python3-botocore'));
    }
    expectInGuide('botocore_sts.py');
    for (const py of pythons) {
      const { key, env } = credentials();
      const { stdout } = await run(py.bin, [join(SNIPPETS, 'botocore_sts.py')], {
        env: clientEnv({ ...env, AWS_CA_BUNDLE: bundlePath }),
        timeout: 60_000,
      });
      expect(JSON.parse(stdout), py.version).toMatchObject({ Account: '123456789012' });
      expect(await attributed(key), py.version).toMatchObject({ mode: 'inspect', action: 'GetCallerIdentity' });
    }
  }, 120_000);
});

// Last: a client that rejected the agent's certificate has that host tunnelled for it from then on.
describe('a client that does not trust the inspection CA', () => {
  it('without NODE_EXTRA_CA_CERTS the SDK refuses the certificate of the agent: the CA step is needed', async () => {
    const { env } = credentials();
    const failed = await run(process.execPath, [join(SNIPPETS, 'js-sdk-v3-hpagent.mjs')], { env: clientEnv(env), timeout: 30_000 }).then(
      () => null,
      (err: Error & { stderr?: string }) => err.stderr ?? String(err),
    );
    expect(failed).toMatch(/certificate|UNABLE_TO_VERIFY|self.signed|issuer/i);
  });
});
