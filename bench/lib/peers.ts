/**
 * The systems under test, each started as its own process on loopback with
 * a config generated into the run's temp folder:
 *
 *   direct      no proxy: the client talks TLS to the fake server
 *   ew-tunnel   egress-witness agent, CONNECT tunnels only
 *   ew-inspect  egress-witness agent, TLS inspection of *.amazonaws.com
 *   squid       Squid, CONNECT                     (bench/peers/squid.conf.tmpl)
 *   squid-bump  Squid ssl-bump with its own CA     (bench/peers/squid-bump.conf.tmpl)
 *   tinyproxy   tinyproxy, CONNECT                 (bench/peers/tinyproxy.conf.tmpl)
 *
 * A peer whose program is not installed is skipped with its reason, never
 * an error. Name mapping: the agent remaps names with `upstream.resolve`,
 * Squid with `hosts_file`; tinyproxy has neither, so its client CONNECTs to
 * 127.0.0.1:<port> and keeps the AWS name for SNI and Host.
 */
import { readFileSync, writeFileSync, mkdirSync, chmodSync, copyFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, type ChildProcess } from 'node:child_process';
import YAML from 'yaml';
import type { TargetSpec } from '../load/dial.js';
import type { PlainTarget } from '../load/jobs.js';
import { HOLD_HOST, PLAIN_HOST, STS_HOST } from '../load/requests.js';
import type { Pki } from './pki.js';
import type { FakeAws } from './servers.js';
import { freePort, hardNofileLimit, isExecutable, spawnLogged, stopChild, waitForPort, sleep, run } from './proc.js';

export type PeerName = 'direct' | 'ew-tunnel' | 'ew-inspect' | 'squid' | 'squid-bump' | 'tinyproxy';
export type PeerMode = 'direct' | 'tunnel' | 'inspect';

export const PEERS: readonly { name: PeerName; label: string; mode: PeerMode }[] = [
  { name: 'direct', label: 'direct (no proxy)', mode: 'direct' },
  { name: 'ew-tunnel', label: 'egress-witness tunnel', mode: 'tunnel' },
  { name: 'ew-inspect', label: 'egress-witness inspect', mode: 'inspect' },
  { name: 'squid', label: 'Squid CONNECT', mode: 'tunnel' },
  { name: 'squid-bump', label: 'Squid ssl-bump', mode: 'inspect' },
  { name: 'tinyproxy', label: 'tinyproxy', mode: 'tunnel' },
];

export const SQUID = '/usr/sbin/squid';
export const CERTGEN = '/usr/lib/squid/security_file_certgen';
export const TINYPROXY = '/usr/bin/tinyproxy';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const cliMain = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

export interface RunningPeer {
  readonly name: PeerName;
  /** The process whose RSS and CPU are the proxy's; null for direct. */
  readonly pid: number | null;
  readonly proxy: { host: string; port: number } | null;
  /** Where the keep-alive, new-connection and bulk traffic goes. */
  readonly target: TargetSpec;
  /**
   * Agents started with `transparent: true`: the same traffic as a redirected client sends it, TLS
   * straight to the transparent listener with the AWS name as SNI (no CONNECT); null otherwise.
   */
  readonly redirectTarget: TargetSpec | null;
  /** Plain HTTP to the fake server's plain port: absolute-form through the proxy, or origin-form direct; null where not measured. */
  readonly plainTarget: PlainTarget | null;
  /** How progress lines name it (default: `name`). */
  readonly label?: string;
  /** The Host header the client sends. */
  readonly hostHeader: string;
  /** CONNECT authority that lands on the fake server's hold port (idle tunnels); null where not measured. */
  readonly holdAuthority: string | null;
  /** The agent's admin port (metrics), when the peer is an agent. */
  readonly adminPort: number | null;
  /** Files worth reading when something fails. */
  readonly logFile: string | null;
  /** Null while the process runs; how it ended otherwise. */
  exited(): string | null;
  stop(): Promise<void>;
  /** Agents only: the config file, and a fresh process on the same config, ports and spool once this one has ended. */
  readonly configFile?: string;
  restart?(): Promise<void>;
}

