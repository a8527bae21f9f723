// Client admission and destination policy, with an injected dialer that records every lookup and connection:
// a denied destination must be answered with its status AND never be dialed (no packet can leave the machine).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAgent, recordingDial, type TestAgent, type RecordingDial } from '../../helpers/agent.js';
import { connectTunnel, rawExchange, responseBody } from '../../helpers/raw.js';
import { until } from '../../helpers/inspect-rig.js';

let agent: TestAgent;
let dial: RecordingDial;
let echo: net.Server;
let echoPort: number;
let web: http.Server;
let webPort: number;

beforeAll(async () => {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
  web = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          url: req.url,
          host: req.headers.host,
          method: req.method,
          body,
          proxyAuth: req.headers['proxy-authorization'] ?? null,
          conn: req.headers['x-hop'] ?? null,
        }),
      ),
    );
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as AddressInfo).port;
  dial = recordingDial();
  dial.answers.set('private.example.test', [{ address: '10.1.2.3', family: 4 }]);
  dial.answers.set('mixed.example.test', [
    { address: '52.94.0.1', family: 4 },
    { address: '169.254.169.254', family: 4 },
  ]);
  dial.answers.set('mapped.example.test', [{ address: '::ffff:192.168.1.1', family: 6 }]);
  dial.answers.set('echo.example.test', [{ address: '127.0.0.1', family: 4 }]);
  agent = await startAgent(
    {
      proxy: { allowed_clients: ['127.0.0.1/32'], allowed_ports: [443, 80, echoPort, webPort], allow_destination_cidrs: ['127.0.0.1/32'] },
      upstream: { resolve: { 'sneaky.example.test': '127.0.0.9:443', 'web.example.test': `127.0.0.1:${webPort}` } },
    },
    { dial },
  );
});

afterAll(async () => {
  await agent?.stop();
  echo?.close();
  web?.closeAllConnections();
  web?.close();
});

function dialedTo(ip: string): boolean {
  return dial.connects.some((c) => c.host === ip);
}

