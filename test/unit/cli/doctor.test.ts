/**
 * `egress-witness doctor` as a child process of the built CLI, against a real detector (a child
 * process too) listening with TLS on loopback: each failing check says what failed and the fix.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../../helpers/pki.js';
import { freePort, startTelemetryReceiver } from '../../helpers/telemetry-receiver.js';
import { nodeCheck } from '../../../cli/commands/doctor.js';
import { meetsEngines } from '../../../common/runtime/node-support.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');
const SECRET = 'doctor-shared-secret-0123456789abcdef\n';

let tmp: string;
let detector: ChildProcess;
let ingest: number;
const held: net.Server[] = [];

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const engines = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
/** The node check warns on a release older than the supported ones (the development machines' Node.js 20). */
const nodeWarnings = meetsEngines(process.version, engines) === false ? 1 : 0;

/** The summary's warnings: the test's own and this Node.js's. */
function warnings(own: number, after: (w: string) => string): string {
  const n = own + nodeWarnings;
  return n === 0 ? '' : after(`${n} warning${n === 1 ? '' : 's'}`);
}
const passed = (own: number): RegExp => new RegExp(`\\nall checks passed${warnings(own, (w) => ` \\(${w}\\)`)}\\n$`);
const failed = (n: number, own: number): RegExp => new RegExp(`\\n${n} checks failed${warnings(own, (w) => `, ${w}`)}\\n$`);

/** The line of one check, e.g. "FAIL  detector: …". */
function line(r: RunResult, name: string): string {
  return r.stdout.split('\n').find((l) => l.slice(6).startsWith(`${name}: `)) ?? `(no ${name} line in)\n${r.stdout}`;
}

async function agentConfig(name: string, o: { url?: string; gateway?: string; secret?: string; ca?: boolean; extra?: string } = {}) {
  const secretFile = join(tmp, `${name}.key`);
  await writeFile(secretFile, o.secret ?? SECRET, { mode: 0o600 });
  const file = join(tmp, `${name}.yaml`);
  await writeFile(
    file,
    [
      `gateway: {id: ${o.gateway ?? 'gw-doc'}, egress_cidrs: [203.0.113.0/28]}`,
      'networks: [{name: lab, cidrs: [127.0.0.0/8]}]',
      'proxy: {listen: "127.0.0.1:0"}',
      'admin: {listen: "127.0.0.1:0"}',
      `telemetry: {detector_url: "${o.url ?? `https://127.0.0.1:${ingest}/v1/telemetry`}", secret_file: ${secretFile}, spool_dir: ${join(tmp, 'spool')}}`,
      o.ca === false ? '' : `upstream: {ca_file: ${join(tmp, 'ca.pem')}}`,
      o.extra ?? '',
    ].join('\n'),
  );
  return file;
}

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'egress-witness-doctor-'));
  const ca = await createTestCa('doctor test CA');
  const leaf = await ca.issue({ dns: ['localhost'], ips: ['127.0.0.1'] });
  await writeFile(join(tmp, 'ca.pem'), ca.certPem);
  await writeFile(join(tmp, 'detector.pem'), leaf.certPem);
  await writeFile(join(tmp, 'detector-key.pem'), leaf.keyPem, { mode: 0o600 });
  await writeFile(join(tmp, 'gw-doc.key'), SECRET, { mode: 0o600 });
  ingest = await freePort();
  const admin = await freePort();
  await writeFile(
    join(tmp, 'detector.yaml'),
    [
      `listen: 127.0.0.1:${ingest}`,
      `admin: {listen: "127.0.0.1:${admin}"}`,
      `tls: {cert: ${join(tmp, 'detector.pem')}, key: ${join(tmp, 'detector-key.pem')}}`,
      `store: {path: ${join(tmp, 'detector.db')}}`,
      `gateways: [{id: gw-doc, egress_cidrs: [203.0.113.0/28], secret_file: ${join(tmp, 'gw-doc.key')}}]`,
      '',
    ].join('\n'),
  );
  detector = spawn(process.execPath, [bin, 'detector', '--config', join(tmp, 'detector.yaml')], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${admin}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 300 || detector.exitCode !== null) throw new Error('the detector did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  if (detector && detector.exitCode === null) {
    detector.kill('SIGTERM');
    await new Promise((r) => detector.once('close', r));
  }
  for (const s of held) await new Promise((r) => s.close(r));
  await rm(tmp, { recursive: true, force: true });
});

