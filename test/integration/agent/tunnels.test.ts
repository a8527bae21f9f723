// Tunnel mechanics on loopback: half-close, idle timeout, the tunnel cap, drain on stop, and no leaked sockets.
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { connectTunnel } from '../../helpers/raw.js';

let upstream: net.Server;
let upstreamPort: number;
const upstreamSockets = new Set<net.Socket>();

beforeAll(async () => {
  // Reads until the client half-closes, then answers with what it got, reversed, and ends.
  upstream = net.createServer({ allowHalfOpen: true }, (s) => {
    upstreamSockets.add(s);
    s.on('close', () => upstreamSockets.delete(s));
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got === 'hold') return;
    });
    s.on('end', () => s.end(`got:${got.split('').reverse().join('')}`));
    s.on('error', () => undefined);
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

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { proxy: { allowed_ports: [upstreamPort], allow_destination_cidrs: ['127.0.0.1/32'], ...extra } };
}

function readAll(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('end', () => resolve(text));
    s.on('close', () => resolve(text));
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('tunnels', () => {
  it('honours half-close: the client ends its side and still receives the answer', async () => {
    agent = await startAgent(config());
    const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    expect(t.status).toBe(200);
    const all = readAll(t.socket);
    t.socket.end('abc');
    expect(await all).toBe('got:cba');
    await waitFor(() => agent!.app.status().active_tunnels === 0);
    await agent.flush();
    const logs = agent.logs.find('tunnel_closed');
    expect(logs.at(-1)).toMatchObject({ outcome: 'ok', bytes_up: 3, bytes_down: 7 });
  });

  it('closes a tunnel idle for longer than idle_timeout, and traffic pushes the deadline forward', async () => {
    agent = await startAgent(config({ idle_timeout: '300ms' }));
    const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    const closed = new Promise<number>((r) => t.socket.on('close', () => r(Date.now())));
    const start = Date.now();
    // keep it busy for ~600 ms, then go quiet
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 150));
      t.socket.write('x');
    }
    const at = await closed;
    expect(at - start).toBeGreaterThanOrEqual(800);
    await waitFor(() => agent!.logs.find('tunnel_closed').length > 0);
    expect(agent.logs.find('tunnel_closed').at(-1)?.outcome).toBe('idle_timeout');
  });

  it('caps concurrent tunnels with 503 and Retry-After', async () => {
    agent = await startAgent(config({ max_tunnels: 2 }));
    const a = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    const b = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    const c = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    expect([a.status, b.status, c.status]).toEqual([200, 200, 503]);
    expect(c.headers['retry-after']).toBe('1');
    expect(c.headers['x-egress-witness-error']).toBe('tunnel-limit');
    a.socket.destroy();
    await waitFor(() => agent!.app.status().active_tunnels === 1);
    const d = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    expect(d.status).toBe(200);
    for (const s of [b, c, d]) s.socket.destroy();
    const metrics = await agent.app.registry.getSingleMetricAsString('egress_witness_denied_total');
    expect(metrics).toContain('egress_witness_denied_total{reason="tunnel-limit"} 1');
  });

  it('drains on stop: refuses new tunnels, closes open ones at the deadline and records them as drained', async () => {
    agent = await startAgent(config());
    const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    t.socket.write('hold');
    const closed = new Promise<void>((r) => t.socket.on('close', () => r()));
    t.socket.on('error', () => undefined);
    const started = Date.now();
    const stopping = agent.app.stop(400);
    await new Promise((r) => setTimeout(r, 100));
    // not accepting any more
    await expect(connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`, { timeoutMs: 1_000 })).rejects.toThrow();
    await stopping;
    await closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    const line = agent.logs.find('tunnel_closed').at(-1);
    expect(line?.outcome).toBe('drained');
    expect(agent.logs.find('drain_deadline')).toHaveLength(1);
    agent = null;
  });

  it('a tunnel that finishes before the deadline lets stop return early', async () => {
    agent = await startAgent(config());
    const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
    const done = readAll(t.socket);
    const started = Date.now();
    const stopping = agent.app.stop(5_000);
    setTimeout(() => t.socket.end('late'), 100);
    expect(await done).toBe('got:etal');
    await stopping;
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(agent.logs.find('drain_deadline')).toHaveLength(0);
    agent = null;
  });

  it('leaks no sockets: handles return to their baseline after many tunnels and resets', async () => {
    agent = await startAgent(config());
    const handles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const baseline = handles();
    for (let i = 0; i < 30; i++) {
      const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${upstreamPort}`);
      if (i % 3 === 0) t.socket.resetAndDestroy();
      else if (i % 3 === 1) t.socket.destroy();
      else {
        const all = readAll(t.socket);
        t.socket.end('x');
        await all;
      }
    }
    await waitFor(() => agent!.app.status().active_tunnels === 0 && upstreamSockets.size === 0);
    await waitFor(() => handles() <= baseline, 3_000);
    expect(handles()).toBeLessThanOrEqual(baseline);
  });
});
