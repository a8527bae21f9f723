// A decrypted request head must arrive within proxy.header_timeout, as on the proxy's own listener:
// a client that trickles header bytes inside an inspected connection is answered 408 and closed,
// long before the idle timeout, and nothing reaches the upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import { startInspectRig, until, type InspectRig } from '../../helpers/inspect-rig.js';
import { connectTunnel, parseResponseHead } from '../../helpers/raw.js';

const STS = 'sts.us-east-1.amazonaws.com';
let rig: InspectRig;

beforeAll(async () => {
  rig = await startInspectRig({ proxy: { allowed_ports: [443], header_timeout: '500ms', idle_timeout: '1m' } });
}, 30_000);

afterAll(async () => {
  await rig?.close();
});

describe('inspected requests and proxy.header_timeout', () => {
  it('a head trickled byte by byte is answered 408 header-timeout and the connection closed', async () => {
    const t = await connectTunnel(rig.agent.proxyPort, `${STS}:443`);
    expect(t.status).toBe(200);
    const secure = tls.connect({ socket: t.socket, servername: STS, ca: rig.inspectionCaPem });
    await new Promise((r, j) => secure.once('secureConnect', r).once('error', j));
    let answer = '';
    secure.on('data', (c: Buffer) => (answer += c.toString('latin1')));
    let closed = false;
    secure.once('close', () => (closed = true));
    secure.on('error', () => undefined);
    secure.write(`GET / HTTP/1.1\r\nHost: ${STS}\r\n`);
    // Traffic keeps the idle timer from firing: only the header deadline can end this.
    for (let i = 0; !closed && i < 1_000; i++) {
      secure.write('X-Slow: y\r\n');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(closed).toBe(true);
    const head = parseResponseHead(answer);
    expect(head?.status).toBe(408);
    expect(head?.headers['x-egress-witness-error']).toBe('header-timeout');
    await until('the decision line', () => rig.agent.logs.find('refused').some((l) => l.reason === 'header-timeout'));
    expect(rig.agent.logs.find('refused').filter((l) => l.reason === 'header-timeout')).toEqual([
      expect.objectContaining({ kind: 'invalid', mode: 'inspect', outcome: 'client_error', status: 408, client_ip: '127.0.0.1' }),
    ]);
    expect(rig.fake.requests).toEqual([]);
  });
});
