/**
 * The agent's transparent listener end to end, in a routed topology of
 * network namespaces (test/helpers/netns.ts; root only):
 *
 *   client ──────────────── gateway ──────────────────────── aws
 *   AWS SDK v3, no proxy    ip_forward, `transparent-rules`   fake STS and S3
 *   setting at all          applied with nft -f; the agent    (443 TLS, 80 HTTP)
 *                           (a child process) on [::]:3129
 *
 * The client resolves the AWS names to the aws host through its own
 * namespace's hosts file; the agent resolves them with `upstream.resolve`.
 * Proved here: the SDK's STS call and a 32 MiB S3 upload and download
 * succeed through the redirect, and every byte reaches the aws host from the
 * gateway, never from the client; the observations name the client, its
 * network, the host, service, region and `capture: "transparent"`, and with
 * inspection (the client trusting only the inspection CA) the access key and
 * action. A ClientHello without SNI, garbage, 2,000 half-open connections and
 * a forged SNI aimed at a denied address are each refused as specified,
 * nothing reaches the denied address, and the next client is served.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopology, netnsSkipReason, waitForLine, type NsHost, type Topology } from '../helpers/netns.js';
import {
  COUNTING_LISTENER,
  FAKE_AWS,
  HALF_OPEN,
  RAW_CLIENT,
  SDK_CLIENT,
  jsonLines,
  nodeScript,
  runScript,
} from '../helpers/netns-peers.js';
import { createTestCa } from '../helpers/pki.js';
import { createInspectionCa } from '../../agent/tls/ca.js';
import { writeCaFiles } from '../../agent/tls/ca-files.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');
const STS = 'sts.us-east-1.amazonaws.com';
const BUCKET = 'e2e-bucket.s3.us-east-1.amazonaws.com';
const PLAIN_BUCKET = 'plain-bucket.s3.us-east-1.amazonaws.com';
const FORGED = 'internal.corp.example';
const KEY = 'ASIAY34FZKBOKMUTVV7A';
/** Another address in the redirected AWS range, where nothing listens: a client that dials it still reaches STS by name. */
const OTHER_AWS_ADDRESS = '198.51.100.20';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Runs a script in a namespace with exactly `env` (no proxy variables leak in from the test's own environment). */
function runWithEnv(
  h: NsHost,
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  const child = nodeScript(h, script, args, env);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`exit ${code}: ${stderr.slice(-2_000)}`));
      resolve(JSON.parse(line) as Record<string, unknown>);
    });
  });
}

const unavailable = netnsSkipReason(['nft']);

