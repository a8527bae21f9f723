// Hostile and broken requests: a clear 4xx, the connection closed, and the agent keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { rawExchange, connectTunnel } from '../../helpers/raw.js';

let agent: TestAgent;

beforeAll(async () => {
  agent = await startAgent({ proxy: { header_timeout: '500ms', max_header_bytes: '8KiB' } });
});
afterAll(async () => {
  await agent?.stop();
});

describe('malformed requests', () => {
  it.each([
    ['origin-form request (not a proxy request)', 'GET /not-a-proxy-request HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'origin-form'],
    ['origin-form without Host', 'GET / HTTP/1.1\r\n\r\n', 400, null],
    ['CONNECT without a port', 'CONNECT sts.amazonaws.com HTTP/1.1\r\nHost: sts.amazonaws.com\r\n\r\n', 400, 'bad-authority'],
    ['CONNECT with a port out of range', 'CONNECT sts.amazonaws.com:99999 HTTP/1.1\r\n\r\n', 400, 'bad-authority'],
    ['CONNECT to a bad host name', 'CONNECT bad_host!:443 HTTP/1.1\r\n\r\n', 400, 'bad-authority'],
    ['CONNECT with user info', 'CONNECT user@sts.amazonaws.com:443 HTTP/1.1\r\n\r\n', 400, 'bad-authority'],
    ['CONNECT to an IP shorthand', 'CONNECT 2130706433:443 HTTP/1.1\r\n\r\n', 400, 'bad-authority'],
    ['absolute-form with user info', 'GET http://a:b@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n', 400, 'bad-url'],
    ['absolute-form ftp', 'GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n', 400, 'unsupported-scheme'],
    ['garbage request line', 'HELLO THERE\r\n\r\n', 400, 'malformed'],
    ['binary garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 400, 'malformed'],
  ])('%s → %i', async (_name, payload, status, reason) => {
    const r = await rawExchange(agent.proxyPort, payload);
    expect(r.response?.status).toBe(status);
    if (reason) expect(r.response?.headers['x-egress-witness-error']).toBe(reason);
    expect(r.closed).toBe(true);
  });

  it('an absurdly large header gets 431', async () => {
    const r = await rawExchange(
      agent.proxyPort,
      `GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(r.response?.status).toBe(431);
  });

  it('a client that sends its headers too slowly gets 408', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.write('CONNECT sts.us-east-1.amazonaws.com:443 HTTP/1.1\r\n');
    const timer = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
    await new Promise((r) => socket.on('close', r));
    clearInterval(timer);
    expect(text).toMatch(/^HTTP\/1\.1 408/);
  });

  it('a client that resets mid-request does not crash anything', async () => {
    for (let i = 0; i < 20; i++) {
      const s = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
      await new Promise((r) => s.once('connect', r));
      s.write('CONNECT 127.0.0.1:4');
      s.resetAndDestroy();
    }
  });

  it('keeps serving after all of the above', async () => {
    const r = await connectTunnel(agent.proxyPort, '169.254.169.254:443');
    r.socket.destroy();
    expect(r.status).toBe(403);
    const metrics = await agent.app.registry.getSingleMetricAsString('egress_witness_proxy_requests_total');
    expect(metrics).toMatch(/kind="invalid",outcome="client_error"} \d+/);
  });
});
