// The tunnel's relay on loopback: every byte arrives intact and in order in both directions, whatever
// the pace of either reader (backpressure, buffers reused between reads), an upstream that speaks
// first, half-close either way, and the byte counts of the tunnel's record exact.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { connectTunnel } from '../../helpers/raw.js';

/** What an upstream connection does, chosen by the first byte the client sends (or none: speaks first). */
type Script = (s: net.Socket) => void;

let upstream: net.Server;
let upstreamPort: number;
let nextScript: Script = () => undefined;

beforeAll(async () => {
  upstream = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    nextScript(s);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as AddressInfo).port;
});

afterAll(() => upstream.close());

let agent: TestAgent | null = null;
afterEach(async () => {
  await agent?.stop();
  agent = null;
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Reads `s` to its end; with `slow`, pauses after every chunk for a moment (the proxy's writes back up). */
function drain(s: net.Socket, slow = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (slow && chunks.length % 8 === 0) {
        s.pause();
        setTimeout(() => s.resume(), 2);
      }
    });
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

/** Writes `data` in pieces of varied sizes, honouring backpressure, then ends. */
async function send(s: net.Socket, data: Buffer): Promise<void> {
  const sizes = [1, 700, 16_384, 65_536, 200_000, 3];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const piece = data.subarray(at, at + sizes[i % sizes.length]!);
    at += piece.length;
    if (!s.write(piece)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
}

/** A tunnel to the upstream; `first` is what came in with the proxy's answer (an upstream that speaks first). */
async function tunnelTo(): Promise<{ c: net.Socket; first: Buffer }> {
  const t = await connectTunnel(agent!.proxyPort, `127.0.0.1:${upstreamPort}`);
  expect(t.status).toBe(200);
  // The client may still be sending when the upstream's end (relayed) reaches it.
  t.socket.allowHalfOpen = true;
  return { c: t.socket, first: t.rest };
}

async function closedLine(): Promise<Record<string, unknown>> {
  const end = Date.now() + 10_000;
  while (agent!.logs.find('tunnel_closed').length === 0) {
    if (Date.now() > end) throw new Error('no tunnel_closed line');
    await new Promise((r) => setTimeout(r, 10));
  }
  return agent!.logs.find('tunnel_closed').at(-1)!;
}

describe('tunnel relay', () => {
  it('carries a large download to a slow client intact, and counts it exactly', async () => {
    agent = await startAgent({ proxy: { allowed_ports: [upstreamPort], allow_destination_cidrs: ['127.0.0.1/32'] } });
    const down = randomBytes(24 * 2 ** 20);
    const up = randomBytes(5_000);
    let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    nextScript = (s) => {
      upstreamGot = drain(s);
      void send(s, down);
    };
    const { c, first } = await tunnelTo();
    const got = drain(c, true);
    await send(c, up);
    const received = Buffer.concat([first, await got]);
    expect(received.length).toBe(down.length);
    expect(sha(received)).toBe(sha(down));
    expect(sha(await upstreamGot)).toBe(sha(up));
    expect(await closedLine()).toMatchObject({ outcome: 'ok', bytes_up: up.length, bytes_down: down.length });
  });

  it('carries a large upload to a slow upstream intact while the download runs, and counts both', async () => {
    agent = await startAgent({ proxy: { allowed_ports: [upstreamPort], allow_destination_cidrs: ['127.0.0.1/32'] } });
    const down = randomBytes(6 * 2 ** 20 + 17);
    const up = randomBytes(12 * 2 ** 20 + 5);
    let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    nextScript = (s) => {
      upstreamGot = drain(s, true);
      void send(s, down);
    };
    const { c, first } = await tunnelTo();
    const got = drain(c);
    await send(c, up);
    expect(sha(Buffer.concat([first, await got]))).toBe(sha(down));
    expect(sha(await upstreamGot)).toBe(sha(up));
    expect(await closedLine()).toMatchObject({ outcome: 'ok', bytes_up: up.length, bytes_down: down.length });
  });

  it('relays an upstream that speaks first, then ends first while the client still sends', async () => {
    agent = await startAgent({ proxy: { allowed_ports: [upstreamPort], allow_destination_cidrs: ['127.0.0.1/32'] } });
    const banner = Buffer.from('220 hello\r\n');
    let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    nextScript = (s) => {
      upstreamGot = drain(s);
      s.end(banner);
    };
    const { c, first } = await tunnelTo();
    const got = Buffer.concat([first, await drain(c)]);
    expect(got.equals(banner)).toBe(true);
    // The upstream half-closed: the client's way to it is still open.
    const up = randomBytes(300_000);
    await send(c, up);
    expect(sha(await upstreamGot)).toBe(sha(up));
    expect(await closedLine()).toMatchObject({ outcome: 'ok', bytes_up: up.length, bytes_down: banner.length });
  });

  it('many small exchanges back and forth arrive in order', async () => {
    agent = await startAgent({ proxy: { allowed_ports: [upstreamPort], allow_destination_cidrs: ['127.0.0.1/32'] } });
    // An echo that answers each line with the line reversed.
    nextScript = (s) => {
      let pending = '';
      s.on('data', (c: Buffer) => {
        pending += c.toString('latin1');
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          s.write(`${pending.slice(0, nl).split('').reverse().join('')}\n`);
          pending = pending.slice(nl + 1);
        }
      });
      s.on('end', () => s.end());
    };
    const { c } = await tunnelTo();
    let answers = '';
    c.on('data', (b: Buffer) => (answers += b.toString('latin1')));
    let sent = 0;
    for (let i = 0; i < 300; i++) {
      const line = `${i}:${'x'.repeat(i * 7)}`;
      c.write(`${line}\n`);
      sent += line.length + 1;
      const want = `${line.split('').reverse().join('')}\n`;
      while (!answers.endsWith(want)) await new Promise((r) => setImmediate(r));
    }
    const ended = new Promise((r) => c.on('end', r));
    c.end();
    await ended;
    expect(answers.length).toBe(sent);
    expect(await closedLine()).toMatchObject({ outcome: 'ok', bytes_up: sent, bytes_down: sent });
  });
});