/** The telemetry HMAC secret every bench agent signs with (a detector the bench starts is given the same). */
export const BENCH_TELEMETRY_SECRET = 'bench-secret-'.padEnd(40, 'x');

function exitOf(child: ChildProcess): () => string | null {
  return () => (child.exitCode !== null ? `exit code ${child.exitCode}` : child.signalCode !== null ? `signal ${child.signalCode}` : null);
}

export interface AgentOptions {
  inspect: boolean;
  /** Ship telemetry to this URL (a secret file is made for it). */
  detectorUrl?: string | null;
  flushInterval?: string;
  logLevel: string;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Hosts tunnelled although inspect is on (soak mixes both). */
  passthrough?: string[];
  observeAll?: boolean;
  /** upstream.keep_alive_timeout (default here 60s, like Squid's server_idle_pconn_timeout). */
  upstreamKeepAlive?: string;
  /** A transparent listener beside the explicit one (loopback: no redirect, so no original destination). */
  transparent?: boolean;
  /** proxy.workers (default: the agent's default, 1). */
  workers?: number;
  /** CPUs the agent (and its workers) may run on, as `taskset -c` takes them, e.g. "0" or "0-6". */
  cpus?: string;
}

export interface PeerEnv {
  tmp: string;
  pki: Pki;
  fake: FakeAws;
  agentLogLevel: string;
  profileDir: string | null;
}

/** Why a peer cannot run here, or null when it can. */
export function unavailableReason(name: PeerName): string | null {
  if (name === 'squid' || name === 'squid-bump') {
    if (!isExecutable(SQUID)) return `${SQUID} not installed (bench/install-peers.sh installs squid-openssl)`;
    if (name === 'squid-bump') {
      if (!isExecutable(CERTGEN)) return `${CERTGEN} not installed (squid-openssl provides it)`;
      const v = (() => {
        try {
          return execFileSync(SQUID, ['-v'], { encoding: 'utf8' });
        } catch {
          return '';
        }
      })();
      if (!/--with-openssl|--enable-ssl-crtd/.test(v)) return 'this squid has no ssl-bump (install squid-openssl)';
    }
  }
  if (name === 'tinyproxy' && !isExecutable(TINYPROXY)) return `${TINYPROXY} not installed (bench/install-peers.sh installs it)`;
  return null;
}

function render(template: string, vars: Record<string, string | number>): string {
  const text = readFileSync(join(repoRoot, 'bench', 'peers', template), 'utf8');
  return text.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    const v = vars[k];
    if (v === undefined) throw new Error(`${template}: no value for {{${k}}}`);
    return String(v);
  });
}

let instance = 0;