describe('egress-witness doctor, node', () => {
  it('a supported Node.js is ok, an older one a warning that says what to run the daemons on', () => {
    expect(nodeCheck('v24.11.1', '>=22.13.0')).toEqual({
      status: 'ok',
      name: 'node',
      detail: 'Node.js v24.11.1 is a supported release (>=22.13.0)',
    });
    const old = nodeCheck('v20.20.2', '>=22.13.0');
    expect(old?.status).toBe('warn');
    expect(old?.detail).toContain('Node.js v20.20.2 is older than the supported releases (>=22.13.0');
    expect(old?.detail).toContain('systemd/install.sh --node PATH');
    expect(nodeCheck('v22.12.0', '>=22.13.0')?.status).toBe('warn');
    expect(nodeCheck('v22.13.0', '>=22.13.0')?.status).toBe('ok');
  });

  it('no line when the supported range cannot be read', () => {
    expect(nodeCheck('v20.20.2', '')).toBeNull();
    expect(nodeCheck('v20.20.2', '^22 || ^24')).toBeNull();
  });
});

describe('egress-witness doctor, agent', () => {
  it('a working setup: every check ok, the heartbeat accepted over trusted TLS, the clock compared; exit 0', async () => {
    const r = await run(['doctor', '--config', await agentConfig('good')]);
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
    expect(line(r, 'detector')).toBe(
      `ok    detector: https://127.0.0.1:${ingest} accepted a signed heartbeat from gateway gw-doc over trusted TLS`,
    );
    expect(line(r, 'clock')).toMatch(/^ok {4}clock: within \d+ s of the detector's$/);
    expect(line(r, 'node')).toMatch(nodeWarnings ? /^warn {2}node: Node\.js v\S+ is older than the supported releases/ : /^ok {4}node: /);
    expect(r.stdout).toMatch(passed(0));
  });

  it('an untrusted detector certificate names upstream.ca_file', async () => {
    const r = await run(['doctor', '--config', await agentConfig('untrusted', { ca: false })]);
    expect(r.code).toBe(1);
    expect(line(r, 'detector')).toMatch(
      /^FAIL {2}detector: the detector's TLS certificate at 127\.0\.0\.1:\d+ is not trusted: .*upstream\.ca_file .*\(docs\/operations\.md#detector-tls-in-five-commands\)$/,
    );
  });

  it('an unknown gateway id names gateway.id and the detector gateways list', async () => {
    const r = await run(['doctor', '--config', await agentConfig('unknown', { gateway: 'gw-other' })]);
    expect(r.code).toBe(1);
    expect(line(r, 'detector')).toMatch(
      /^FAIL {2}detector: the detector does not know gateway "gw-other" \(gateway\.id\): add it to the detector's gateways list.* \(docs\/configuration\.md#gateways\)$/,
    );
  });

  it('a secret that is not the detector’s names telemetry.secret_file', async () => {
    const r = await run(['doctor', '--config', await agentConfig('secret', { secret: 'another-secret-0123456789abcdef\n' })]);
    expect(r.code).toBe(1);
    expect(line(r, 'detector')).toMatch(/^FAIL {2}detector: .*telemetry\.secret_file/);
  });

  it('http:// against the TLS listener says to use https://', async () => {
    const r = await run(['doctor', '--config', await agentConfig('plain', { url: `http://127.0.0.1:${ingest}/v1/telemetry` })]);
    expect(r.code).toBe(1);
    expect(line(r, 'detector')).toMatch(
      /^FAIL {2}detector: the detector at 127\.0\.0\.1:\d+ speaks TLS: telemetry\.detector_url must start with https:\/\/ \(it says http:\/\/; docs\/operations\.md#detector-tls-in-five-commands\)$/,
    );
  });

  it('nothing listening at detector_url: cannot reach it, naming telemetry.detector_url', async () => {
    const port = await freePort();
    const r = await run(['doctor', '--config', await agentConfig('down', { url: `https://127.0.0.1:${port}/v1/telemetry` })]);
    expect(r.code).toBe(1);
    expect(line(r, 'detector')).toBe(
      `FAIL  detector: cannot reach https://127.0.0.1:${port} (ECONNREFUSED): is the detector running and listening there? check telemetry.detector_url and the detector's listen`,
    );
  });

  it('an inspection CA whose key does not match, and a listen port in use (a warning)', async () => {
    for (const d of ['a', 'b']) {
      await mkdir(join(tmp, `ca-${d}`), { recursive: true });
      expect((await run(['ca', 'init', '--out', join(tmp, `ca-${d}`)])).code).toBe(0);
    }
    const s = net.createServer();
    await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
    held.push(s);
    const port = (s.address() as net.AddressInfo).port;
    const file = await agentConfig('ca-mismatch', {
      extra: `inspect: {ca_cert: ${join(tmp, 'ca-a/ca.pem')}, ca_key: ${join(tmp, 'ca-b/ca-key.pem')}}`,
    });
    await writeFile(file, readFileSync(file, 'utf8').replace('admin: {listen: "127.0.0.1:0"}', `admin: {listen: "127.0.0.1:${port}"}`));
    const r = await run(['doctor', '--config', file]);
    expect(r.code).toBe(1);
    expect(line(r, 'inspection CA')).toBe(
      "FAIL  inspection CA: inspect.ca_key does not match inspect.ca_cert (the key's public half differs from the certificate's)",
    );
    expect(line(r, 'admin.listen')).toBe(
      `warn  admin.listen: 127.0.0.1:${port} is in use: fine if the agent itself is running; otherwise stop the process that holds it or set admin.listen to a free address (docs/configuration.md#listen-addresses)`,
    );
  });

  it('a listen address that is not this host’s: FAIL naming the key, the fix and the doc section', async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this host: binding it fails at once, nothing is sent.
    const file = await agentConfig('not-here', { url: `http://127.0.0.1:${await freePort()}/v1/telemetry` });
    await writeFile(file, readFileSync(file, 'utf8').replace('proxy: {listen: "127.0.0.1:0"}', 'proxy: {listen: "192.0.2.1:3128"}'));
    const r = await run(['doctor', '--config', file]);
    expect(r.code).toBe(1);
    expect(line(r, 'proxy.listen')).toBe(
      'FAIL  proxy.listen: proxy.listen: 192.0.2.1 is not an address of this host (EADDRNOTAVAIL); set proxy.listen to one of its addresses, 127.0.0.1 or 0.0.0.0 (docs/configuration.md#listen-addresses)',
    );
  });

  it('an invalid file: every problem, and no further checks', async () => {
    const file = join(tmp, 'invalid.yaml');
    await writeFile(file, 'gateway: {id: gw-doc, egress_cidrs: [203.0.113.0/33]}\nnetworks: [{name: lab, cidrs: [127.0.0.0/8]}]\n');
    const r = await run(['doctor', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      `FAIL  config: gateway.egress_cidrs[0]: "203.0.113.0/33" is not a valid CIDR (line 1, column 38)\n` +
        `${file}: fix the configuration first (egress-witness check-config ${file} lists the same problems)\n`,
    );
  });
});

describe('egress-witness doctor, the clock', () => {
  it('a detector whose Date is 90 s off: a warning naming NTP and ingest.clock_skew, either way; the exit code stays 0', async () => {
    // A loopback server speaking the detector's ingest contract (signature checked, batch validated), its clock skewed.
    const receiver = await startTelemetryReceiver({ secret: Buffer.from(SECRET.trim()) });
    try {
      for (const [offset, word] of [
        [90_000, 'behind'],
        [-90_000, 'ahead of'],
      ] as const) {
        receiver.script({ status: 200, headers: { date: new Date(Date.now() + offset).toUTCString() }, body: '{"accepted":true}' });
        const r = await run(['doctor', '--config', await agentConfig(`skew${offset}`, { url: receiver.url, ca: false })]);
        expect(r.code, r.stdout).toBe(0);
        expect(line(r, 'detector')).toBe(
          `ok    detector: http://127.0.0.1:${receiver.port} accepted a signed heartbeat from gateway gw-doc`,
        );
        // The Date was set before doctor started: the clocks read 90 s apart, give or take its start-up time.
        const clock = line(r, 'clock');
        const m = new RegExp(
          `^warn  clock: this host's clock is (\\d+) s ${word} the detector's: run NTP on both \\(the detector refuses signatures beyond its ingest\\.clock_skew, and correlation matches times\\)$`,
        ).exec(clock);
        expect(m, clock).not.toBeNull();
        expect(Number(m![1])).toBeGreaterThan(60);
        expect(Number(m![1])).toBeLessThan(120);
        expect(r.stdout).toMatch(passed(1));
      }
      // The heartbeats were signed and valid: the server took them as the detector would have.
      expect(receiver.attempts.map((a) => a.outcome)).toEqual(['scripted', 'scripted']);
      expect(receiver.verifierDisagreements).toBe(0);
    } finally {
      await receiver.stop();
    }
  });
});

describe('egress-witness doctor, detector', () => {
  it('the running detector’s own file: its listen ports in use are warnings; TLS and the store are checked', async () => {
    const r = await run(['doctor', '--config', join(tmp, 'detector.yaml')]);
    expect(r.code, r.stdout).toBe(0);
    expect(line(r, 'listen')).toMatch(/^warn {2}listen: 127\.0\.0\.1:\d+ is in use: fine if the detector itself is running/);
    expect(line(r, 'tls')).toMatch(/^ok {4}tls: tls\.cert and tls\.key match; names DNS:localhost, IP Address:127\.0\.0\.1; valid until /);
    expect(line(r, 'store')).toBe(`ok    store: store.path ${join(tmp, 'detector.db')} is a detector store`);
  });

  it('a key that is not the certificate’s, a store that is not one, a missing secret', async () => {
    const other = await (await createTestCa('other')).issue({ dns: ['localhost'] });
    await writeFile(join(tmp, 'other-key.pem'), other.keyPem, { mode: 0o600 });
    await writeFile(join(tmp, 'not-a-store.db'), 'hello\n');
    const file = join(tmp, 'broken-detector.yaml');
    await writeFile(
      file,
      [
        'listen: 127.0.0.1:0',
        'admin: {listen: "127.0.0.1:0"}',
        `tls: {cert: ${join(tmp, 'detector.pem')}, key: ${join(tmp, 'other-key.pem')}}`,
        `store: {path: ${join(tmp, 'not-a-store.db')}}`,
        `gateways: [{id: gw-doc, egress_cidrs: [203.0.113.0/28], secret_file: ${join(tmp, 'missing.key')}}]`,
        '',
      ].join('\n'),
    );
    const r = await run(['doctor', '--config', file]);
    expect(r.code).toBe(1);
    expect(line(r, 'files')).toBe(`FAIL  files: gateways[0].secret_file: ${join(tmp, 'missing.key')}: no such file`);
    expect(line(r, 'tls')).toBe('FAIL  tls: tls.key does not match tls.cert (the key of another certificate?)');
    expect(line(r, 'store')).toMatch(new RegExp(`^FAIL {2}store: store\\.path ${join(tmp, 'not-a-store.db')} is not a detector store`));
    expect(r.stdout).toMatch(failed(3, 0));
  });
});
