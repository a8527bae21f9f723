// A reload that rebuilds the inspector retires the old one, which closes its upstream pool once the
// connections it was handed have ended. A CONNECT still waiting for its ClientHello belongs to the old
// inspector too: the pool used to be closed at once (and closed again when that connection ended, an
// unhandled rejection that stopped the agent a few SIGHUPs into the soak).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type net from 'node:net';
import tls from 'node:tls';
import type { AgentConfig } from '../../../agent/config/schema.js';
import type { TestAgent } from '../../helpers/agent.js';
import { startInspectRig, until, type InspectRig } from '../../helpers/inspect-rig.js';
import { connectTunnel, parseResponseHead } from '../../helpers/raw.js';

const STS = 'sts.us-east-1.amazonaws.com';

let rig: InspectRig;
let agent: TestAgent;

beforeAll(async () => {
  rig = await startInspectRig();
  agent = rig.agent;
}, 30_000);

afterAll(async () => {
  await rig?.close();
});

/** A reload whose passthrough list differs, so the inspector is rebuilt. */
async function reloadWithPassthrough(passthrough: string[]): Promise<void> {
  const inspect = agent.config.inspect as NonNullable<AgentConfig['inspect']>;
  const next: AgentConfig = { ...agent.config, inspect: { ...inspect, passthrough } };
  expect(await agent.app.reload({ ok: true, value: next })).toBe(true);
}

/** TLS over an open tunnel with the inspection CA, one GET, the status line's code. */
function getOver(socket: net.Socket): Promise<{ status: number; issuer: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket, servername: STS, ca: rig.inspectionCaPem, ALPNProtocols: ['http/1.1'] });
    let text = '';
    s.once('secureConnect', () => s.write(`GET /?Action=GetCallerIdentity HTTP/1.1\r\nHost: ${STS}\r\nConnection: close\r\n\r\n`));
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.once('end', () => {
      const head = parseResponseHead(text);
      resolve({ status: head?.status ?? 0, issuer: String(s.getPeerCertificate().issuer?.CN) });
      s.destroy();
    });
    s.once('error', reject);
  });
}

describe('reloading the inspector', () => {
  it('serves a CONNECT that was waiting for its ClientHello through the retired inspector, and closes that one once', async () => {
    const waiting = await connectTunnel(agent.proxyPort, `${STS}:443`);
    expect(waiting.status).toBe(200);
    await reloadWithPassthrough(['reload-a.example.com']);
    const first = await getOver(waiting.socket);
    expect(first.status).toBe(200);
    expect(first.issuer).not.toBe('fake AWS CA'); // intercepted by the agent's leaf

    // The retired inspector's last connection has ended: its pool closes now, once. Another reload
    // retires the next one with nothing open; the agent keeps serving through the newest.
    await reloadWithPassthrough(['reload-b.example.com']);
    const again = await connectTunnel(agent.proxyPort, `${STS}:443`);
    const second = await getOver(again.socket);
    expect(second.status).toBe(200);
    await until('the requests to reach the fake', () => rig.fake.requests.length >= 2);
  });

  it('a reload that narrows the destination policy closes the pooled upstream connections: a client connection kept open dials again under it, on an inspector an earlier reload replaced too', async () => {
    const tunnel = await connectTunnel(agent.proxyPort, `${STS}:443`);
    expect(tunnel.status).toBe(200);
    const s = tls.connect({ socket: tunnel.socket, servername: STS, ca: rig.inspectionCaPem, ALPNProtocols: ['http/1.1'] });
    s.on('error', () => undefined);
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    await new Promise((r) => s.once('secureConnect', r));
    // One whole answer on this kept-alive connection, the upstream connection pooled behind it.
    const answered = (): boolean => {
      const head = parseResponseHead(text);
      return head !== null && text.length >= text.indexOf('\r\n\r\n') + 4 + Number(head.headers['content-length'] ?? 0);
    };
    s.write(`GET /?Action=GetCallerIdentity HTTP/1.1\r\nHost: ${STS}\r\n\r\n`);
    await until('the first answer', answered);
    expect(parseResponseHead(text)?.status).toBe(200);
    const forwarded = rig.fake.requests.length;

    // A reload replaces the inspector holding this connection; a later one makes the fake no longer an
    // allowed destination (127.0.0.1 is loopback without the allow-list), without replacing the inspector again.
    const config = agent.config;
    const inspect = { ...(config.inspect as NonNullable<AgentConfig['inspect']>), passthrough: ['reload-c.example.com'] };
    expect(await agent.app.reload({ ok: true, value: { ...config, inspect } })).toBe(true);
    expect(
      await agent.app.reload({ ok: true, value: { ...config, inspect, proxy: { ...config.proxy, allow_destination_cidrs: [] } } }),
    ).toBe(true);
    try {
      text = '';
      s.write(`GET /?Action=GetCallerIdentity HTTP/1.1\r\nHost: ${STS}\r\nConnection: close\r\n\r\n`);
      await until('the second answer', () => parseResponseHead(text) !== null);
      expect(parseResponseHead(text)?.status).not.toBe(200);
      expect(rig.fake.requests.length).toBe(forwarded);
    } finally {
      s.destroy();
      expect(await agent.app.reload({ ok: true, value: config })).toBe(true);
    }
  });
});