/** A fresh folder the `proxy` user (Squid drops to it) can reach. */
function peerDir(env: PeerEnv, name: string): string {
  const dir = join(env.tmp, `${name}-${++instance}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

/** Host and port of the plain-HTTP name, as the absolute-form URL and Host header carry them. */
function plainAuthority(env: PeerEnv): string {
  return `${PLAIN_HOST}:${env.fake.httpPort}`;
}

/** Absolute-form plain HTTP through `proxy` to the fake server's plain port (each proxy maps PLAIN_HOST there). */
function plainVia(env: PeerEnv, proxy: { host: string; port: number }): PlainTarget {
  return { connect: proxy, url: `http://${plainAuthority(env)}/`, hostHeader: plainAuthority(env) };
}

function directPeer(env: PeerEnv): RunningPeer {
  return {
    name: 'direct',
    pid: null,
    proxy: null,
    target: {
      proxy: null,
      authority: `${STS_HOST}:443`,
      origin: { host: '127.0.0.1', port: env.fake.httpsPort },
      servername: STS_HOST,
      caPem: env.pki.fakeCa.certPem,
    },
    redirectTarget: null,
    plainTarget: { connect: { host: '127.0.0.1', port: env.fake.httpPort }, url: '/', hostHeader: plainAuthority(env) },
    hostHeader: STS_HOST,
    holdAuthority: null,
    adminPort: null,
    logFile: null,
    exited: () => null,
    stop: () => Promise.resolve(),
  };
}

async function waitReady(child: ChildProcess, port: number, logFile: string, timeoutMs = 20_000): Promise<void> {
  try {
    await waitForPort(port, timeoutMs, () => child.exitCode === null && child.signalCode === null);
  } catch (err) {
    let tail = '';
    try {
      tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      // no log
    }
    await stopChild(child, 1_000);
    throw new Error(`${(err as Error).message}\n--- ${logFile} (last lines) ---\n${tail}`, { cause: err });
  }
}

export async function startAgent(env: PeerEnv, name: 'ew-tunnel' | 'ew-inspect', opts: AgentOptions): Promise<RunningPeer> {
  const dir = peerDir(env, name);
  const port = await freePort();
  const adminPort = await freePort();
  const transparentPort = opts.transparent ? await freePort() : null;
  const telemetry: Record<string, unknown> = {
    spool_dir: join(dir, 'spool'),
    flush_interval: opts.flushInterval ?? '2s',
    heartbeat_interval: '30s',
    observe_all: opts.observeAll ?? false,
  };
  if (opts.detectorUrl) {
    const secretFile = join(dir, 'telemetry.secret');
    writeFileSync(secretFile, `${BENCH_TELEMETRY_SECRET}\n`, { mode: 0o600 });
    telemetry.detector_url = opts.detectorUrl;
    telemetry.secret_file = secretFile;
  }
  const config = {
    gateway: { id: 'gw-bench', egress_cidrs: ['203.0.113.0/28'] },
    networks: [{ name: 'loopback', cidrs: ['127.0.0.0/8'] }],
    proxy: {
      listen: `127.0.0.1:${port}`,
      allowed_ports: [443, env.fake.httpsPort, env.fake.holdPort, env.fake.httpPort],
      allow_destination_cidrs: ['127.0.0.1/32'],
      max_tunnels: 20_000,
      connect_timeout: '10s',
      idle_timeout: '15m',
      drain_timeout: '1s',
      ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
      // BENCH_TUNNEL_RELAY=js or native: the tunnel relay to measure (unset: the agent's default, auto).
      ...(process.env.BENCH_TUNNEL_RELAY ? { tunnel_relay: process.env.BENCH_TUNNEL_RELAY } : {}),
    },
    ...(opts.inspect
      ? { inspect: { ca_cert: env.pki.agentCa.certFile, ca_key: env.pki.agentCa.keyFile, passthrough: opts.passthrough ?? [] } }
      : {}),
    ...(transparentPort !== null ? { transparent: { listen: `127.0.0.1:${transparentPort}`, ports: [443] } } : {}),
    upstream: {
      ca_file: env.pki.fakeCa.certFile,
      resolve: {
        '*.amazonaws.com': `127.0.0.1:${env.fake.httpsPort}`,
        [HOLD_HOST]: `127.0.0.1:${env.fake.holdPort}`,
        [PLAIN_HOST]: `127.0.0.1:${env.fake.httpPort}`,
      },
      // Squid keeps idle server connections 60 s (server_idle_pconn_timeout); the agent's default is 4 s,
      // which would make every interleaved run start with a cold upstream pool (see bench/README.md).
      keep_alive_timeout: opts.upstreamKeepAlive ?? '60s',
    },
    telemetry,
    admin: { listen: `127.0.0.1:${adminPort}` },
    log: { level: opts.logLevel },
  };
  const configFile = join(dir, 'agent.yaml');
  writeFileSync(configFile, `# generated by bench/lib/peers.ts\n${YAML.stringify(config)}`);
  const logFile = join(dir, 'agent.log');
  // As the installed launcher starts it (systemd/install.sh).
  // BENCH_AGENT_NODE_FLAGS (space-separated) adds node flags to every agent, e.g. `--trace-gc` or a heap flag to try.
  const extra = (process.env.BENCH_AGENT_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
  const flags = ['--no-memory-reducer', ...extra, ...(opts.nodeFlags ?? [])];
  if (env.profileDir) flags.push('--cpu-prof', `--cpu-prof-dir=${env.profileDir}`, `--cpu-prof-name=${name}-${instance}.cpuprofile`);
  const launch = async (): Promise<ChildProcess> => {
    const argv = [...flags, cliMain, 'agent', '--config', configFile];
    // taskset execs node in its own process: the pid (and its CPU counters) stay the agent's.
    const c = opts.cpus
      ? spawnLogged('taskset', ['-c', opts.cpus, process.execPath, ...argv], { logFile, cwd: repoRoot })
      : spawnLogged(process.execPath, argv, { logFile, cwd: repoRoot });
    await waitReady(c, port, logFile);
    await waitHttpOk(`http://127.0.0.1:${adminPort}/readyz`, 10_000);
    return c;
  };
  let child = await launch();
  const proxy = { host: '127.0.0.1', port };
  return {
    name,
    get pid() {
      return child.pid ?? null;
    },
    proxy,
    target: {
      proxy,
      authority: `${STS_HOST}:443`,
      origin: { host: '127.0.0.1', port: env.fake.httpsPort },
      servername: STS_HOST,
      caPem: opts.inspect ? env.pki.agentCa.certPem : env.pki.fakeCa.certPem,
    },
    redirectTarget:
      transparentPort === null
        ? null
        : {
            proxy: null,
            authority: `${STS_HOST}:443`,
            origin: { host: '127.0.0.1', port: transparentPort },
            servername: STS_HOST,
            caPem: opts.inspect ? env.pki.agentCa.certPem : env.pki.fakeCa.certPem,
          },
    plainTarget: plainVia(env, proxy),
    hostHeader: STS_HOST,
    holdAuthority: opts.inspect ? null : `${HOLD_HOST}:443`,
    adminPort,
    logFile,
    configFile,
    exited: () => exitOf(child)(),
    stop: () => stopChild(child, 8_000),
    async restart() {
      if (exitOf(child)() === null) throw new Error(`agent pid ${child.pid} is still running: stop or kill it first`);
      child = await launch();
    },
  };
}

async function waitHttpOk(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function startSquid(env: PeerEnv, bump: boolean): Promise<RunningPeer> {
  const name = bump ? 'squid-bump' : 'squid';
  const dir = peerDir(env, name);
  const port = await freePort();
  writeFileSync(join(dir, 'hosts'), `127.0.0.1 ${STS_HOST} ${HOLD_HOST} ${PLAIN_HOST}\n`);
  if (bump) {
    copyFileSync(env.pki.squidCa.certFile, join(dir, 'squid-ca.pem'));
    copyFileSync(env.pki.squidCa.keyFile, join(dir, 'squid-ca-key.pem'));
    copyFileSync(env.pki.fakeCa.certFile, join(dir, 'fake-ca.pem'));
    run(CERTGEN, ['-c', '-s', join(dir, 'ssl_db'), '-M', '4MB']);
  }
  const maxFds = hardNofileLimit();
  writeFileSync(
    join(dir, 'squid.conf'),
    render(bump ? 'squid-bump.conf.tmpl' : 'squid.conf.tmpl', { DIR: dir, PORT: port, MAX_FDS: maxFds }),
  );
  // Squid drops to the proxy user: it must own its folder (logs, pid, certificate database).
  run('chown', ['-R', 'proxy:proxy', dir]);
  const logFile = join(dir, 'squid.stdout.log');
  const child = spawnLogged(SQUID, ['-N', '-f', join(dir, 'squid.conf')], { logFile });
  await waitReady(child, port, join(dir, 'cache.log'), 30_000);
  const proxy = { host: '127.0.0.1', port };
  return {
    name,
    pid: child.pid ?? null,
    proxy,
    target: {
      proxy,
      authority: `${STS_HOST}:${env.fake.httpsPort}`,
      origin: { host: '127.0.0.1', port: env.fake.httpsPort },
      servername: STS_HOST,
      caPem: bump ? env.pki.squidCa.certPem : env.pki.fakeCa.certPem,
    },
    redirectTarget: null,
    plainTarget: bump ? null : plainVia(env, proxy),
    // A bumped request goes where its Host header says: keep the fake server's port in it.
    hostHeader: `${STS_HOST}:${env.fake.httpsPort}`,
    holdAuthority: bump ? null : `${HOLD_HOST}:${env.fake.holdPort}`,
    adminPort: null,
    logFile: join(dir, 'cache.log'),
    exited: exitOf(child),
    stop: () => stopChild(child, 8_000, 'SIGINT'),
  };
}

async function startTinyproxy(env: PeerEnv): Promise<RunningPeer> {
  const dir = peerDir(env, 'tinyproxy');
  const port = await freePort();
  writeFileSync(join(dir, 'tinyproxy.conf'), render('tinyproxy.conf.tmpl', { DIR: dir, PORT: port, MAX_CLIENTS: 12_000 }));
  writeFileSync(join(dir, 'tinyproxy.log'), '');
  try {
    chownSync(dir, 0, 0);
  } catch {
    // not root: tinyproxy runs as us
  }
  const logFile = join(dir, 'tinyproxy.stdout.log');
  const child = spawnLogged(TINYPROXY, ['-d', '-c', join(dir, 'tinyproxy.conf')], { logFile });
  await waitReady(child, port, logFile);
  const proxy = { host: '127.0.0.1', port };
  return {
    name: 'tinyproxy',
    pid: child.pid ?? null,
    proxy,
    target: {
      proxy,
      authority: `127.0.0.1:${env.fake.httpsPort}`,
      origin: { host: '127.0.0.1', port: env.fake.httpsPort },
      servername: STS_HOST,
      caPem: env.pki.fakeCa.certPem,
    },
    redirectTarget: null,
    plainTarget: null,
    hostHeader: STS_HOST,
    holdAuthority: `127.0.0.1:${env.fake.holdPort}`,
    adminPort: null,
    logFile: join(dir, 'tinyproxy.log'),
    exited: exitOf(child),
    stop: () => stopChild(child, 5_000),
  };
}

/** Starts `name` with the bench's standard settings. */
export function startPeer(env: PeerEnv, name: PeerName, agent: Partial<AgentOptions> = {}): Promise<RunningPeer> {
  switch (name) {
    case 'direct':
      return Promise.resolve(directPeer(env));
    case 'ew-tunnel':
      return startAgent(env, name, { inspect: false, logLevel: env.agentLogLevel, ...agent });
    case 'ew-inspect':
      return startAgent(env, name, { inspect: true, logLevel: env.agentLogLevel, ...agent });
    case 'squid':
      return startSquid(env, false);
    case 'squid-bump':
      return startSquid(env, true);
    case 'tinyproxy':
      return startTinyproxy(env);
  }
}

/**
 * Peers shared by the scenarios: started on first use, kept running, all
 * stopped at the end. Scenarios that need a pristine process (RSS) use
 * `startPeer` directly and stop it themselves.
 */
export class PeerPool {
  private readonly running = new Map<PeerName, Promise<RunningPeer>>();
  private readonly failed = new Map<PeerName, string>();
  /** Peers that died under the bench (something outside it killed them) and were started again. */
  readonly restarts: string[] = [];
  private readonly shared = new WeakSet<RunningPeer>();

  constructor(
    private readonly env: PeerEnv,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** The running peer (restarted if its process died), or a reason it cannot run (not installed, failed to start). */
  async get(name: PeerName): Promise<RunningPeer | { skipped: string }> {
    const why = unavailableReason(name) ?? this.failed.get(name);
    if (why) return { skipped: why };
    const current = this.running.get(name);
    if (current) {
      const peer = await current.catch(() => null);
      const ended = peer?.exited() ?? null;
      if (peer && ended) {
        const line = `${new Date().toISOString()} ${name} (pid ${peer.pid}) had ended (${ended}) without the bench stopping it; started again`;
        this.restarts.push(line);
        this.log(`  WARNING: ${line}`);
        this.running.delete(name);
      }
    }
    let p = this.running.get(name);
    if (!p) {
      p = startPeer(this.env, name);
      this.running.set(name, p);
    }
    try {
      const peer = await p;
      this.shared.add(peer);
      return peer;
    } catch (err) {
      this.running.delete(name);
      const reason = `failed to start: ${(err as Error).message.split('\n')[0]}`;
      this.failed.set(name, reason);
      return { skipped: reason };
    }
  }

  /** Whether `peer` is one of this pool's (a scenario's own fresh peers are not). */
  owns(peer: RunningPeer): boolean {
    return this.shared.has(peer);
  }

  async stopAll(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.allSettled(all.map(async (p) => (await p).stop()));
  }
}
