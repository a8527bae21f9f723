// A tunnel that lives longer than the detector's span bound is reported window by window while it
// lives: every observation stays within the bound, the windows follow each other without a gap, and
// their bytes add up to the tunnel's (one canonical line at close, with the whole tunnel's totals).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net, { type AddressInfo } from 'node:net';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { connectTunnel } from '../../helpers/raw.js';
import { recordTimeProblem } from '../../../protocol/time-bounds.js';
import { LIVE_REPORT_INTERVAL_MS } from '../../../agent/proxy/report-window.js';
import type { TelemetryRecord } from '../../../protocol/telemetry.js';

let echo: net.Server;
let echoPort: number;

beforeAll(async () => {
  echo = net.createServer((s) => {
    s.on('data', (c: Buffer) => s.write(c));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
});
afterAll(() => echo.close());

let agent: TestAgent | null = null;
afterEach(async () => {
  await agent?.stop();
  agent = null;
});

async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

/** Writes `n` bytes through the tunnel and waits for their echo, so the agent has counted them both ways. */
async function roundTrip(socket: net.Socket, received: { n: number }, n: number): Promise<void> {
  const want = received.n + n;
  socket.write(Buffer.alloc(n, 0x61));
  await waitFor(() => received.n >= want);
}

describe('a long-lived tunnel', () => {
  it('is reported per window while it lives: every record within the span bound, bytes counted once', async () => {
    let clock = Date.parse('2026-12-01T00:00:00Z');
    agent = await startAgent(
      { proxy: { allowed_ports: [echoPort], allow_destination_cidrs: ['127.0.0.1/32'] }, telemetry: { observe_all: true } },
      { now: () => clock },
    );
    const opened = clock;
    const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
    expect(t.status).toBe(200);
    const received = { n: 0 };
    t.socket.on('data', (c: Buffer) => (received.n += c.length));
    // 30 minutes, a flush every 20 s (a burst of traffic in each), three times the detector's 10-minute bound.
    let sent = 0;
    for (let i = 1; i <= 90; i++) {
      await roundTrip(t.socket, received, i);
      sent += i;
      clock += 20_000;
      await agent.flush();
    }
    await roundTrip(t.socket, received, 7);
    sent += 7;
    clock += 5_000;
    t.socket.end();
    await waitFor(() => agent!.app.status().active_tunnels === 0);
    await agent.flush();

    const records = agent.observations().filter((o) => o.mode === 'tunnel' && o.port === echoPort) as (TelemetryRecord & {
      type: 'observation';
    })[];
    const closedAt = clock;
    // A window is reported at the first flush that finds it at least the interval old: every 3rd flush here.
    expect(records.length).toBe(31);
    const bounds = { nowMs: closedAt, clockSkewMs: 300_000, maxSpanMs: 600_000 };
    for (const r of records) {
      expect(recordTimeProblem(r, bounds)).toBeNull();
      expect(Date.parse(r.lastSeen) - Date.parse(r.firstSeen)).toBeLessThanOrEqual(LIVE_REPORT_INTERVAL_MS);
      expect(r.count).toBe(1);
    }
    expect(records[0]?.firstSeen).toBe(new Date(opened).toISOString());
    expect(records.at(-1)?.lastSeen).toBe(new Date(closedAt).toISOString());
    for (let i = 1; i < records.length; i++) expect(records[i]?.firstSeen).toBe(records[i - 1]?.lastSeen);
    expect(records.reduce((n, r) => n + r.bytesUp, 0)).toBe(sent);
    expect(records.reduce((n, r) => n + r.bytesDown, 0)).toBe(sent);
    expect(records.reduce((n, r) => n + (r.durationMs ?? 0), 0)).toBe(closedAt - opened);
    expect(records.every((r) => r.outcome === 'ok')).toBe(true);

    // One canonical line, at close, with the whole tunnel's bytes and duration; the byte counters match.
    const lines = agent.logs.find('tunnel_closed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ bytes_up: sent, bytes_down: sent, duration_ms: closedAt - opened, outcome: 'ok' });
    const bytes = await agent.app.registry.getSingleMetricAsString('egress_witness_tunnel_bytes_total');
    expect(bytes).toContain(`egress_witness_tunnel_bytes_total{direction="up"} ${sent}`);
    expect(bytes).toContain(`egress_witness_tunnel_bytes_total{direction="down"} ${sent}`);
  });

  it('a tunnel shorter than the interval is still one observation, reported at close', async () => {
    let clock = Date.parse('2026-12-01T00:00:00Z');
    agent = await startAgent(
      { proxy: { allowed_ports: [echoPort], allow_destination_cidrs: ['127.0.0.1/32'] }, telemetry: { observe_all: true } },
      { now: () => clock },
    );
    const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
    const received = { n: 0 };
    t.socket.on('data', (c: Buffer) => (received.n += c.length));
    await roundTrip(t.socket, received, 10);
    clock += LIVE_REPORT_INTERVAL_MS - 1;
    await agent.flush();
    expect(agent.observations().filter((o) => o.mode === 'tunnel')).toHaveLength(0);
    t.socket.end();
    await waitFor(() => agent!.app.status().active_tunnels === 0);
    await agent.flush();
    const records = agent.observations().filter((o) => o.mode === 'tunnel');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ bytesUp: 10, bytesDown: 10, count: 1, durationMs: LIVE_REPORT_INTERVAL_MS - 1 });
  });
});
