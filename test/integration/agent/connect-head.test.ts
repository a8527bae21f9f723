// How the explicit listener reads a connection's first bytes: a whole CONNECT head in one read, a head
// split over several, a head with tunnel bytes after it, framing headers, and clients that send nothing.
// Each way ends as it did through the HTTP server alone: the same answer, one decision line, one increment.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { parseResponseHead, rawExchange } from '../../helpers/raw.js';

const DECISION_EVENTS = new Set(['refused', 'intercept_failed', 'tunnel_closed', 'inspected_closed', 'request']);

let upstream: net.Server;
let upstreamPort: number;
let agent: TestAgent;

beforeAll(async () => {
  // Echoes what it reads, prefixed once with "echo:".
  upstream = net.createServer((s) => {
    s.on('error', () => undefined);
    s.write('echo:');
    s.pipe(s);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as AddressInfo).port;
  agent = await startAgent({
    proxy: { allowed_ports: [upstreamPort], allow_destination_cidrs: ['127.0.0.1/32'], header_timeout: '500ms', max_header_bytes: '8KiB' },
  });
});

afterAll(async () => {
  await agent?.stop();
  upstream?.close();
});

async function proxyRequestsTotal(): Promise<number> {
  const m = await agent.app.registry.getSingleMetric('egress_witness_proxy_requests_total')?.get();
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

function decisionLines(): Record<string, unknown>[] {
  return agent.logs.lines.filter((l) => DECISION_EVENTS.has(String(l.event)));
}

async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what}: not in time`);
}

/** Writes each part in its own write (a pause between them), reads until `want` is in the answer or the proxy closes. */
function converse(parts: (string | Buffer)[], want: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: agent.proxyPort, noDelay: true });
    let text = '';
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(finish, 5_000);
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (text.includes(want)) finish();
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('error', () => undefined);
    void (async () => {
      for (const p of parts) {
        socket.write(p);
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
  });
}

/** One path through the listener: its decision line (the last one) and exactly one increment. */
async function onePath(run: () => Promise<void>): Promise<Record<string, unknown>> {
  const lines0 = decisionLines().length;
  const metric0 = await proxyRequestsTotal();
  await run();
  await until('the decision line', () => decisionLines().length > lines0);
  await until('the tunnels to close', () => agent.app.status().active_tunnels === 0);
  await new Promise((r) => setTimeout(r, 50));
  const lines = decisionLines().slice(lines0);
  expect(lines, JSON.stringify(lines)).toHaveLength(1);
  expect((await proxyRequestsTotal()) - metric0).toBe(1);
  return lines[0]!;
}

describe('the first bytes of an explicit connection', () => {
  const authority = () => `127.0.0.1:${upstreamPort}`;

  it('a whole CONNECT head with tunnel bytes after it in the same write: the bytes go through', async () => {
    const line = await onePath(async () => {
      const r = await converse([`CONNECT ${authority()} HTTP/1.1\r\nHost: ${authority()}\r\nUser-Agent: t\r\n\r\nhello`], 'echo:hello');
      expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
      expect(r.text.endsWith('echo:hello')).toBe(true);
    });
    expect(line).toMatchObject({ event: 'tunnel_closed', kind: 'connect', outcome: 'ok' });
  });

  it('a CONNECT head split over several writes: tunnelled the same way', async () => {
    const line = await onePath(async () => {
      const r = await converse(['CONN', `ECT ${authority()} HTTP/1.1\r\n`, `Host: ${authority()}\r\n\r\n`, 'split'], 'echo:split');
      expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
      expect(r.text.endsWith('echo:split')).toBe(true);
    });
    expect(line).toMatchObject({ event: 'tunnel_closed', kind: 'connect', outcome: 'ok' });
  });

  it('an HTTP/1.0 CONNECT without headers is tunnelled', async () => {
    const line = await onePath(async () => {
      const r = await converse([`CONNECT ${authority()} HTTP/1.0\r\n\r\n`, 'ten'], 'echo:ten');
      expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    });
    expect(line).toMatchObject({ event: 'tunnel_closed', kind: 'connect', outcome: 'ok' });
  });

  it.each([
    ['a bad authority', (a: string) => `CONNECT ${a.replace('127.0.0.1', '127.1')} HTTP/1.1\r\n\r\n`, 400, 'bad-authority'],
    ['a lower-case method', (a: string) => `connect ${a} HTTP/1.1\r\n\r\n`, 400, 'malformed'],
    ['a bare LF', (a: string) => `CONNECT ${a} HTTP/1.1\nHost: x\r\n\r\n`, 400, 'malformed'],
    [
      'Content-Length and Transfer-Encoding both',
      (a: string) => `CONNECT ${a} HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n`,
      400,
      'malformed',
    ],
    ['a space before the colon', (a: string) => `CONNECT ${a} HTTP/1.1\r\nHost : x\r\n\r\n`, 400, 'malformed'],
    ['a NUL in a header value', (a: string) => `CONNECT ${a} HTTP/1.1\r\nX-A: a\x00b\r\n\r\n`, 400, 'malformed'],
  ])('%s → %d %s', async (_name, payload, status, reason) => {
    const line = await onePath(async () => {
      const r = await rawExchange(agent.proxyPort, payload(authority()));
      expect(r.response?.status).toBe(status);
      expect(r.response?.headers['x-egress-witness-error']).toBe(reason);
      expect(r.closed).toBe(true);
    });
    expect(line).toMatchObject({ event: 'refused', kind: 'invalid', reason });
  });

  it('a CONNECT head larger than max_header_bytes → 431', async () => {
    const line = await onePath(async () => {
      const r = await rawExchange(agent.proxyPort, `CONNECT ${authority()} HTTP/1.1\r\nX-Big: ${'a'.repeat(9_000)}\r\n\r\n`);
      expect(r.response?.status).toBe(431);
    });
    expect(line).toMatchObject({ event: 'refused', kind: 'invalid', reason: 'header-too-large' });
  });

  it('a client that connects and sends nothing gets 408 after the header timeout', async () => {
    const line = await onePath(async () => {
      const socket = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      await new Promise((r) => socket.on('close', r));
      expect(parseResponseHead(text)?.status).toBe(408);
      expect(parseResponseHead(text)?.headers['x-egress-witness-error']).toBe('header-timeout');
    });
    expect(line).toMatchObject({ event: 'refused', kind: 'invalid', reason: 'header-timeout' });
  });

  it('a client that closes its side before sending anything is closed, with nothing to record', async () => {
    const lines0 = decisionLines().length;
    const metric0 = await proxyRequestsTotal();
    const socket = net.connect({ host: '127.0.0.1', port: agent.proxyPort, allowHalfOpen: true });
    await new Promise((r) => socket.once('connect', r));
    socket.end();
    socket.resume();
    await new Promise((r) => socket.once('close', r));
    await new Promise((r) => setTimeout(r, 50));
    expect(decisionLines().length).toBe(lines0);
    expect(await proxyRequestsTotal()).toBe(metric0);
  });
});
