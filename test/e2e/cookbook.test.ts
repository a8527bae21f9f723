/**
 * docs/operations.md's cookbook runs as written. Recipes 1–4 are read from the doc's code blocks
 * and run by bash in a scratch folder, the daemons as child processes, with only the changes the
 * cookbook's introduction names:
 *
 *   - `ew` is the built CLI (the introduction's alias, without `npm ci`, `npm run build`, `cd lab`);
 *   - the fixed ports 3128, 8443, 8444, 9464 and 9465 become free ones, and each agent.yaml and
 *     detector.yaml gets `admin: {listen: …}` for the admin port it would have taken by default;
 *   - a local TLS server stands in for AWS as the introduction says (`upstream.resolve`,
 *     `proxy.allow_destination_cidrs`, `upstream.ca_file`, and CURL_CA_BUNDLE for curl's own
 *     trust of it); like STS for the example credentials it answers 403 InvalidClientTokenId.
 *
 * A line that starts a daemon in the foreground (`ew agent --config …`, `ew detector --config …`,
 * or a line ending in `&`) runs in its own process group until the recipe says to stop it (Ctrl-C:
 * SIGINT). The outputs the doc shows (the observation JSON, the POST's answer, the replay summary's
 * decisions) are compared with what the commands print. Blocks that need what a loopback test
 * cannot have (real AWS credentials for the AWS CLI, dead letters for resend.py) are named below
 * and checked to be still there, unchanged, so that no new block escapes the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../helpers/pki.js';
import { freePort } from '../helpers/telemetry-receiver.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');

/** Recipe 2's AWS CLI block, not run: it needs real credentials (docs/clients.md's test runs the AWS CLI through an agent). */
const AWS_CLI_BLOCK =
  'cat /etc/ssl/certs/ca-certificates.crt ca/ca.pem > bundle.pem\nAWS_CA_BUNDLE=$PWD/bundle.pem HTTPS_PROXY=http://127.0.0.1:3128 aws sts get-caller-identity\n';

interface Block {
  lang: string;
  code: string;
}