describe('transparent interception end to end: the agent on a routed gateway', () => {
  let net: Topology;
  let tmp: string;
  let aws: ChildProcess;
  let awsLog: Record<string, unknown>[];
  let fakeCaFile: string;
  let inspectCaPaths: { certPath: string; keyPath: string };

  beforeAll(async () => {
    if (unavailable)
      throw new Error(`network namespaces are needed here: ${unavailable} (run the suite as root with iproute2 and nftables, as CI does)`);
    for (const f of [bin, join(root, 'native/original-dst/build/Release/original_dst.node')])
      if (!existsSync(f)) throw new Error(`${f} is missing: run "npm run build" and "npm run build:native" (npm test does both)`);
    tmp = await mkdtemp(join(tmpdir(), 'egress-witness-transparent-e2e-'));
    net = await createTopology({ names: [STS, BUCKET, PLAIN_BUCKET] });
    // The fake AWS host's certificate, from a CA the agent (upstream.ca_file) and, in tunnel mode, the client trust.
    const fakeCa = await createTestCa('fake AWS CA');
    const leaf = await fakeCa.issue({ dns: ['*.us-east-1.amazonaws.com', '*.s3.us-east-1.amazonaws.com'] });
    fakeCaFile = join(tmp, 'fake-aws-ca.pem');
    await writeFile(fakeCaFile, fakeCa.certPem);
    await writeFile(join(tmp, 'aws.crt'), leaf.certPem);
    await writeFile(join(tmp, 'aws.key'), leaf.keyPem);
    inspectCaPaths = await writeCaFiles(join(tmp, 'inspect-ca'), await createInspectionCa({ permittedDomains: ['amazonaws.com'] }));

    aws = nodeScript(net.aws, FAKE_AWS, [join(tmp, 'aws.crt'), join(tmp, 'aws.key')]);
    awsLog = jsonLines(aws);
    await waitForLine(aws, (l) => l.includes('"listening"'));

    // The kernel side, exactly as an operator applies it.
    await writeFile(join(tmp, 'rules.yaml'), agentYaml({ inspect: false, obs: join(tmp, 'unused.ndjson') }));
    await writeFile(
      join(tmp, 'ip-ranges.json'),
      JSON.stringify({
        createDate: '2026-11-20-22-13-07',
        prefixes: [{ ip_prefix: net.awsCidrs[0], region: 'us-east-1', service: 'AMAZON' }],
        ipv6_prefixes: [{ ipv6_prefix: net.awsCidrs[1], region: 'us-east-1', service: 'AMAZON' }],
      }),
    );
    const rules = await cli(['transparent-rules', '--config', join(tmp, 'rules.yaml'), '--aws-ip-ranges', join(tmp, 'ip-ranges.json')]);
    if (rules.code !== 0) throw new Error(`transparent-rules: ${rules.stderr}`);
    const applied = await net.gateway.run('nft', ['-f', '-'], { input: rules.stdout });
    if (applied.code !== 0) throw new Error(`nft -f: ${applied.stderr}`);
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  function agentYaml(o: { inspect: boolean; obs: string }): string {
    return [
      'gateway: {id: gw-netns, egress_cidrs: [203.0.113.0/28]}',
      `networks: [{name: lab, cidrs: [${net.clientCidrs.map((c) => `"${c}"`).join(', ')}]}]`,
      'proxy:',
      '  listen: "127.0.0.1:3128"',
      '  header_timeout: 8s', // long enough for a loaded machine to start the next SDK client while the flood waits
      // The fake AWS host sits in a documentation range, which the destination policy refuses unless allowed.
      `  allow_destination_cidrs: ["${net.aws.v4}/32", "${net.aws.v6}/128"]`,
      'transparent: {listen: "[::]:3129", ports: [443, 80]}',
      'upstream:',
      `  ca_file: ${fakeCaFile}`,
      '  resolve:',
      `    "*.amazonaws.com": "${net.aws.v4}:443"`,
      `    "${PLAIN_BUCKET}": "${net.aws.v4}:80"`,
      // A forged SNI's name, resolving to a private address (the client host itself): denied.
      `    "${FORGED}": "${net.client.v4}:443"`,
      ...(o.inspect
        ? ['inspect:', `  ca_cert: ${inspectCaPaths.certPath}`, `  ca_key: ${inspectCaPaths.keyPath}`, '  hosts: ["*.amazonaws.com"]']
        : []),
      'telemetry:',
      `  file: ${o.obs}`,
      `  spool_dir: ${join(tmp, 'spool')}`,
      '  flush_interval: 200ms',
      '  heartbeat_interval: 1h',
      'admin: {listen: "127.0.0.1:9464"}',
      '',
    ].join('\n');
  }

  /** Starts the agent in the gateway namespace; resolves once it logged `started`. */
  async function startAgent(name: string, inspect: boolean) {
    const obs = join(tmp, `${name}.ndjson`);
    const config = join(tmp, `${name}.yaml`);
    await writeFile(config, agentYaml({ inspect, obs }));
    const child = net.gateway.spawn(process.execPath, [bin, 'agent', '--config', config]);
    const log = jsonLines(child);
    await waitForLine(child, (l) => l.includes('"event":"started"'), 15_000);
    return {
      log,
      observations: async (): Promise<Record<string, unknown>[]> => {
        await new Promise((r) => setTimeout(r, 600)); // two flush intervals
        if (!existsSync(obs)) return [];
        return readFileSync(obs, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .filter((r) => r.type === 'observation');
      },
      metric: async (series: string): Promise<number> => {
        const r = await runScript(net.gateway, "process.stdout.write(await (await fetch('http://127.0.0.1:9464/metrics')).text())", []);
        const line = r.stdout.split('\n').find((l) => l.startsWith(`${series} `));
        return line ? Number(line.split(' ').at(-1)) : 0;
      },
      stop: async () => {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      },
    };
  }

  /** The client as an application: no proxy variable, trusting `caFile` as the system's extra CA. */
  const sdk = (what: 'sts' | 'all', caFile: string) =>
    runWithEnv(net.client, SDK_CLIENT, [what], {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: tmp,
      NODE_EXTRA_CA_CERTS: caFile,
      AWS_EC2_METADATA_DISABLED: 'true',
      NODE_NO_WARNINGS: '1',
    });

  const raw = async (host: string, port: number, kind: string, arg: string) => {
    const r = await runScript(net.client, RAW_CLIENT, [host, String(port), kind, arg]);
    if (r.code !== 0) throw new Error(`raw client: ${r.stderr}`);
    return JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  };

  const fromClient = (o: Record<string, unknown>) => o.clientIp === net.client.v4;

  describe('tunnel mode', () => {
    let agent: Awaited<ReturnType<typeof startAgent>>;
    beforeAll(async () => {
      agent = await startAgent('tunnel', false);
    }, 30_000);
    afterAll(() => agent?.stop());

    it('the AWS SDK with no proxy setting calls STS and moves 32 MiB up and down S3 through the redirect', async () => {
      const before = awsLog.length;
      const r = await sdk('all', fakeCaFile);
      expect(r).toMatchObject({ account: '123456789012', length: 32 * 1024 * 1024 });
      expect(r.received).toBe(r.sent);
      const seen = awsLog.slice(before).filter((l) => l.event === 'request');
      expect(seen.map((l) => [l.host, l.method])).toEqual([
        [STS, 'POST'],
        [BUCKET, 'PUT'],
        [BUCKET, 'GET'],
      ]);
      // Every request reached the aws host from the gateway (the agent's connection), none from the client.
      expect(new Set(seen.map((l) => String(l.peer).replace(/^::ffff:/, '')))).toEqual(new Set([net.gateway.upstreamV4]));
      expect(seen.find((l) => l.method === 'PUT')?.bytes).toBe(32 * 1024 * 1024);

      const obs = (await agent.observations()).filter(fromClient);
      const sts = obs.find((o) => o.host === STS);
      const s3 = obs.filter((o) => o.host === BUCKET);
      expect(sts).toMatchObject({
        mode: 'tunnel',
        capture: 'transparent',
        network: 'lab',
        port: 443,
        resolvedIp: net.aws.v4,
        aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
        accessKeyId: null,
        outcome: 'ok',
      });
      expect(sts).not.toHaveProperty('originalIp');
      expect(s3.length).toBeGreaterThan(0);
      for (const o of s3)
        expect(o).toMatchObject({ mode: 'tunnel', capture: 'transparent', network: 'lab', aws: { service: 's3', region: 'us-east-1' } });
      expect(s3.reduce((n, o) => n + (o.bytesUp as number), 0)).toBeGreaterThan(32 * 1024 * 1024);
      expect(s3.reduce((n, o) => n + (o.bytesDown as number), 0)).toBeGreaterThan(32 * 1024 * 1024);
      expect(await agent.metric('egress_witness_transparent_original_destination_available')).toBe(1);
    }, 90_000);

    it('routes plain HTTP by its Host, on the port the client dialled', async () => {
      expect(await raw(net.aws.v4, 80, 'http', PLAIN_BUCKET)).toEqual({ result: 'closed', received: 'HTTP/1.1 200 OK' });
      const obs = (await agent.observations()).filter((o) => fromClient(o) && o.host === PLAIN_BUCKET);
      expect(obs).toEqual([expect.objectContaining({ mode: 'http', capture: 'transparent', port: 80, network: 'lab', outcome: 'ok' })]);
    });

    it('a client that dialled another address gets the address its SNI resolves to; the observation keeps what it dialled', async () => {
      const before = await agent.metric('egress_witness_transparent_original_ip_mismatch_total');
      const r = await raw(OTHER_AWS_ADDRESS, 443, 'hello', STS);
      expect(r).toMatchObject({ result: 'answered', status: 'HTTP/1.1 200 OK' });
      expect(String(r.body)).toContain('<Account>123456789012</Account>');
      expect(await agent.metric('egress_witness_transparent_original_ip_mismatch_total')).toBe(before + 1);
      const obs = (await agent.observations()).filter((o) => fromClient(o) && o.originalIp === OTHER_AWS_ADDRESS);
      expect(obs).toEqual([expect.objectContaining({ host: STS, resolvedIp: net.aws.v4, capture: 'transparent', outcome: 'ok' })]);
    });

    it('a ClientHello without SNI and bytes that are neither TLS nor HTTP are closed and counted; the next client is served', async () => {
      expect(await raw(net.aws.v4, 443, 'hello', '-')).toMatchObject({ result: 'refused' });
      expect(await raw(net.aws.v4, 443, 'bytes', '00ff13370a0b0c0d')).toEqual({ result: 'closed', received: '' });
      expect(await agent.metric('egress_witness_transparent_rejected_total{reason="no-sni"}')).toBe(1);
      expect(await agent.metric('egress_witness_transparent_rejected_total{reason="not-tls-or-http"}')).toBe(1);
      await new Promise((r) => setTimeout(r, 400)); // the agent writes its log in batches (at most 250 ms late)
      // One decision line per connection, with the reason.
      expect(
        agent.log
          .filter((l) => l.event === 'refused' && l.client_ip === net.client.v4 && l.outcome === 'client_error')
          .map((l) => l.reason),
      ).toEqual(['no-sni', 'not-tls-or-http']);
      expect(await sdk('sts', fakeCaFile)).toEqual({ account: '123456789012' });
    });

    it('a forged SNI whose name resolves to a denied address gets access_denied, and nothing reaches that address', async () => {
      // The denied address is reachable from the gateway: the listener there sees a direct dial.
      const listener = nodeScript(net.client, COUNTING_LISTENER, [net.client.v4, '443']);
      const seen = jsonLines(listener);
      await waitForLine(listener, (l) => l.includes('"listening"'));
      const direct = await runScript(net.gateway, RAW_CLIENT, [net.client.v4, '443', 'bytes', '00']);
      expect(direct.code).toBe(0);
      await new Promise((r) => setTimeout(r, 100));
      expect(seen.filter((l) => l.event === 'connection')).toHaveLength(1);

      expect(await raw(net.aws.v4, 443, 'hello', FORGED)).toEqual({ result: 'refused', code: 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED' });
      await new Promise((r) => setTimeout(r, 300));
      expect(seen.filter((l) => l.event === 'connection')).toHaveLength(1);
      expect(agent.log.filter((l) => l.event === 'refused' && l.host === FORGED)).toEqual([
        expect.objectContaining({
          capture: 'transparent',
          client_ip: net.client.v4,
          outcome: 'denied',
          reason: 'destination-denied:private',
          resolved_ip: null,
          original_ip: net.aws.v4,
        }),
      ]);
      listener.kill();
      expect(await sdk('sts', fakeCaFile)).toEqual({ account: '123456789012' });
    });

    it('2,000 half-open connections: the next client is served while they wait, then each is closed and counted', async () => {
      const before = await agent.metric('egress_witness_transparent_rejected_total{reason="header-timeout"}');
      const flood = nodeScript(net.client, HALF_OPEN, [net.aws.v4, '443', '2000']);
      const events = jsonLines(flood);
      await waitForLine(flood, (l) => l.includes('"opened"'), 30_000);
      expect(await sdk('sts', fakeCaFile)).toEqual({ account: '123456789012' });
      expect(await agent.metric('egress_witness_transparent_rejected_total{reason="header-timeout"}')).toBe(before);
      await waitForLine(flood, (l) => l.includes('"closed"'), 30_000).catch(() => undefined);
      expect(events.find((e) => e.event === 'closed')).toEqual({ event: 'closed', closed: 2000 });
      expect(await agent.metric('egress_witness_transparent_rejected_total{reason="header-timeout"}')).toBe(before + 2000);
      expect(await sdk('sts', fakeCaFile)).toEqual({ account: '123456789012' });
    }, 90_000);
  });

  describe('inspect mode, the client trusting only the inspection CA', () => {
    let agent: Awaited<ReturnType<typeof startAgent>>;
    beforeAll(async () => {
      agent = await startAgent('inspect', true);
    }, 30_000);
    afterAll(() => agent?.stop());

    it('STS and 32 MiB up and down S3 succeed, and the observations carry the access key and action', async () => {
      const r = await sdk('all', inspectCaPaths.certPath);
      expect(r).toMatchObject({ account: '123456789012', length: 32 * 1024 * 1024 });
      expect(r.received).toBe(r.sent);
      const obs = (await agent.observations()).filter(fromClient);
      const byAction = new Map(obs.map((o) => [o.action, o]));
      for (const [action, host, service] of [
        ['GetCallerIdentity', STS, 'sts'],
        ['PutObject', BUCKET, 's3'],
        ['GetObject', BUCKET, 's3'],
      ] as const) {
        expect(byAction.get(action), action).toMatchObject({
          mode: 'inspect',
          capture: 'transparent',
          host,
          network: 'lab',
          accessKeyId: KEY,
          keyKind: 'temporary',
          aws: { service, region: 'us-east-1' },
          outcome: 'ok',
        });
      }
    }, 90_000);
  });
});
