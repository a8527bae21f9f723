// Plain HTTP (absolute form) through undici: every upstream connection is one the agent's dialer made to
// a checked address, pooled per origin and reused; bodies stream both ways and their sizes reach the
// record; the agent adds no Via or X-Forwarded-For; a policy reload retires the pooled connections.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { startAgent, recordingDial, type TestAgent, type RecordingDial } from '../../helpers/agent.js';
import { rawExchange, responseBody } from '../../helpers/raw.js';
import { until } from '../../helpers/inspect-rig.js';

let agent: TestAgent;
let dial: RecordingDial;
let web: http.Server;
let webPort: number;
/** Upstream connections the origin accepted. */
let accepted = 0;

beforeAll(async () => {
  web = http.createServer((req, res) => {
    if (req.url?.startsWith('/download')) {
      const total = Number(/bytes=(\d+)/.exec(req.url)?.[1] ?? 0);
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let left = total;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    let received = 0;
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => {
      const body = JSON.stringify({
        received,
        via: req.headers.via ?? null,
        xff: req.headers['x-forwarded-for'] ?? null,
        host: req.headers.host,
        te: req.headers['transfer-encoding'] ?? null,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }).end(body);
    });
  });
  web.on('connection', () => accepted++);
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as AddressInfo).port;
  dial = recordingDial();
  dial.answers.set('web.example.test', [{ address: '127.0.0.1', family: 4 }]);
  agent = await startAgent(
    { proxy: { allowed_clients: ['127.0.0.1/32'], allowed_ports: [webPort], allow_destination_cidrs: ['127.0.0.1/32'] } },
    { dial },
  );
});

afterAll(async () => {
  await agent?.stop();
  web?.closeAllConnections();
  web?.close();
});

function lastRequestLine(): Record<string, unknown> {
  const lines = agent.logs.find('request');
  return lines[lines.length - 1] ?? {};
}

/** One keep-alive client connection to the proxy, requests sent one after another. */
async function keepAliveClient(): Promise<{ get(path: string): Promise<string>; close(): void }> {
  const socket = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  return {
    get: (path) =>
      new Promise((resolve) => {
        let text = '';
        const onData = (c: Buffer): void => {
          text += c.toString('latin1');
          const head = text.indexOf('\r\n\r\n');
          const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? -1);
          if (head >= 0 && length >= 0 && text.length >= head + 4 + length) {
            socket.off('data', onData);
            resolve(text);
          }
        };
        socket.on('data', onData);
        socket.write(`GET http://web.example.test:${webPort}${path} HTTP/1.1\r\nHost: web.example.test:${webPort}\r\n\r\n`);
      }),
    close: () => socket.destroy(),
  };
}

