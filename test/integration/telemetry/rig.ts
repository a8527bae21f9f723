/**
 * Shared pieces of the telemetry tests: a loopback TCP upstream that plays an
 * AWS endpoint (the agent maps `*.amazonaws.com` to it), a tunnel runner that
 * proves each tunnel carried bytes both ways, agent config for shipping, the
 * per-file rig (upstream, temp dir, secret, agent and receiver cleanup), and
 * small readers for metrics, NDJSON sinks and records.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { connectTunnel } from '../../helpers/raw.js';
import { startTelemetryReceiver, type ReceiverOptions, type TelemetryReceiver } from '../../helpers/telemetry-receiver.js';

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
export function shippingConfig(o: {
  upstreamPort: number;
  detectorUrl: string | null;
  secretFile: string | null;
  spoolDir: string;
  file: string;
  telemetry?: Record<string, unknown>;
}): Record<string, unknown> {
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

/** Waits until every tunnel through the agent has closed, then flushes its telemetry. */
export async function flushWhenIdle(agent: TestAgent): Promise<void> {
  await waitFor(() => agent.app.status().active_tunnels === 0, 'tunnels closed');
  await agent.flush();
}

/** How `TelemetryRig.config` / `startAgent` differ from the defaults. */
export interface RigAgentOptions {
  /** Default: the URL of the receiver the rig started for this test. */
  detectorUrl?: string | null;
  /** Name of a file in the temp dir; default `secret`; null for none. */
  secretFile?: string | null;
  /** Default: `spool-<name>` in the temp dir. */
  spoolDir?: string;
  /** NDJSON sink; default `<name>.ndjson` in the temp dir. */
  file?: string;
  telemetry?: Record<string, unknown>;
  /** Top-level config sections that replace the generated ones. */
  override?: Record<string, unknown>;
}

export interface TelemetryRig {
  /** Started in beforeAll, closed in afterAll. */
  readonly upstream: EchoUpstream;
  /** Made in beforeAll (holding the HMAC secret file `secret`), removed in afterAll. */
  readonly dir: TempDir;
  /** The running test's agent and receiver: stopped and cleared after each test. */
  agent: TestAgent | null;
  receiver: TelemetryReceiver | null;
  /** A path in the temp dir. */
  path(name: string): string;
  /** Shipping config for an agent named `name` (its spool and sink named after it). */
  config(name: string, o?: RigAgentOptions): Record<string, unknown>;
  /** Starts a receiver that knows the rig's secret; it becomes `receiver`. */
  startReceiver(o?: Omit<ReceiverOptions, 'secret'>): Promise<TelemetryReceiver>;
  /** Starts an agent on `config(name, o)`; it becomes `agent`. */
  startAgent(name: string, o?: RigAgentOptions): Promise<TestAgent>;
}

/**
 * Registers the beforeAll/afterAll/afterEach hooks every telemetry test file
 * needs and returns the rig they fill: an echo upstream, a temp dir
 * `ew-telemetry-<name>-…` with the secret file, and after each test the agent
 * and receiver stopped — the agent first unless `stopReceiverFirst` (then
 * hung requests fail at once, so the agent's stop does not wait on them).
 */
export function useTelemetryRig(name: string, secret: string, opts: { stopReceiverFirst?: boolean } = {}): TelemetryRig {
  let upstream: EchoUpstream | undefined;
  let dir: TempDir | undefined;
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not set up yet (beforeAll)`);
    return value;
  };
  const rig: TelemetryRig = {
    get upstream() {
      return ready(upstream, 'the echo upstream');
    },
    get dir() {
      return ready(dir, 'the temp dir');
    },
    agent: null,
    receiver: null,
    path: (file) => join(rig.dir.path, file),
    config: (agentName, o = {}) => {
      const detectorUrl = o.detectorUrl !== undefined ? o.detectorUrl : ready(rig.receiver ?? undefined, 'a receiver').url;
      const secretFile = o.secretFile === undefined ? 'secret' : o.secretFile;
      return {
        ...shippingConfig({
          upstreamPort: rig.upstream.port,
          detectorUrl,
          secretFile: secretFile === null ? null : rig.path(secretFile),
          spoolDir: o.spoolDir ?? rig.path(`spool-${agentName}`),
          file: o.file ?? rig.path(`${agentName}.ndjson`),
          telemetry: o.telemetry,
        }),
        ...o.override,
      };
    },
    startReceiver: async (o = {}) => (rig.receiver = await startTelemetryReceiver({ secret: Buffer.from(secret), ...o })),
    startAgent: async (agentName, o) => (rig.agent = await startAgent(rig.config(agentName, o))),
  };

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    dir = await tempDir(`ew-telemetry-${name}-`);
    await writeSecretFile(join(dir.path, 'secret'), secret);
  });

  afterAll(async () => {
    await upstream?.close();
    await dir?.remove();
  });

  afterEach(async () => {
    const { agent, receiver } = rig;
    if (opts.stopReceiverFirst) {
      await receiver?.stop();
      await agent?.stop();
    } else {
      await agent?.stop();
      await receiver?.stop();
    }
    rig.agent = null;
    rig.receiver = null;
  });

  return rig;
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
    const have = (m[2] ?? '').split(',').filter(Boolean).sort().join(',');
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
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
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