/** The cookbook's recipes (### headings up to "Resend dead letters") with their code blocks, in order. */
function cookbook(): { intro: Block[]; recipes: Map<string, Block[]> } {
  const text = readFileSync(join(root, 'docs/operations.md'), 'utf8');
  const start = text.indexOf('## Cookbook');
  const end = text.indexOf('### Resend dead letters');
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  const parts = text.slice(start, end).split(/^### /m);
  const blocks = (s: string): Block[] => [...s.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
  return {
    intro: blocks(parts[0]!),
    recipes: new Map(parts.slice(1).map((p) => [p.slice(0, p.indexOf('\n')).trim(), blocks(p)])),
  };
}

let tmp: string;
let server: https.Server;
const ports = { proxy: 0, agentAdmin: 0, ingest: 0, detectorAdmin: 0, aws: 0 };
const daemons = new Set<ChildProcess>();

/** The doc's text with the substitutions the cookbook's introduction names. */
function local(code: string): string {
  let out = code
    .replaceAll('127.0.0.1:3128', `127.0.0.1:${ports.proxy}`)
    .replaceAll('127.0.0.1:9464', `127.0.0.1:${ports.agentAdmin}`)
    .replaceAll('127.0.0.1:8443', `127.0.0.1:${ports.ingest}`)
    .replaceAll('127.0.0.1:9465', `127.0.0.1:${ports.detectorAdmin}`);
  out = out.replace(/(cat > agent\.yaml <<'EOF'\n)([\s\S]*?)^EOF$/m, (_m, head: string, body: string) => {
    const proxy = `proxy: {listen: 127.0.0.1:${ports.proxy}}`;
    expect(body).toContain(proxy);
    return (
      head +
      body.replace(proxy, `proxy: {listen: 127.0.0.1:${ports.proxy}, allow_destination_cidrs: [127.0.0.1/32]}`) +
      `admin: {listen: "127.0.0.1:${ports.agentAdmin}"}\n` +
      `upstream: {resolve: {"*.amazonaws.com": "127.0.0.1:${ports.aws}"}, ca_file: ${join(tmp, 'local-aws-ca.pem')}}\n` +
      'EOF'
    );
  });
  out = out.replace(
    /(cat > detector\.yaml <<'EOF'\n)([\s\S]*?)^EOF$/m,
    (_m, head: string, body: string) => `${head}${body}admin: {listen: "127.0.0.1:${ports.detectorAdmin}"}\nEOF`,
  );
  return out;
}

const PRELUDE = `ew() { "$EW_NODE" "$EW_BIN" "$@"; }\n`;

function env(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: tmp,
    LANG: 'C.UTF-8',
    EW_NODE: process.execPath,
    EW_BIN: bin,
    CURL_CA_BUNDLE: join(tmp, 'local-aws-ca.pem'),
  };
}

/** Runs commands of the doc in the scratch folder; resolves with what they printed, rejects on a failure. */
function sh(code: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-e', '-c', PRELUDE + code], {
      cwd: tmp,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      if (status === 0) resolve({ stdout, stderr });
      else reject(new Error(`exit ${status}:\n${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
    });
  });
}

interface Daemon {
  child: ChildProcess;
  output: () => string;
}

/** A daemon line as a terminal runs it: its own process group, stopped with Ctrl-C (SIGINT). */
async function startDaemon(line: string): Promise<Daemon> {
  const child = spawn('bash', ['-c', PRELUDE + line.replace(/\s*&$/, '')], {
    cwd: tmp,
    env: env(),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  daemons.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const admin = /\bew detector\b/.test(line) ? ports.detectorAdmin : ports.agentAdmin;
  for (let i = 0; ; i++) {
    const ready = await fetch(`http://127.0.0.1:${admin}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (i > 600 || child.exitCode !== null) throw new Error(`${line} did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, output: () => output };
}

async function stop(d: Daemon): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  const closed = new Promise((r) => d.child.once('close', r));
  process.kill(-d.child.pid!, 'SIGINT');
  const timer = setTimeout(() => process.kill(-d.child.pid!, 'SIGKILL'), 40_000);
  await closed;
  clearTimeout(timer);
  daemons.delete(d.child);
}

const DAEMON_LINE = /^ew (agent|detector) --config \S+( \|.*)?$|&$/;

/** A block run as a terminal would: commands before a daemon line, the daemon, then the rest. */
async function run(block: Block): Promise<{ stdout: string; stderr: string; daemons: Daemon[] }> {
  const lines = local(block.code).split('\n');
  const started: Daemon[] = [];
  let pending: string[] = [];
  let stdout = '';
  let stderr = '';
  const flush = async (): Promise<void> => {
    if (pending.join('').trim() === '') return;
    const r = await sh(pending.join('\n'));
    stdout += r.stdout;
    stderr += r.stderr;
    pending = [];
  };
  for (const line of lines) {
    if (DAEMON_LINE.test(line)) {
      await flush();
      started.push(await startDaemon(line));
    } else pending.push(line);
  }
  await flush();
  return { stdout, stderr, daemons: started };
}

async function waitFor<T>(probe: () => T | null | Promise<T | null>, what: string, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'egress-witness-cookbook-'));
  const ca = await createTestCa('local AWS stand-in CA');
  const leaf = await ca.issue({ dns: ['*.us-east-1.amazonaws.com', 'sts.amazonaws.com'] });
  await writeFile(join(tmp, 'local-aws-ca.pem'), ca.certPem);
  // As STS answers the example credentials: 403, InvalidClientTokenId.
  server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    req.resume();
    req.on('end', () =>
      res
        .writeHead(403, { 'content-type': 'text/xml' })
        .end(
          '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>',
        ),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ports.aws = (server.address() as AddressInfo).port;
  ports.proxy = await freePort();
  ports.agentAdmin = await freePort();
  ports.ingest = await freePort();
  ports.detectorAdmin = await freePort();
});

