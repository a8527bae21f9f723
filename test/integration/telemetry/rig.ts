/**
 * Shared pieces of the telemetry tests: a loopback TCP upstream that plays an
 * AWS endpoint (the agent maps `*.amazonaws.com` to it), a tunnel runner that
 * proves each tunnel carried bytes both ways, agent config for shipping, and
 * small readers for metrics, NDJSON sinks and records.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectTunnel } from '../../helpers/raw.js';

/** A TCP server that answers `echo:<what it read>` once the client half-closes. */
export interface EchoUpstream {
  port: number;
  connections: () => number;
  close(): Promise<void>;
}

export async function startEchoUpstream(): Promise<EchoUpstream> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('end', () => s.end(`echo:${got}`));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Hosts the agent classifies as AWS endpoints, each a distinct aggregation key. */
export function awsHosts(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}.s3.us-east-1.amazonaws.com`);
}

/** One CONNECT tunnel through the agent: sends `payload`, half-closes, resolves with what came back. */
export async function tunnelOnce(proxyPort: number, host: string, payload = 'ping', timeoutMs = 5_000): Promise<string> {
  const t = await connectTunnel(proxyPort, `${host}:443`, { timeoutMs });
  if (t.status !== 200) {
    t.socket.destroy();
    throw new Error(`CONNECT ${host} answered ${t.status}`);
  }
  return new Promise<string>((resolve, reject) => {
    let text = t.rest.toString('latin1');
    const timer = setTimeout(() => {
      t.socket.destroy();
      reject(new Error(`tunnel to ${host} did not finish in ${timeoutMs} ms`));
    }, timeoutMs);
    t.socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    t.socket.on('error', () => undefined);
    t.socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    t.socket.end(payload);
  });
}

/** Runs one tunnel per host, `concurrency` at a time; every one must echo its payload. */
export async function runTunnels(proxyPort: number, hosts: readonly string[], concurrency = 10): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < hosts.length) {
      const i = next++;
      const host = hosts[i]!;
      const payload = `ping-${i}`;
      const answer = await tunnelOnce(proxyPort, host, payload);
      if (answer !== `echo:${payload}`) throw new Error(`tunnel to ${host} answered ${JSON.stringify(answer)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, hosts.length) }, worker));
}

export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface TempDir {
  path: string;
  remove(): Promise<void>;
}

export async function tempDir(prefix: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Writes an HMAC secret file the way operators are told to: mode 0600, at least 16 bytes. */
export async function writeSecretFile(path: string, secret: string): Promise<void> {
  await writeFile(path, `${secret}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** Raw agent config (YAML-shaped) for telemetry tests: AWS hosts mapped to the echo upstream, short intervals. */
export function shippingConfig(o: { upstreamPort: number; detectorUrl: string | null; secretFile: string | null; spoolDir: string; file: string; telemetry?: Record<string, unknown> }): Record<string, unknown> {
  return {
    proxy: { allow_destination_cidrs: ['127.0.0.1/32'] },
    upstream: { resolve: { '*.amazonaws.com': `127.0.0.1:${o.upstreamPort}` } },
    telemetry: {
      detector_url: o.detectorUrl,
      secret_file: o.secretFile,
      spool_dir: o.spoolDir,
      file: o.file,
      flush_interval: '200ms',
      heartbeat_interval: '500ms',
      ...o.telemetry,
    },
  };
}

/** GET /metrics on the admin listener. */
export function fetchMetrics(adminPort: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: adminPort, path: '/metrics' }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`/metrics answered ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/** The value of one sample in Prometheus text, or undefined if absent. `labels` must match exactly. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '')
      .split(',')
      .filter(Boolean)
      .sort()
      .join(',');
    if (have === want) return Number(m[3]);
  }
  return undefined;
}

/** Parses an NDJSON sink file; a torn last line (no newline) is ignored. */
export async function readNdjson(path: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  lines.pop(); // "" after the last newline, or a torn line
  return lines.filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** JSON with object keys sorted at every depth: equal records give equal strings. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** Multiset difference a − b of canonical strings. */
export function missingFrom(a: readonly string[], b: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const s of b) left.set(s, (left.get(s) ?? 0) + 1);
  const out: string[] = [];
  for (const s of a) {
    const n = left.get(s) ?? 0;
    if (n > 0) left.set(s, n - 1);
    else out.push(s);
  }
  return out;
}

/** Sum of `count` over observation records. */
export function observedCount(records: readonly Record<string, unknown>[]): number {
  return records.filter((r) => r.type === 'observation').reduce((n, r) => n + (r.count as number), 0);
}
