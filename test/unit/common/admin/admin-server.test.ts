import type { AddressInfo } from 'node:net';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, createAdminServer, listen, type Readiness } from '../../../../common/admin/admin-server.js';
import { createRegistry } from '../../../../common/metrics/registry.js';
import { createAgentMetrics, serviceLabel, type AgentMetrics } from '../../../../agent/metrics/metrics.js';
import { promtoolCheckMetrics } from '../metrics/promtool.js';

let server: http.Server;
let base: string;
let metrics: AgentMetrics;
let readiness: Readiness = { ready: true, checks: { proxy_listening: true } };

beforeAll(async () => {
  const registry = createRegistry();
  metrics = createAgentMetrics(registry, { version: '9.8.7', nodeVersion: process.versions.node });
  server = createAdminServer({
    registry,
    readiness: () => readiness,
    routes: { '/status': () => ({ gateway_id: 'gw-test', active_tunnels: 0 }) },
  });
  const addr = await listen(server, '127.0.0.1', 0);
  base = `http://127.0.0.1:${addr.port}`;
});

afterAll(async () => {
  await closeServer(server);
});

describe('admin server', () => {
  it('binds the requested loopback address on a free port', () => {
    const addr = server.address() as AddressInfo;
    expect(addr.address).toBe('127.0.0.1');
    expect(addr.port).toBeGreaterThan(0);
  });

  it('GET /metrics serves the Prometheus text format with the agent metrics', async () => {
    metrics.proxyRequests.inc({ kind: 'connect', outcome: 'ok' });
    metrics.denied.inc({ reason: 'client_not_allowed' }, 2);
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toContain(`egress_witness_build_info{version="9.8.7",node_version="${process.versions.node}"} 1`);
    expect(text).toContain('egress_witness_proxy_requests_total{kind="connect",outcome="ok"} 1');
    expect(text).toContain('egress_witness_denied_total{reason="client_not_allowed"} 2');
    expect(text).toContain('egress_witness_tunnel_bytes_total{direction="up"} 0');
    expect(text).toContain('egress_witness_tunnel_bytes_total{direction="down"} 0');
    expect(text).toContain('egress_witness_tunnels_active 0');
    expect(text).toContain('# TYPE egress_witness_config_last_reload_successful gauge');
    expect(text).toContain('process_cpu_user_seconds_total');
    // The gauges promtool rejects (names ending in _total) are gone.
    expect(text).not.toMatch(/^nodejs_active_(handles|requests|resources)_total/m);
  });

  it('the exposition passes promtool check metrics', async () => {
    metrics.connectDuration.observe(0.02);
    metrics.awsRequests.inc({ service: serviceLabel('sts'), mode: 'tunnel' });
    const text = await (await fetch(`${base}/metrics`)).text();
    const r = await promtoolCheckMetrics(text);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });

  it('promtool does catch a bad exposition (the check above can fail)', async () => {
    const r = await promtoolCheckMetrics('# HELP foo_total x\n# TYPE foo_total gauge\nfoo_total 1\n');
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('non-counter metrics should not have "_total" suffix');
  });

  it('every agent metric name is egress_witness_-prefixed and well formed', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const names = [...text.matchAll(/^# TYPE (egress_witness_\S+) (\w+)$/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(names.length).toBeGreaterThanOrEqual(29);
    for (const [name, type] of names) {
      expect(name).toMatch(/^egress_witness_[a-z0-9_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
    }
  });

  it('GET /healthz is 200 ok', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok\n');
  });

  it('GET /readyz is 200 with the checks when ready', async () => {
    readiness = { ready: true, checks: { proxy_listening: true, config_loaded: true } };
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ ready: true, checks: { proxy_listening: true, config_loaded: true } });
  });

  it('GET /readyz is 503 with the failing check when not ready', async () => {
    readiness = { ready: false, checks: { proxy_listening: false, config_loaded: true } };
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, checks: { proxy_listening: false, config_loaded: true } });
    readiness = { ready: true, checks: {} };
  });

  it('serves extra JSON routes', async () => {
    const res = await fetch(`${base}/status`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ gateway_id: 'gw-test', active_tunnels: 0 });
  });

  it('ignores the query string', async () => {
    expect((await fetch(`${base}/healthz?verbose=1`)).status).toBe(200);
    expect((await fetch(`${base}/metrics?name[]=x`)).status).toBe(200);
  });

  it.each(['/', '/nope', '/metrics/', '/METRICS', '/constructor', '/__proto__', '/toString'])('GET %s is 404', async (path) => {
    const res = await fetch(`${base}${path}`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('not found: try /metrics, /healthz or /readyz\n');
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH'])('%s is 405 with Allow: GET, HEAD', async (method) => {
    const res = await fetch(`${base}/metrics`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
  });

  it('HEAD is allowed', async () => {
    const res = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(res.status).toBe(200);
  });

  it('listen rejects with EADDRINUSE when the port is taken', async () => {
    const other = createAdminServer({ registry: createRegistry(), readiness: () => readiness });
    const port = (server.address() as AddressInfo).port;
    await expect(listen(other, '127.0.0.1', port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await closeServer(other);
  });

  it('closeServer resolves for a server that never listened', async () => {
    await expect(closeServer(http.createServer())).resolves.toBeUndefined();
  });
});

describe('createRegistry', () => {
  it('gives each caller its own registry, so metrics can be created twice', async () => {
    const a = createRegistry();
    const b = createRegistry();
    createAgentMetrics(a, { version: '1', nodeVersion: '20' });
    expect(() => createAgentMetrics(b, { version: '2', nodeVersion: '20' })).not.toThrow();
    expect(await a.metrics()).toContain('egress_witness_build_info{version="1",node_version="20"} 1');
    expect(await b.metrics()).toContain('egress_witness_build_info{version="2",node_version="20"} 1');
    expect(() => createAgentMetrics(a, { version: '1', nodeVersion: '20' })).toThrow(/already been registered/);
  });

  it('maps services to a bounded label set', () => {
    expect(serviceLabel('sts')).toBe('sts');
    expect(serviceLabel('some-new-service')).toBe('other');
    expect(serviceLabel(null)).toBe('none');
    expect(serviceLabel('')).toBe('none');
  });
});
