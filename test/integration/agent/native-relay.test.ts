// The native tunnel relay (native/tunnel-relay, agent/proxy/native-relay.ts) on loopback sockets:
// the hand-over loses no byte and sends no FIN, half-close either way, large transfers intact,
// backpressure (a paused reader stops the relay reading), resets from either side, the idle
// timeout, exact byte counts, and every descriptor closed once; then through a whole agent.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { readdirSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { platform } from 'node:os';
import { loadNativeRelay } from '../../../agent/proxy/native-relay.js';
import type { RelayedTunnel } from '../../../agent/proxy/tunnel.js';
import { startAgent, type TestAgent } from '../../helpers/agent.js';

const relay = loadNativeRelay('native');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const fds = (): number => readdirSync('/proc/self/fd').length;
const tick = (ms = 10): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await tick();
  }
}

/** Everything `s` sends until its end (or until it is closed by a reset). */
function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (): void => resolve(Buffer.concat(chunks));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.once('end', done);
    s.once('close', done);
  });
}

/** What `s` receives until the peer's end of stream (half-close: `s` itself stays open to write). */
function untilEnd(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    s.on('data', (b: Buffer) => (got += b.toString()));
    s.on('end', () => resolve(got));
  });
}

/** Resolves when the peer has closed or reset `s` (its end of stream, or the socket closed). */
function gone(s: net.Socket): Promise<void> {
  return readAll(s).then(() => undefined);
}

async function writeAll(s: net.Socket, data: Buffer, end = true): Promise<void> {
  for (let at = 0; at < data.length; at += 256 * 1024) {
    if (!s.write(data.subarray(at, at + 256 * 1024))) await new Promise((r) => s.once('drain', r));
  }
  if (end) s.end();
}

/** A connected pair on loopback: `near` is the proxy's socket (as the agent holds it), `far` the peer's. */
async function pair(server: net.Server, port: number): Promise<{ near: net.Socket; far: net.Socket }> {
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const far = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => far.once('connect', r));
  const near = await accepted;
  far.on('error', () => undefined);
  near.on('error', () => undefined);
  return { near, far };
}

