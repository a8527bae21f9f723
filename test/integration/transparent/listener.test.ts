/**
 * The transparent listener on loopback: clients with no proxy setting whose
 * connections land on it as a redirect would deliver them (no original
 * destination recorded, so ports default to 443 / 80). They take the same
 * path as CONNECT — admission, the destination policy on the SNI / Host
 * name, the tunnel cap, drain, observation — and what cannot be routed is
 * closed, counted by reason, and has its decision line like any refusal.
 * The kernel redirect itself, with original destinations, is tested in
 * test/e2e/transparent-netns.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { rmSync } from 'node:fs';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createTestCa, type TestCa } from '../../helpers/pki.js';
import { startFakeAws, type FakeAws } from '../../helpers/fake-aws.js';
import { startAgent, recordingDial, type TestAgent } from '../../helpers/agent.js';
import { metricValue, startInspectRig, until, type InspectRig } from '../../helpers/inspect-rig.js';
import { RedirectHttpAgent, RedirectHttpsAgent } from '../../helpers/redirect-agent.js';
import { TunnelAgent } from '../../helpers/tunnel-agent.js';

const STS = 'sts.us-east-1.amazonaws.com';
const BUCKET_HOST = 'plain-bucket.s3.us-east-1.amazonaws.com';
const KEY = 'ASIAY34FZKBOKMUTVV7A';
const credentials = { accessKeyId: KEY, secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', sessionToken: 'IQoJb3JpZ2luEXAMPLE' };

let ca: TestCa;
let fake: FakeAws;
let plain: { server: http.Server; port: number; requests: { host: string; url: string; method: string }[] };
let agent: TestAgent;

/** A plain-HTTP "S3" on loopback that records what reached it. */
async function startPlainHttp(): Promise<typeof plain> {
  const requests: { host: string; url: string; method: string }[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests.push({ host: req.headers.host ?? '', url: req.url ?? '', method: req.method ?? '' });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('plain hello\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, requests };
}

beforeAll(async () => {
  ca = await createTestCa();
  fake = await startFakeAws(await ca.issue({ dns: ['*.us-east-1.amazonaws.com'] }));
  plain = await startPlainHttp();
  const dial = recordingDial();
  // A name whose only address is the instance metadata service: what a forged SNI would aim at.
  dial.answers.set('metadata.example.net', [{ address: '169.254.169.254', family: 4 }]);
  dial.answers.set('intranet.example.net', [{ address: '10.1.2.3', family: 4 }]);
  agent = await startAgent(
    {
      proxy: { allow_destination_cidrs: ['127.0.0.1/32'], header_timeout: '2s' },
      transparent: { listen: '127.0.0.1:0' },
      upstream: { resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}`, [BUCKET_HOST]: `127.0.0.1:${plain.port}` } },
    },
    { dial },
  );
}, 30_000);

afterAll(async () => {
  await agent?.stop();
  await fake?.close();
  plain?.server.close();
});

const listener = (localAddress: string) => ({ host: '127.0.0.1', port: agent.transparentPort!, localAddress });
const metric = (name: string, labels = ''): Promise<number> => metricValue(agent, name, labels);

async function observationsOf(clientIp: string): Promise<Record<string, unknown>[]> {
  await agent.flush();
  return agent.observations().filter((o) => o.clientIp === clientIp);
}

/** Connects to the listener and sends `bytes`; resolves with what came back once the agent closed the connection. */
function sendRaw(localAddress: string, bytes: Buffer | string): Promise<{ received: Buffer; closedMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = net.connect({ host: '127.0.0.1', port: agent.transparentPort!, localAddress });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ received: Buffer.concat(chunks), closedMs: Date.now() - t0 }));
    s.on('connect', () => {
      if (bytes.length > 0) s.write(bytes);
    });
    setTimeout(() => reject(new Error('the agent did not close the connection')), 5_000).unref();
  });
}

/** The ClientHello Node's TLS client sends for `servername`, captured by a raw server. */
function clientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const capture = net.createServer((c) =>
      c.once('data', (d: Buffer) => {
        c.destroy();
        capture.close();
        resolve(d);
      }),
    );
    capture.listen(0, '127.0.0.1', () => {
      const port = (capture.address() as AddressInfo).port;
      tls.connect({ host: '127.0.0.1', port, servername }).on('error', () => undefined);
    });
  });
}

/** A TLS handshake with the listener; resolves with how it ended. */
function tlsAttempt(localAddress: string, servername: string | undefined): Promise<{ ok: boolean; code: string | null }> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: agent.transparentPort!,
      ...{ localAddress }, // passed on to net.connect (not in tls.ConnectionOptions' type)
      ...(servername !== undefined ? { servername } : {}),
      ca: ca.certPem,
      ALPNProtocols: ['http/1.1'],
    });
    s.once('secureConnect', () => {
      s.destroy();
      resolve({ ok: true, code: null });
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? err.message }));
  });
}

async function stsCall(localAddress: string): Promise<void> {
  const httpsAgent = new RedirectHttpsAgent(listener(localAddress), { ca: ca.certPem }, { keepAlive: false });
  const sts = new STSClient({ region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 });
  try {
    expect((await sts.send(new GetCallerIdentityCommand({}))).Account).toBe('123456789012');
  } finally {
    sts.destroy();
    httpsAgent.destroy();
  }
}

describe('transparent listener: redirected clients take the proxy path', () => {
  it('routes a TLS connection by its SNI: the AWS SDK with no proxy setting succeeds; one observation, one line, one count', async () => {
    const before = await metric('egress_witness_proxy_requests_total', 'kind="transparent",outcome="ok"');
    await stsCall('127.0.0.2');
    expect(fake.requests.at(-1)?.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A\//);
    await until('the tunnel to close', () => agent.app.status().active_tunnels === 0);
    const obs = await observationsOf('127.0.0.2');
    expect(obs).toHaveLength(1);
    expect(obs[0]).toMatchObject({
      mode: 'tunnel',
      capture: 'transparent',
      host: STS,
      port: 443,
      network: 'lab',
      resolvedIp: '127.0.0.1',
      aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
      accessKeyId: null,
      outcome: 'ok',
      count: 1,
    });
    expect(obs[0]).not.toHaveProperty('originalIp');
    expect(obs[0]?.bytesUp).toBeGreaterThan(500);
    const lines = agent.logs.lines.filter((l) => l.client_ip === '127.0.0.2');
    expect(lines.map((l) => l.event)).toEqual(['tunnel_closed']);
    expect(lines[0]).toMatchObject({ capture: 'transparent', host: STS, aws_service: 'sts', outcome: 'ok', original_ip: null });
    expect(await metric('egress_witness_proxy_requests_total', 'kind="transparent",outcome="ok"')).toBe(before + 1);
  });

  it('routes plain HTTP by its Host to port 80 of that name, attributing the signed request', async () => {
    const httpAgent = new RedirectHttpAgent(listener('127.0.0.3'), { keepAlive: true });
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          {
            host: BUCKET_HOST,
            path,
            agent: httpAgent,
            headers: {
              authorization: `AWS4-HMAC-SHA256 Credential=${KEY}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`,
              'x-amz-date': '20260101T000000Z',
            },
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    // Two requests on one kept-alive redirected connection: each is its own request through the path.
    expect(await get('/key-1')).toEqual({ status: 200, body: 'plain hello\n' });
    expect(await get('/key-2')).toEqual({ status: 200, body: 'plain hello\n' });
    httpAgent.destroy();
    expect(plain.requests.slice(-2)).toEqual([
      { host: BUCKET_HOST, url: '/key-1', method: 'GET' },
      { host: BUCKET_HOST, url: '/key-2', method: 'GET' },
    ]);
    // Same client, host and action: one aggregated record.
    const obs = await observationsOf('127.0.0.3');
    expect(obs).toHaveLength(1);
    expect(obs[0]).toMatchObject({
      count: 2,
      host: BUCKET_HOST,
      mode: 'http',
      capture: 'transparent',
      port: 80,
      accessKeyId: KEY,
      aws: { service: 's3', region: 'us-east-1' },
      resolvedIp: '127.0.0.1',
      outcome: 'ok',
    });
    expect(await metric('egress_witness_proxy_requests_total', 'kind="transparent_http",outcome="ok"')).toBeGreaterThanOrEqual(2);
  });

  it('says on /status and in a gauge whether original destinations can be read', async () => {
    const t = agent.app.status().transparent as { listen: string; original_destination: string };
    expect(t.listen).toBe('127.0.0.1:0');
    expect(t.original_destination).toMatch(/^available$|native addon/);
    expect(await metric('egress_witness_transparent_original_destination_available')).toBe(t.original_destination === 'available' ? 1 : 0);
  });

  it('still marks explicit CONNECT tunnels as explicit', async () => {
    const httpsAgent = new TunnelAgent(
      { host: '127.0.0.1', port: agent.proxyPort, localAddress: '127.0.0.4' },
      { ca: ca.certPem },
      { keepAlive: false },
    );
    const sts = new STSClient({ region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 });
    await sts.send(new GetCallerIdentityCommand({}));
    sts.destroy();
    httpsAgent.destroy();
    await until('the tunnel to close', () => agent.app.status().active_tunnels === 0);
    expect(await observationsOf('127.0.0.4')).toEqual([expect.objectContaining({ mode: 'tunnel', capture: 'explicit', host: STS })]);
  });
});

describe('transparent listener: a forged SNI reaches only what its name resolves to', () => {
  it.each([
    ['metadata.example.net', '169.254.169.254', 'destination-denied:metadata'],
    ['intranet.example.net', '10.1.2.3', 'destination-denied:private'],
  ])('SNI %s (resolving to %s) is refused with a TLS access_denied alert and never dialled', async (sni, address, reason) => {
    const r = await tlsAttempt('127.0.0.5', sni);
    expect(r).toEqual({ ok: false, code: 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED' });
    expect(agent.dial.lookups).toContain(sni);
    expect(agent.dial.connects.map((c) => c.host)).not.toContain(address);
    // Not an AWS name, so no telemetry record (telemetry.observe_all); the canonical line says it all.
    const lines = agent.logs.find('refused').filter((l) => l.host === sni);
    expect(lines).toEqual([
      expect.objectContaining({ capture: 'transparent', client_ip: '127.0.0.5', outcome: 'denied', reason, resolved_ip: null, port: 443 }),
    ]);
    expect(lines[0]?.msg).toBe('redirected connection refused');
  });

  it('a name that does not resolve is refused with unrecognized_name', async () => {
    expect(await tlsAttempt('127.0.0.5', 'nowhere.example.net')).toEqual({ ok: false, code: 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME' });
  });
});

describe('transparent listener: what cannot be routed is closed, counted by reason, one decision line each', () => {
  const rejected = (reason: string) => metric('egress_witness_transparent_rejected_total', `reason="${reason}"`);
  const rejectionLines = (clientIp: string) => agent.logs.find('refused').filter((l) => l.client_ip === clientIp);

  it('a ClientHello without SNI', async () => {
    const before = await rejected('no-sni');
    const r = await tlsAttempt('127.0.0.6', undefined);
    expect(r.ok).toBe(false);
    expect(await rejected('no-sni')).toBe(before + 1);
    expect(rejectionLines('127.0.0.6')).toEqual([
      expect.objectContaining({
        kind: 'transparent',
        outcome: 'client_error',
        reason: 'no-sni',
        network: 'lab',
        host: null,
        original_ip: null,
      }),
    ]);
    expect(await observationsOf('127.0.0.6')).toEqual([]);
  });

  it('bytes that are neither TLS nor HTTP, many times from one client: every one counted, one line each', async () => {
    const before = await rejected('not-tls-or-http');
    for (let i = 0; i < 5; i++) {
      const r = await sendRaw('127.0.0.7', Buffer.from([0x00, 0x01, 0x02, 0xff, 0x10, 0x20]));
      expect(r.received.length).toBe(0);
    }
    expect(await sendRaw('127.0.0.7', 'ssh-2.0-OpenSSH_9.2\r\n')).toMatchObject({ received: Buffer.alloc(0) });
    expect(await rejected('not-tls-or-http')).toBe(before + 6);
    expect(rejectionLines('127.0.0.7')).toHaveLength(6);
  });

  it('a handshake that never comes, or stops halfway (proxy.header_timeout)', async () => {
    const before = await rejected('header-timeout');
    const silent = await sendRaw('127.0.0.8', '');
    expect(silent.closedMs).toBeGreaterThanOrEqual(1_900);
    // The first 20 bytes of a real ClientHello, and then nothing.
    const partial = (await clientHello(STS)).subarray(0, 20);
    expect(partial[0]).toBe(0x16);
    await sendRaw('127.0.0.8', partial);
    expect(await rejected('header-timeout')).toBe(before + 2);
    expect(rejectionLines('127.0.0.8')).toHaveLength(2);
  });

  it('plain HTTP without a Host gets 400 no-host; a malformed request 400 malformed', async () => {
    const noHost = await sendRaw('127.0.0.9', 'GET /x HTTP/1.0\r\n\r\n');
    expect(noHost.received.toString()).toMatch(/^HTTP\/1\.1 400 [^\r]*\r\n[\s\S]*x-egress-witness-error: no-host/i);
    const garbage = await sendRaw('127.0.0.9', 'GARBAGE\x00\x01 nonsense\r\n\r\n');
    expect(garbage.received.toString()).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rejected('no-host')).toBeGreaterThanOrEqual(1);
    expect(await rejected('malformed-http')).toBeGreaterThanOrEqual(1);
    expect(plain.requests.filter((r) => r.url === '/x')).toEqual([]);
  });

  it('2,000 half-open connections: the next client is served while they wait, then each is closed and counted', async () => {
    const N = Number(process.env.HALF_OPEN ?? 2_000);
    const before = await rejected('header-timeout');
    const sockets: net.Socket[] = [];
    const closed: Promise<void>[] = [];
    let closedCount = 0;
    // In waves, as a misbehaving fleet would open them: each wave connected before the next.
    for (let wave = 0; wave < N; wave += 250) {
      const opened: Promise<unknown>[] = [];
      for (let i = wave; i < Math.min(N, wave + 250); i++) {
        const s = net.connect({ host: '127.0.0.1', port: agent.transparentPort!, localAddress: '127.0.0.10' });
        s.on('error', () => undefined);
        closed.push(new Promise((r) => s.once('close', () => r(void closedCount++))));
        opened.push(new Promise((r) => s.once('connect', r)));
        sockets.push(s);
      }
      await Promise.all(opened);
    }
    await stsCall('127.0.0.11');
    // Served while they were still waiting for their first bytes (proxy.header_timeout is 2 s; on a
    // loaded machine the first waves may time out before the last has connected, never all of them).
    expect(closedCount).toBeLessThan(N);
    await Promise.all(closed);
    expect(await rejected('header-timeout')).toBe(before + N);
    expect(rejectionLines('127.0.0.10')).toHaveLength(N);
    await stsCall('127.0.0.11');
    await until('the tunnels to close', () => agent.app.status().active_tunnels === 0);
    const obs = await observationsOf('127.0.0.11');
    expect(obs.reduce((n, o) => n + (o.count as number), 0)).toBe(2);
  }, 30_000);
});

describe('transparent listener: admission, the tunnel cap and drain', () => {
  let capped: TestAgent;
  beforeAll(async () => {
    capped = await startAgent({
      networks: [{ name: 'lab', cidrs: ['127.0.0.0/8'] }],
      proxy: { allow_destination_cidrs: ['127.0.0.1/32'], max_tunnels: 1, allowed_clients: ['127.0.0.0/9'] },
      transparent: { listen: '127.0.0.1:0' },
      upstream: { resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}` } },
    });
  });

  const open = (localAddress: string) =>
    new Promise<tls.TLSSocket | NodeJS.ErrnoException>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: capped.transparentPort!, ...{ localAddress }, servername: STS, ca: ca.certPem });
      s.once('secureConnect', () => resolve(s));
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    });

  it('refuses a client outside proxy.allowed_clients without reading a byte', async () => {
    const r = await open('127.200.0.1');
    expect(r).toBeInstanceOf(Error);
    expect(await metricValue(capped, 'egress_witness_denied_total', 'reason="client-not-allowed"')).toBe(1);
    expect(fake.requests.length).toBeGreaterThan(0); // unchanged by this client
  });

  it('a reload reaches the transparent listener at once; a new transparent.listen waits for a restart', async () => {
    const before = capped.config;
    const narrowed = {
      ...before,
      proxy: { ...before.proxy, allowed_clients: ['127.0.0.0/24'] },
      transparent: { ports: [443], listen: { host: '127.0.0.1', port: 3999, text: '127.0.0.1:3999' } },
    };
    expect(await capped.app.reload({ ok: true, value: narrowed })).toBe(true);
    expect(await open('127.0.1.5')).toBeInstanceOf(Error);
    expect(await metricValue(capped, 'egress_witness_denied_total', 'reason="client-not-allowed"')).toBe(2);
    expect(capped.logs.find('reload_partial').at(-1)?.keys_needing_restart).toEqual(['transparent.listen.port', 'transparent.listen.text']);
    expect(await capped.app.reload({ ok: true, value: before })).toBe(true);
    const admitted = await open('127.0.1.5');
    expect(admitted).toBeInstanceOf(tls.TLSSocket);
    (admitted as tls.TLSSocket).destroy();
    await until('the tunnel to close', () => capped.app.status().active_tunnels === 0);
  });

  it('refuses the connection beyond proxy.max_tunnels (internal_error alert), then drains the open one as drained', async () => {
    const first = await open('127.0.0.12');
    expect(first).toBeInstanceOf(tls.TLSSocket);
    const second = await open('127.0.0.13');
    expect((second as NodeJS.ErrnoException).code).toBe('ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR');
    expect(await metricValue(capped, 'egress_witness_denied_total', 'reason="tunnel-limit"')).toBe(1);
    expect(capped.logs.find('tunnel_limit')).toEqual([expect.objectContaining({ client_ip: '127.0.0.13', capture: 'transparent' })]);
    await capped.app.stop(200);
    expect(capped.observations().filter((o) => o.clientIp === '127.0.0.12')).toEqual([
      expect.objectContaining({ capture: 'transparent', outcome: 'drained', host: STS }),
    ]);
    (first as tls.TLSSocket).destroy();
    rmSync(capped.dir, { recursive: true, force: true });
  });
});