afterAll(async () => {
  for (const child of daemons) {
    if (child.exitCode === null && child.signalCode === null) {
      const closed = new Promise((r) => child.once('close', r));
      process.kill(-child.pid!, 'SIGKILL');
      await closed;
    }
  }
  await new Promise((r) => server?.close(r));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('docs/operations.md cookbook', () => {
  it('recipes 1–4 run as written on loopback and print what the doc shows', { timeout: 240_000 }, async () => {
    const { intro, recipes } = cookbook();
    expect([...recipes.keys()]).toEqual([
      '1. Tunnel-only agent',
      '2. Inspect mode',
      '3. Shipping to a detector',
      '4. Replay (offline forensics)',
    ]);
    const introText = readFileSync(join(root, 'docs/operations.md'), 'utf8');
    // The introduction says what this test changes.
    for (const said of [
      'upstream.resolve',
      'proxy.allow_destination_cidrs',
      'upstream.ca_file',
      'CURL_CA_BUNDLE',
      'test/e2e/cookbook.test.ts',
    ])
      expect(introText.slice(introText.indexOf('## Cookbook'))).toContain(said);
    expect(intro.map((b) => b.code.split('\n')[0])).toEqual(['npm ci && npm run build']);
    expect(intro[0]!.code).toContain('alias ew="node $PWD/dist/cli/main.js"');

    // 1. Tunnel-only agent.
    const [r1agent, r1client, ...r1rest] = recipes.get('1. Tunnel-only agent')!;
    expect(r1rest).toEqual([]);
    const one = await run(r1agent!);
    expect(one.stdout).toContain('configuration OK');
    expect(one.daemons).toHaveLength(1);
    const client = (await run(r1client!)).stdout.trim().split('\n');
    expect(client[0]).toBe('403'); // the local stand-in's answer, through the tunnel
    expect(client[1]).toMatch(/^x-egress-witness-[a-z-]+: destination-denied:metadata/i);
    const observations = client.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { host: string });
    const metrics = client.filter((l) => l.startsWith('egress_witness_'));
    expect(observations.find((o) => o.host === 'sts.us-east-1.amazonaws.com')).toMatchObject({
      clientIp: '127.0.0.1',
      network: 'lab',
      host: 'sts.us-east-1.amazonaws.com',
      aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
      outcome: 'ok',
    });
    expect(metrics.join('\n')).toMatch(/^egress_witness_aws_requests_total\{/m);
    expect(metrics.join('\n')).toMatch(/^egress_witness_denied_total\{/m);
    await stop(one.daemons[0]!); // Ctrl-C drains and stops
    expect(one.daemons[0]!.child.exitCode ?? one.daemons[0]!.child.signalCode).not.toBeNull();

    // 2. Inspect mode.
    const [r2agent, r2call, r2json, r2cli, ...r2rest] = recipes.get('2. Inspect mode')!;
    expect(r2rest).toEqual([]);
    expect(r2json!.lang).toBe('json');
    expect(r2cli!.code).toBe(AWS_CLI_BLOCK);
    const two = await run(r2agent!);
    const signed = await run(r2call!);
    const [code, inspected] = signed.stdout.trim().split('\n');
    expect(code).toBe('403');
    expect(JSON.parse(inspected!)).toEqual(JSON.parse(r2json!.code));

    // 3. Shipping to a detector (the agent of recipe 2 stopped first).
    await stop(two.daemons[0]!);
    const [r3detector, r3agent, r3check, r3events, ...r3rest] = recipes.get('3. Shipping to a detector')!;
    expect(r3rest).toEqual([]);
    const detector = await run(r3detector!);
    expect(detector.stdout).toContain('configuration OK');
    const shipping = await run(r3agent!);
    expect(shipping.daemons).toHaveLength(1);
    await run(r2call!); // "Make the signed call of recipe 2 again"
    const ingested = await waitFor(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${ports.detectorAdmin}/metrics`)).text();
        return /^egress_witness_detector_ingested_records_total\{type="observation"\} [1-9]/m.test(text) ? text : null;
      },
      'the observation stored by the detector',
      30_000,
    );
    expect(ingested).toMatch(/^egress_witness_detector_ingested_batches_total\{outcome="stored"\} [1-9]/m);
    expect(ingested).not.toMatch(/^egress_witness_detector_ingested_batches_total\{outcome="unauthorized"\} [1-9]/m);
    const check = await run(r3check!);
    expect(check.stdout).toMatch(/^egress_witness_detector_ingested_batches_total\{outcome="stored"\} [1-9]/m);
    const status = check.stdout.split('\n');
    expect(JSON.parse(status.slice(status.indexOf('{')).join('\n'))).toMatchObject({ batches: expect.any(Number) as number });
    const events = await run(r3events!);
    const answer = /^# (\{.*\})$/m.exec(r3events!.code)![1]!;
    // curl prints the answer without a newline: the decision lines follow it directly.
    const [posted, ...decided] = events.stdout.trim().replace(/\}\{/g, '}\n{').split('\n');
    expect(JSON.parse(posted!)).toEqual(JSON.parse(answer));
    expect(decided.map((l) => JSON.parse(l) as unknown)).toEqual([
      { disposition: 'suppressed', rule: 'attested', sourceIp: '203.0.113.5', reason: expect.any(String) as string },
    ]);
    // "The one from 198.51.100.77 waits out the grace period (30 s here), then becomes an external finding in findings.jsonl."
    const finding = await waitFor(
      () => {
        const file = join(tmp, 'findings.jsonl');
        if (!existsSync(file)) return null;
        const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
        return lines.length > 0 ? (JSON.parse(lines.at(-1)!) as { egressWitness: { rule: string; sourceIp: string } }) : null;
      },
      'the external finding after the grace period',
      90_000,
    );
    expect(finding.egressWitness).toMatchObject({ rule: 'external', sourceIp: '198.51.100.77' });

    // 4. Replay, from recipe 3's files.
    const [r4commands, r4summary, ...r4rest] = recipes.get('4. Replay (offline forensics)')!;
    expect(r4rest).toEqual([]);
    const replayed = await run(r4commands!);
    const out = replayed.stdout.trim().split('\n');
    const records = out.slice(0, 2).map((l) => JSON.parse(l) as { disposition: string; rule: string });
    expect(records.map((r) => `${r.disposition}/${r.rule}`).sort()).toEqual(['finding/external', 'suppressed/attested']);
    expect(out.slice(2).map((l) => JSON.parse(l) as unknown)).toEqual([{ id: expect.any(String) as string, rule: 'external' }]);
    // The summary's decisions as the doc shows them (its counts and times are this run's).
    const decisions = (s: string): string => /decisions (\{.*\})$/m.exec(s)![1]!;
    expect(JSON.parse(decisions(replayed.stderr))).toEqual(JSON.parse(decisions(r4summary!.code)));

    for (const d of [...detector.daemons, ...shipping.daemons]) await stop(d);
  });
});
