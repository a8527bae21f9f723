/**
 * The kernel side of transparent interception, end to end, in a routed
 * topology of network namespaces (test/helpers/netns.ts; root only):
 *
 *   client (no proxy setting) ── gateway (ip_forward, `transparent-rules` applied with nft -f) ── aws
 *
 * A listener in the gateway namespace stands where the agent's transparent
 * listener goes and reads each accepted connection's original destination
 * with the native reader, unprivileged (a user namespace of its own, no
 * capability: as the systemd unit runs the agent). Proved here: the client's connections to the aws
 * host on the redirected ports (IPv4 and IPv6, by name through the client's
 * own hosts file and by address) arrive at the listener with the address and
 * port the client dialled; a port that is not redirected, and a connection
 * the gateway opens itself, reach the aws host untouched. The agent itself
 * behind the same redirect is tested in transparent-agent.test.ts.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopology, netnsGate, waitForLine, type NsHost, type Topology } from '../helpers/netns.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');
const reader = join(root, 'dist/agent/transparent/original-destination.js');
const LISTEN_PORT = 3129;

/** Stands in for the transparent listener: answers each connection with its peer and original destination. */
const PROBE = `
import net from 'node:net';
const { loadOriginalDestinationReader } = await import(process.argv[1]);
const reader = loadOriginalDestinationReader();
const caps = (await import('node:fs')).readFileSync('/proc/self/status', 'utf8').match(/^CapEff:\\s*(\\S+)/m)[1];
const server = net.createServer((socket) => {
  const line = JSON.stringify({ via: 'listener', peer: socket.remoteAddress, original: reader.read(socket) });
  socket.end(line + '\\n');
});
server.listen({ host: '::', port: ${LISTEN_PORT} }, () => console.log(JSON.stringify({ listening: true, uid: process.getuid(), caps, available: reader.available, reason: reader.unavailableReason })));
`;

/** The aws host: answers on each port with where it was reached. */
const AWS = `
import net from 'node:net';
let up = 0;
for (const port of [80, 443, 8443]) {
  net.createServer((s) => s.end(JSON.stringify({ via: 'aws', port, peer: s.remoteAddress }) + '\\n'))
    .listen({ host: '::', port }, () => { if (++up === 3) console.log('listening'); });
}
`;

/** Connects from inside a namespace and prints the one line the far end answers. */
const DIAL = `
import net from 'node:net';
const [host, port, family] = process.argv.slice(1);
const socket = net.connect({ host, port: Number(port), family: Number(family) || 0 });
let text = '';
socket.on('data', (c) => (text += c));
socket.on('end', () => { process.stdout.write(text); });
socket.on('error', (e) => { console.error(e.message); process.exitCode = 1; });
setTimeout(() => { console.error('timeout'); process.exit(2); }, 5000).unref();
`;

function node(h: NsHost, script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return h.run(process.execPath, ['--input-type=module', '-e', script, ...args], { timeoutMs: 10_000 });
}