describe('transparent listener: inspection of redirected connections', () => {
  let rig: InspectRig;
  beforeAll(async () => {
    rig = await startInspectRig({ transparent: { listen: '127.0.0.1:0' } });
  }, 30_000);
  afterAll(() => rig?.close());

  const redirectedSts = (localAddress: string, trust: string) => {
    const httpsAgent = new RedirectHttpsAgent({ host: '127.0.0.1', port: rig.agent.transparentPort!, localAddress }, { ca: trust });
    const sts = new STSClient({ region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 });
    return {
      call: () => sts.send(new GetCallerIdentityCommand({})),
      close: () => {
        sts.destroy();
        httpsAgent.destroy();
      },
    };
  };

  it('a client that trusts the CA is attributed: access key and action, capture transparent', async () => {
    const c = redirectedSts('127.0.0.20', rig.inspectionCaPem);
    expect((await c.call()).Account).toBe('123456789012');
    c.close();
    await rig.agent.flush();
    expect(rig.agent.observations().filter((o) => o.clientIp === '127.0.0.20')).toEqual([
      expect.objectContaining({
        mode: 'inspect',
        capture: 'transparent',
        host: STS,
        accessKeyId: KEY,
        action: 'GetCallerIdentity',
        aws: expect.objectContaining({ service: 'sts', region: 'us-east-1' }),
        outcome: 'ok',
      }),
    ]);
  });

  it('a client that rejects the certificate falls under the passthrough rules: its next connection is tunnelled', async () => {
    const rejecting = redirectedSts('127.0.0.21', rig.upstreamCaPem);
    await expect(rejecting.call()).rejects.toThrow();
    rejecting.close();
    await until('the passthrough entry', async () => (await metricValue(rig.agent, 'egress_witness_inspect_passthrough_entries')) === 1);
    const again = redirectedSts('127.0.0.21', rig.upstreamCaPem);
    expect((await again.call()).Account).toBe('123456789012');
    again.close();
    await until('the tunnel to close', () => rig.agent.app.status().active_tunnels === 0);
    await rig.agent.flush();
    const obs = rig.agent.observations().filter((o) => o.clientIp === '127.0.0.21');
    expect(obs.map((o) => [o.mode, o.capture, o.outcome])).toEqual([
      ['inspect', 'transparent', 'tls_intercept_failed'],
      ['tunnel', 'transparent', 'ok'],
    ]);
  });
});