describe('destination policy (CONNECT)', () => {
  it.each([
    ['169.254.169.254:80', 'destination-denied:metadata'],
    ['169.254.169.254:8080', 'destination-denied:port-not-allowed'],
    ['169.254.169.254:443', 'destination-denied:metadata'],
    ['[fd00:ec2::254]:443', 'destination-denied:metadata'],
    ['10.1.2.3:443', 'destination-denied:private'],
    ['192.168.0.10:443', 'destination-denied:private'],
    ['100.64.1.1:443', 'destination-denied:cgnat'],
    ['[::1]:443', 'destination-denied:loopback'],
    ['[::ffff:10.0.0.1]:443', 'destination-denied:private'],
    ['127.0.0.2:443', 'destination-denied:loopback'],
    ['0.0.0.0:443', 'destination-denied:unspecified'],
    ['224.0.0.1:443', 'destination-denied:multicast'],
    ['private.example.test:443', 'destination-denied:private'],
    ['mixed.example.test:443', 'destination-denied:metadata'],
    ['mapped.example.test:443', 'destination-denied:private'],
    ['sneaky.example.test:443', 'destination-denied:loopback'],
    ['127.0.0.1:22', 'destination-denied:port-not-allowed'],
  ])('CONNECT %s → 403 %s, nothing dialed', async (authority, reason) => {
    const before = dial.connects.length;
    const r = await connectTunnel(agent.proxyPort, authority);
    r.socket.destroy();
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-witness-error']).toBe(reason);
    expect(dial.connects.length).toBe(before);
  });

  it('refuses a connection to the agent itself even inside an allowed CIDR', async () => {
    const r = await connectTunnel(agent.proxyPort, `127.0.0.1:${agent.proxyPort}`);
    r.socket.destroy();
    expect(r.status).toBe(403);
    // the proxy port is not in allowed_ports here; allow it and it is still "self"
  });

  it('a name whose DNS lookup fails → 502 dns-failure', async () => {
    const r = await connectTunnel(agent.proxyPort, 'no-such-host.example.test:443');
    r.socket.destroy();
    expect(r.status).toBe(502);
    expect(r.headers['x-egress-witness-error']).toBe('dns-failure');
  });

  it('an allowed destination that refuses connections → 502 connect-refused', async () => {
    const closed = net.createServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((res) => closed.close(() => res()));
    const local = await startAgent({ proxy: { allowed_ports: [port], allow_destination_cidrs: ['127.0.0.1/32'] } });
    try {
      const r = await connectTunnel(local.proxyPort, `127.0.0.1:${port}`);
      r.socket.destroy();
      expect(r.status).toBe(502);
      expect(r.headers['x-egress-witness-error']).toBe('connect-refused');
    } finally {
      await local.stop();
    }
  });

  it('an unreachable network → 502 unreachable; a black hole → 504 connect-timeout', async () => {
    const failing = recordingDial();
    failing.answers.set('unreachable.example.test', [{ address: '198.51.100.7', family: 4 }]);
    failing.answers.set('blackhole.example.test', [{ address: '198.51.100.8', family: 4 }]);
    // Documentation addresses are "reserved" for the policy; allow them explicitly, and dial nothing real:
    failing.connect = (opts) => {
      failing.connects.push(opts);
      const s = new net.Socket();
      if (opts.host === '198.51.100.7')
        setImmediate(() => s.destroy(Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' })));
      return s; // 198.51.100.8: never connects
    };
    const local = await startAgent(
      { proxy: { allow_destination_cidrs: ['198.51.100.0/24'], connect_timeout: '300ms' } },
      { dial: failing },
    );
    try {
      const a = await connectTunnel(local.proxyPort, 'unreachable.example.test:443');
      a.socket.destroy();
      expect(a.status).toBe(502);
      expect(a.headers['x-egress-witness-error']).toBe('unreachable');
      const t0 = Date.now();
      const b = await connectTunnel(local.proxyPort, 'blackhole.example.test:443');
      b.socket.destroy();
      expect(b.status).toBe(504);
      expect(b.headers['x-egress-witness-error']).toBe('connect-timeout');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    } finally {
      await local.stop();
    }
  });

  it('an allowed destination tunnels, and the connection goes to the checked address', async () => {
    const r = await connectTunnel(agent.proxyPort, `echo.example.test:${echoPort}`);
    expect(r.status).toBe(200);
    const reply = new Promise<string>((res) => r.socket.once('data', (c: Buffer) => res(c.toString())));
    r.socket.write('ping');
    expect(await reply).toBe('ping');
    r.socket.destroy();
    expect(dial.lookups.filter((h) => h === 'echo.example.test')).toHaveLength(1);
    expect(dialedTo('127.0.0.1')).toBe(true);
  });
});

describe('client admission', () => {
  it('a client outside allowed_clients gets 403 client-not-allowed and a decision line', async () => {
    const r = await connectTunnel(agent.proxyPort, `echo.example.test:${echoPort}`, { localAddress: '127.0.0.2' });
    r.socket.destroy();
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-witness-error']).toBe('client-not-allowed');
    // The decision line and the client's answer leave on different channels when proxy workers serve it.
    await until('the decision line', () => agent.logs.find('refused').some((l) => l.client_ip === '127.0.0.2'));
    expect(agent.logs.find('refused').filter((l) => l.client_ip === '127.0.0.2')).toEqual([
      expect.objectContaining({ kind: 'connect', outcome: 'denied', reason: 'client-not-allowed', host: null }),
    ]);
    const plain = await rawExchange(agent.proxyPort, `GET http://web.example.test/ HTTP/1.1\r\nHost: web.example.test\r\n\r\n`, {
      localAddress: '127.0.0.2',
    });
    expect(plain.response?.status).toBe(403);
  });
});

describe('plain HTTP forwarding', () => {
  it('forwards an absolute-form request to the checked address, keeps Host, strips hop-by-hop headers', async () => {
    const r = await rawExchange(
      agent.proxyPort,
      `POST http://web.example.test/path?q=1 HTTP/1.1\r\nHost: web.example.test\r\nProxy-Authorization: Basic c2VjcmV0\r\nConnection: close, X-Hop\r\nX-Hop: drop-me\r\nContent-Length: 5\r\n\r\nhello`,
    );
    expect(r.response?.status).toBe(200);
    const body = JSON.parse(responseBody(r.text)) as Record<string, unknown>;
    expect(body).toEqual({ url: '/path?q=1', host: 'web.example.test', method: 'POST', body: 'hello', proxyAuth: null, conn: null });
  });

  it('refuses plain HTTP to a denied destination with 403', async () => {
    const r = await rawExchange(agent.proxyPort, `GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n`);
    expect(r.response?.status).toBe(403);
    expect(r.response?.headers['x-egress-witness-error']).toBe('destination-denied:metadata');
  });

  it('refuses https:// absolute-form and other schemes with 400', async () => {
    const r = await rawExchange(agent.proxyPort, `GET https://web.example.test/ HTTP/1.1\r\nHost: web.example.test\r\n\r\n`);
    expect(r.response?.status).toBe(400);
    expect(r.response?.headers['x-egress-witness-error']).toBe('unsupported-scheme');
  });
});