async function dial(h: NsHost, host: string, port: number, family = 0): Promise<Record<string, unknown>> {
  const r = await node(h, DIAL, [host, String(port), String(family)]);
  if (r.code !== 0) throw new Error(`dial ${host}:${port} from ${h.ns}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const skip = netnsGate('transparent interception in network namespaces', ['nft']);

describe.skipIf(skip)('transparent redirect through a routed gateway', () => {
  let net: Topology;
  let tmp: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    for (const f of [bin, reader]) if (!existsSync(f)) throw new Error(`${f} is missing: run "npm run build" first (npm test does)`);
    tmp = await mkdtemp(join(tmpdir(), 'egress-witness-netns-'));
    net = await createTopology({ names: ['sts.us-east-1.amazonaws.com', 'bucket-1.s3.us-east-1.amazonaws.com'] });
    const config = join(tmp, 'agent.yaml');
    await writeFile(
      config,
      [
        'gateway: {id: gw-netns, egress_cidrs: [203.0.113.0/28]}',
        `networks: [{name: lab, cidrs: [${net.clientCidrs.map((c) => `"${c}"`).join(', ')}]}]`,
        `transparent: {listen: "[::]:${LISTEN_PORT}", ports: [443, 80]}`,
        '',
      ].join('\n'),
    );
    const ranges = join(tmp, 'ip-ranges.json');
    await writeFile(
      ranges,
      JSON.stringify({
        createDate: '2026-11-20-22-13-07',
        prefixes: [{ ip_prefix: net.awsCidrs[0], region: 'us-east-1', service: 'AMAZON' }],
        ipv6_prefixes: [{ ipv6_prefix: net.awsCidrs[1], region: 'us-east-1', service: 'AMAZON' }],
      }),
    );
    const rules = await cli(['transparent-rules', '--config', config, '--aws-ip-ranges', ranges]);
    if (rules.code !== 0) throw new Error(`transparent-rules: ${rules.stderr}`);
    const applied = await net.gateway.run('nft', ['-f', '-'], { input: rules.stdout });
    if (applied.code !== 0) throw new Error(`nft -f: ${applied.stderr}`);

    const aws = net.aws.spawn(process.execPath, ['--input-type=module', '-e', AWS]);
    // In a user namespace of its own, with no capability in the host's: as the agent's unit runs it (PrivateUsers=yes).
    const probe = net.gateway.spawn('unshare', ['--user', '--', process.execPath, '--input-type=module', '-e', PROBE, reader]);
    children.push(aws, probe);
    await waitForLine(aws, (l) => l === 'listening');
    const ready = JSON.parse(await waitForLine(probe, (l) => l.includes('"listening"'))) as { available: boolean; reason: string | null };
    // Unprivileged: nobody, no effective capability.
    expect(ready).toEqual({ listening: true, uid: 65534, caps: '0000000000000000', available: true, reason: null });
  });

  afterAll(async () => {
    await net?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('redirects an IPv4 connection by name to the listener, which reads the original address and port', async () => {
    expect(await dial(net.client, 'sts.us-east-1.amazonaws.com', 443, 4)).toEqual({
      via: 'listener',
      peer: `::ffff:${net.client.v4}`,
      original: { kind: 'redirected', address: net.aws.v4, port: 443 },
    });
  });

  it('redirects IPv6 the same way', async () => {
    expect(await dial(net.client, 'bucket-1.s3.us-east-1.amazonaws.com', 443, 6)).toEqual({
      via: 'listener',
      peer: net.client.v6,
      original: { kind: 'redirected', address: net.aws.v6, port: 443 },
    });
  });

  it('keeps the original port of each redirected port (80 is not taken for 443)', async () => {
    expect(await dial(net.client, net.aws.v4, 80)).toMatchObject({ via: 'listener', original: { address: net.aws.v4, port: 80 } });
    expect(await dial(net.client, net.aws.v6, 80)).toMatchObject({ via: 'listener', original: { address: net.aws.v6, port: 80 } });
  });

  it('leaves a port that is not redirected alone: the client reaches the aws host', async () => {
    expect(await dial(net.client, net.aws.v4, 8443)).toEqual({ via: 'aws', port: 8443, peer: `::ffff:${net.client.v4}` });
    expect(await dial(net.client, net.aws.v6, 8443)).toEqual({ via: 'aws', port: 8443, peer: net.client.v6 });
  });

  it("never redirects the gateway's own connections (the agent's upstream path)", async () => {
    expect(await dial(net.gateway, 'sts.us-east-1.amazonaws.com', 443, 4)).toEqual({
      via: 'aws',
      port: 443,
      peer: `::ffff:${net.gateway.upstreamV4}`,
    });
    expect(await dial(net.gateway, net.aws.v6, 443)).toEqual({ via: 'aws', port: 443, peer: net.gateway.upstreamV6 });
  });

  it('a client connecting to the listener itself is seen as not redirected', async () => {
    expect(await dial(net.client, net.gateway.v4, LISTEN_PORT)).toEqual({
      via: 'listener',
      peer: `::ffff:${net.client.v4}`,
      original: { kind: 'not-redirected' },
    });
  });
});