describe('plain HTTP through the shared forwarding stack', () => {
  it('dials through the agent, reuses the pooled connection, and adds no Via or X-Forwarded-For', async () => {
    const client = await keepAliveClient();
    const connects = dial.connects.length;
    const before = accepted;
    for (let i = 0; i < 3; i++) {
      const text = await client.get('/echo');
      expect(text).toMatch(/^HTTP\/1\.1 200/);
      expect(JSON.parse(responseBody(text))).toMatchObject({ via: null, xff: null, host: `web.example.test:${webPort}` });
    }
    client.close();
    // At most one new upstream connection for three requests, and it came from the agent's dialer.
    expect(accepted - before).toBeLessThanOrEqual(1);
    expect(dial.connects.length - connects).toBe(accepted - before);
    expect(dial.connects.slice(connects).every((c) => c.host === '127.0.0.1' && c.port === webPort)).toBe(true);
    await until('the request lines', () => agent.logs.find('request').length >= 3);
    expect(lastRequestLine()).toMatchObject({
      kind: 'http',
      host: 'web.example.test',
      resolved_ip: '127.0.0.1',
      status: 200,
      outcome: 'ok',
    });
  });

  it("a Host naming another host than the URL is replaced by the URL's (the host served is the one recorded); a repeated Host or Authorization is refused", async () => {
    const exchange = (head: string) =>
      new Promise<string>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
        let text = '';
        socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
        socket.on('close', () => resolve(text));
        socket.on('error', () => undefined);
        socket.write(`${head}Connection: close\r\n\r\n`);
      });
    const url = `http://web.example.test:${webPort}/echo`;
    for (const host of ['other.example.test', '127.0.0.1:3128', `web.example.test:${webPort + 1}`]) {
      const text = await exchange(`GET ${url} HTTP/1.1\r\nHost: ${host}\r\n`);
      expect(text).toMatch(/^HTTP\/1\.1 200/);
      expect(JSON.parse(responseBody(text))).toMatchObject({ host: `web.example.test:${webPort}` });
    }
    // The client's own Host, when it names the URL's host (a port left out included), goes as it is (it is signed).
    const same = await exchange(`GET ${url} HTTP/1.1\r\nHost: WEB.example.test\r\n`);
    expect(JSON.parse(responseBody(same))).toMatchObject({ host: 'WEB.example.test' });
    const accepted0 = accepted;
    for (const [extra, reason] of [
      ['Host: web.example.test\r\nHost: other.example.test\r\n', 'repeated-host'],
      ['Host: web.example.test\r\nAuthorization: AWS4-HMAC-SHA256 a\r\nAuthorization: AWS4-HMAC-SHA256 b\r\n', 'repeated-authorization'],
    ]) {
      const text = await exchange(`GET ${url} HTTP/1.1\r\n${extra}`);
      expect(text).toMatch(/^HTTP\/1\.1 400/);
      expect(text).toContain(`X-Egress-Witness-Error: ${reason}`);
    }
    expect(accepted).toBe(accepted0);
  });

  it('streams a chunked upload and a large download, recording the body sizes', async () => {
    const upload = 4 * 1024 * 1024;
    const chunk = Buffer.alloc(256 * 1024, 0x62);
    const up = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: agent.proxyPort,
          method: 'POST',
          path: `http://web.example.test:${webPort}/upload`,
          headers: { host: 'web.example.test' },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
        },
      );
      req.on('error', reject);
      for (let sent = 0; sent < upload; sent += chunk.length) req.write(chunk);
      req.end();
    });
    expect(up).toMatchObject({ received: upload, te: 'chunked' });
    await until('the upload line', () => lastRequestLine().action === 'POST /upload');
    expect(lastRequestLine()).toMatchObject({ bytes_up: upload, status: 200, outcome: 'ok' });

    const download = 16 * 1024 * 1024;
    const got = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: agent.proxyPort, path: `http://web.example.test:${webPort}/download?bytes=${download}` }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
        })
        .on('error', reject);
    });
    expect(got).toBe(download);
    await until('the download line', () => String(lastRequestLine().action).startsWith('GET /download'));
    expect(lastRequestLine()).toMatchObject({ bytes_down: download, status: 200, outcome: 'ok' });
  });

  it('after a reload of the destination policy, new requests get new upstream connections', async () => {
    const client = await keepAliveClient();
    await client.get('/echo');
    const before = accepted;
    const next = structuredClone(agent.config);
    next.proxy.allowed_ports = [webPort, 8443];
    expect(await agent.app.reload({ ok: true, value: next })).toBe(true);
    await client.get('/echo');
    client.close();
    expect(accepted - before).toBe(1);
  });

  it('a request the new policy refuses is refused before any dial', async () => {
    const next = structuredClone(agent.config);
    next.proxy.allowed_ports = [8443];
    expect(await agent.app.reload({ ok: true, value: next })).toBe(true);
    const connects = dial.connects.length;
    const r = await rawExchange(agent.proxyPort, `GET http://web.example.test:${webPort}/echo HTTP/1.1\r\nHost: web.example.test\r\n\r\n`);
    expect(r.response?.status).toBe(403);
    expect(r.response?.headers['x-egress-witness-error']).toBe('destination-denied:port-not-allowed');
    expect(dial.connects.length).toBe(connects);
  });
});
