/**
 * Runs a whole agent in-process on loopback (port 0) with a temp state dir,
 * a parsed-log sink, and an injectable dialer that records every lookup and
 * connection — so a test can prove a denied destination was never dialed.
 */
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../common/config/load.js';
import { agentConfigSchema, type AgentConfig } from '../../agent/config/schema.js';
import { AgentApp } from '../../agent/app.js';
import { systemDialDeps, type DialDeps } from '../../agent/proxy/dialer.js';
import { logSink, type LogSink } from './log-sink.js';

export interface RecordingDial extends DialDeps {
  lookups: string[];
  connects: { host: string; port: number }[];
  /** Answers for names, instead of DNS. */
  answers: Map<string, { address: string; family: number }[]>;
}

export function recordingDial(base: DialDeps = systemDialDeps): RecordingDial {
  const d: RecordingDial = {
    lookups: [],
    connects: [],
    answers: new Map(),
    lookup: (host) => {
      d.lookups.push(host);
      const a = d.answers.get(host);
      if (a) return Promise.resolve(a);
      return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }));
    },
    connect: (opts) => {
      d.connects.push(opts);
      return base.connect(opts);
    },
  };
  return d;
}

export interface TestAgent {
  app: AgentApp;
  config: AgentConfig;
  proxyPort: number;
  adminPort: number;
  /** The transparent listener's port; null without a `transparent` section. */
  transparentPort: number | null;
  dir: string;
  logs: LogSink;
  dial: RecordingDial;
  observations(): Record<string, unknown>[];
  flush(): Promise<void>;
  stop(drainMs?: number): Promise<void>;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/**
 * EW_TEST_PROXY_WORKERS=2 runs every agent the tests start with that many proxy workers (the
 * suite's check that workers change nothing a client or the detector can see); a test that sets
 * proxy.workers itself keeps its own value.
 */
export function workersFromEnv(): { workers?: number | 'auto' } {
  const v = process.env.EW_TEST_PROXY_WORKERS;
  if (!v) return {};
  return { workers: v === 'auto' ? 'auto' : Number(v) };
}

/**
 * EW_TEST_TUNNEL_RELAY=js (or native) runs every agent the tests start with that tunnel relay
 * (proxy.tunnel_relay; unset: the default, native where the addon is built); a test that sets
 * proxy.tunnel_relay itself keeps its own value.
 */
export function tunnelRelayFromEnv(): { tunnel_relay?: string } {
  const v = process.env.EW_TEST_TUNNEL_RELAY;
  return v ? { tunnel_relay: v } : {};
}

/** Raw (snake_case, YAML-shaped) config overrides. */
export async function startAgent(
  raw: Record<string, unknown> = {},
  opts: { dial?: RecordingDial; logLevel?: 'info' | 'debug'; now?: () => number } = {},
): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'ew-agent-'));
  const base = {
    gateway: { id: 'gw-test', egress_cidrs: ['203.0.113.0/28'] },
    networks: [{ name: 'lab', cidrs: ['127.0.0.0/8'] }],
    proxy: { listen: '127.0.0.1:0', connect_timeout: '2s', drain_timeout: '1s', ...workersFromEnv(), ...tunnelRelayFromEnv() },
    telemetry: { file: join(dir, 'observations.ndjson'), spool_dir: join(dir, 'spool'), flush_interval: '1h', heartbeat_interval: '1h' },
    admin: { listen: '127.0.0.1:0' },
  };
  const parsed = validateConfig(merge(base, raw), agentConfigSchema);
  if (!parsed.ok) throw new Error(`test config invalid: ${JSON.stringify(parsed.problems)}`);
  const logs = logSink(opts.logLevel ?? 'info');
  const dial = opts.dial ?? recordingDial();
  const app = new AgentApp(parsed.value, {
    logger: logs.logger,
    version: '0.0.0-test',
    nodeVersion: process.versions.node,
    dial,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const addrs = await app.start();
  const obsFile = join(dir, 'observations.ndjson');
  let stopped = false;
  return {
    app,
    config: parsed.value,
    proxyPort: addrs.proxy.port,
    adminPort: addrs.admin.port,
    transparentPort: addrs.transparent?.port ?? null,
    dir,
    logs,
    dial,
    observations: () =>
      existsSync(obsFile)
        ? readFileSync(obsFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .filter((r) => r.type === 'observation')
        : [],
    flush: () => app.flushTelemetry(),
    stop: async (drainMs = 500) => {
      if (stopped) return;
      stopped = true;
      await app.stop(drainMs);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