let server: net.Server;
let port: number;
beforeAll(async () => {
  server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => server.close());

interface Rig {
  client: net.Socket;
  upstream: net.Socket;
  tunnel: RelayedTunnel;
}

/** A client and an upstream peer with the relay between them, `head` sent to the upstream first. */
async function rig(opts: { idleTimeoutMs?: number; head?: Buffer } = {}): Promise<Rig> {
  const c = await pair(server, port);
  const u = await pair(server, port);
  const tunnel = relay.open(c.near, u.near, {
    head: opts.head ?? Buffer.alloc(0),
    reads: null,
    idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
    now: Date.now,
  });
  if (tunnel === null) throw new Error('the relay refused the hand-over');
  return { client: c.far, upstream: u.far, tunnel };
}

describe.runIf(platform() === 'linux')('native tunnel relay', () => {
  it('is built and loads (npm run build:native)', () => {
    expect(relay.unavailableReason).toBeNull();
    expect(relay.available).toBe(true);
    expect(loadNativeRelay('js').available).toBe(false);
  });

  it('sends what Node had already read first, sends no FIN at the hand-over, and counts every byte', async () => {
    const c = await pair(server, port);
    const u = await pair(server, port);
    // Bytes Node reads before the hand-over: the client's wait in its paused socket, the upstream's likewise.
    c.far.write('early-client;');
    u.far.write('early-upstream;');
    // read(0) starts Node reading without flowing: what it reads stays in the sockets' buffers.
    c.near.read(0);
    u.near.read(0);
    await waitFor(() => c.near.readableLength === 13 && u.near.readableLength === 15);
    let ends = 0;
    c.far.on('end', () => ends++);
    u.far.on('end', () => ends++);
    const tunnel = relay.open(c.near, u.near, { head: Buffer.from('head;'), reads: null, idleTimeoutMs: 60_000, now: Date.now });
    expect(tunnel).not.toBeNull();
    expect(c.near.destroyed && u.near.destroyed).toBe(true);
    const atUpstream = readAll(u.far);
    const atClient = readAll(c.far);
    await tick(50);
    expect(ends).toBe(0);
    c.far.end('after;');
    u.far.end('reply;');
    expect((await atUpstream).toString()).toBe('head;early-client;after;');
    expect((await atClient).toString()).toBe('early-upstream;reply;');
    const r = await tunnel!.finished;
    expect(r).toMatchObject({ outcome: 'ok', reason: null, bytesUp: 24, bytesDown: 21 });
  });

  it('half-close, client first: the upstream sees the end and still answers, both ways counted', async () => {
    const { client, upstream, tunnel } = await rig();
    const upGot = untilEnd(upstream);
    const clientGot = readAll(client);
    client.end('question');
    expect(await upGot).toBe('question');
    await tick(20);
    upstream.write('answer, ');
    upstream.end('after your end');
    expect((await clientGot).toString()).toBe('answer, after your end');
    expect(await tunnel.finished).toMatchObject({ outcome: 'ok', bytesUp: 8, bytesDown: 22 });
  });

  it('half-close, upstream first: the client sees the end and still sends', async () => {
    const { client, upstream, tunnel } = await rig();
    const clientGot = untilEnd(client);
    const upGot = readAll(upstream);
    upstream.end('banner');
    expect(await clientGot).toBe('banner');
    await tick(20);
    client.end('still talking');
    expect((await upGot).toString()).toBe('still talking');
    expect(await tunnel.finished).toMatchObject({ outcome: 'ok', bytesUp: 13, bytesDown: 6 });
  });

  it('carries 48 MiB each way at once intact (sha-256), counted exactly', async () => {
    const { client, upstream, tunnel } = await rig();
    const up = randomBytes(48 * 1024 * 1024);
    const down = randomBytes(48 * 1024 * 1024);
    const atUpstream = readAll(upstream);
    const atClient = readAll(client);
    await Promise.all([writeAll(client, up), writeAll(upstream, down)]);
    expect(sha(await atUpstream)).toBe(sha(up));
    expect(sha(await atClient)).toBe(sha(down));
    expect(await tunnel.finished).toMatchObject({ outcome: 'ok', bytesUp: up.length, bytesDown: down.length });
  });

  it('backpressure: a client that does not read stops the relay reading from the upstream', async () => {
    const { client, upstream, tunnel } = await rig();
    const down = randomBytes(64 * 1024 * 1024);
    client.pause();
    const writing = writeAll(upstream, down);
    // Kernel buffers fill, then nothing moves: the relay holds at most one read, it does not slurp the upstream.
    let last = -1;
    await waitFor(() => {
      const now = tunnel.bytes.down;
      const still = now === last && upstream.writableLength > 0;
      last = now;
      return still;
    }, 10_000);
    await tick(100);
    expect(tunnel.bytes.down).toBe(last);
    expect(last).toBeLessThan(down.length / 4);
    const atClient = readAll(client);
    client.resume();
    await writing;
    expect(sha(await atClient)).toBe(sha(down));
    client.end();
    expect(await tunnel.finished).toMatchObject({ outcome: 'ok', bytesDown: down.length });
  });

  it('a reset from the client ends the tunnel as client_error and closes the upstream', async () => {
    const { client, upstream, tunnel } = await rig();
    client.write('some');
    await waitFor(() => tunnel.bytes.up === 4);
    const closed = gone(upstream);
    client.resetAndDestroy();
    expect(await tunnel.finished).toMatchObject({ outcome: 'client_error', reason: 'client-error', bytesUp: 4 });
    await closed;
  });

  it('a reset from the upstream ends the tunnel as upstream_error and closes the client', async () => {
    const { client, upstream, tunnel } = await rig();
    upstream.write('some');
    await waitFor(() => tunnel.bytes.down === 4);
    const closed = gone(client);
    upstream.resetAndDestroy();
    const r = await tunnel.finished;
    expect(r.outcome).toBe('upstream_error');
    expect(r.reason).toMatch(/^upstream-/);
    await closed;
  });

  it('bytes the upstream sent right before its reset still reach the client, then the tunnel ends as upstream_error', async () => {
    const { client, upstream, tunnel } = await rig();
    const payload = randomBytes(5000);
    const got = readAll(client);
    // Both land in the relay's receive queue before it looks: the data, then the reset behind it.
    upstream.write(payload, () => upstream.resetAndDestroy());
    const r = await tunnel.finished;
    expect(sha(await got)).toBe(sha(payload));
    expect(r.outcome).toBe('upstream_error');
    expect(r.bytesDown).toBe(payload.length);
  });

  it('bytes the client sent right before its reset still reach the upstream, then the tunnel ends as client_error', async () => {
    const { client, upstream, tunnel } = await rig();
    const payload = randomBytes(5000);
    const got = readAll(upstream);
    client.write(payload, () => client.resetAndDestroy());
    const r = await tunnel.finished;
    expect(sha(await got)).toBe(sha(payload));
    expect(r).toMatchObject({ outcome: 'client_error', bytesUp: payload.length });
  });

  it('does not take a socket with a layer over its descriptor (TLS): the bytes would pass beneath it', async () => {
    const c = await pair(server, port);
    const u = await pair(server, port);
    const wrapped = new tls.TLSSocket(u.near);
    const opts = { head: Buffer.alloc(0), reads: null, idleTimeoutMs: 60_000, now: Date.now };
    expect(relay.open(c.near, wrapped, opts)).toBeNull();
    expect(relay.open(wrapped, c.near, opts)).toBeNull();
    for (const s of [c.near, c.far, u.near, u.far, wrapped]) s.destroy();
  });

  it('closes a tunnel idle for the idle timeout; traffic pushes the deadline forward', async () => {
    const { client, upstream, tunnel } = await rig({ idleTimeoutMs: 300 });
    const echoed = readAll(client);
    upstream.on('data', (b: Buffer) => upstream.write(b));
    let ended = false;
    void tunnel.finished.then(() => (ended = true));
    for (let i = 0; i < 6; i++) {
      client.write('x');
      await tick(100);
    }
    // 600 ms of traffic at 100 ms intervals: twice the idle timeout, still open.
    expect(ended).toBe(false);
    const closed = gone(upstream);
    expect(await tunnel.finished).toMatchObject({ outcome: 'idle_timeout', reason: 'idle-timeout', bytesUp: 6, bytesDown: 6 });
    expect((await echoed).toString()).toBe('xxxxxx');
    await closed;
  });

  it('abort (the drain) closes both sides at once and reports the bytes so far', async () => {
    const { client, upstream, tunnel } = await rig();
    client.write('12345');
    await waitFor(() => tunnel.bytes.up === 5);
    const closes = Promise.all([gone(client), gone(upstream)]);
    tunnel.abort('drained');
    expect(await tunnel.finished).toMatchObject({ outcome: 'drained', reason: 'draining', bytesUp: 5, bytesDown: 0 });
    await closes;
  });

  it('leaks no descriptor: /proc/self/fd is back to its count after 200 tunnels ended every way', async () => {
    const before = fds();
    for (let i = 0; i < 200; i++) {
      const { client, upstream, tunnel } = await rig();
      const closed = Promise.all([gone(client), gone(upstream)]);
      if (i % 4 === 0) client.resetAndDestroy();
      else if (i % 4 === 1) upstream.resetAndDestroy();
      else if (i % 4 === 2) tunnel.abort('drained');
      else {
        client.end('x');
        upstream.end('y');
      }
      await tunnel.finished;
      await closed;
      client.destroy();
      upstream.destroy();
    }
    await waitFor(() => fds() <= before);
    expect(fds()).toBeLessThanOrEqual(before);
  });
});

describe.runIf(platform() === 'linux')('native tunnel relay in the agent', () => {
  let upstream: net.Server;
  let upstreamPort: number;
  let agent: TestAgent | null = null;
  beforeAll(async () => {
    upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(createHash('sha256').update(Buffer.concat(chunks)).digest('hex')));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamPort = (upstream.address() as AddressInfo).port;
  });
  afterAll(() => upstream.close());
  afterEach(async () => {
    await agent?.stop();
    agent = null;
  });

  it('proxy.tunnel_relay native: the bytes right behind the CONNECT head arrive, the record counts them, no descriptor is left', async () => {
    agent = await startAgent({
      proxy: { tunnel_relay: 'native', allow_destination_cidrs: ['127.0.0.1/32'], allowed_ports: [upstreamPort] },
    });
    const before = fds();
    for (let i = 0; i < 20; i++) {
      const body = randomBytes(1000 + i * 5000);
      const s = net.connect({ port: agent.proxyPort, host: '127.0.0.1', allowHalfOpen: true });
      await new Promise((r) => s.once('connect', r));
      // The head and the first bytes of the tunnel in one write: the proxy reads them together.
      s.write(Buffer.concat([Buffer.from(`CONNECT 127.0.0.1:${upstreamPort} HTTP/1.1\r\nHost: 127.0.0.1:${upstreamPort}\r\n\r\n`), body]));
      s.end();
      const answer = (await readAll(s)).toString();
      expect(answer).toBe(`HTTP/1.1 200 Connection Established\r\n\r\n${sha(body)}`);
    }
    await waitFor(() => agent!.app.status().active_tunnels === 0 && agent!.logs.find('tunnel_closed').length === 20);
    const lines = agent.logs.find('tunnel_closed');
    // Each client waited for its answer, but the relay may report a tunnel's end after the next one's: compare as a set.
    expect(lines.map((l) => Number(l.bytes_up)).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => 1000 + i * 5000));
    expect(lines.every((l) => l.bytes_down === 64 && l.outcome === 'ok')).toBe(true);
    await waitFor(() => fds() <= before);
  });
});
