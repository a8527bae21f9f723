/**
 * Network namespaces for tests that need a routed path through a gateway
 * (transparent interception). Root only; every address lives inside the
 * namespaces created here, which are removed afterwards, on failure too.
 *
 *   client ─────────── veth ─────────── gateway ─────────── veth ─────────── aws
 *   10.201.0.2/24                  10.201.0.1 │ 198.51.100.1             198.51.100.10/24
 *   fd00:201::2/64                fd00:201::1 │ 2001:db8:100::1        2001:db8:100::10/64
 *                                    ip_forward=1 (IPv4 and IPv6)
 *
 * Each namespace has its own /etc/netns/<ns>/hosts (names → the aws host, so
 * sts.us-east-1.amazonaws.com resolves to 198.51.100.10 and 2001:db8:100::10)
 * and a resolv.conf pointing at its own loopback, so nothing is ever looked up
 * outside. Namespace names carry the test process id; namespaces left by a
 * process that died are removed by the next topology.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface NsHost {
  readonly ns: string;
  /** The host's address on its link (for the gateway: the client side). */
  readonly v4: string;
  readonly v6: string;
  /** Runs a command in the namespace and waits for it; never throws on a non-zero exit. */
  run(cmd: string, args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Starts a long-running command in the namespace; it is killed by `destroy()`. */
  spawn(cmd: string, args: readonly string[], opts?: { env?: NodeJS.ProcessEnv }): ChildProcess;
}

export interface Topology {
  readonly client: NsHost;
  /** `upstreamV4` / `upstreamV6`: the gateway's side towards the aws host. */
  readonly gateway: NsHost & { readonly upstreamV4: string; readonly upstreamV6: string };
  readonly aws: NsHost;
  /** The client network, as agent config `networks[].cidrs`. */
  readonly clientCidrs: readonly string[];
  /** The aws host's network, as ranges for a test ip-ranges.json. */
  readonly awsCidrs: readonly string[];
  destroy(): Promise<void>;
}

export const ADDRESSES = {
  client: { v4: '10.201.0.2', v6: 'fd00:201::2' },
  gatewayClientSide: { v4: '10.201.0.1', v6: 'fd00:201::1' },
  gatewayUpstreamSide: { v4: '198.51.100.1', v6: '2001:db8:100::1' },
  aws: { v4: '198.51.100.10', v6: '2001:db8:100::10' },
} as const;

const PREFIX = 'ewt-';

function which(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why namespace tests cannot run here, or null when they can. `tools` are the
 * commands the test needs besides `ip` (e.g. nft). Under CI the caller fails
 * instead of skipping (see `netnsGate`).
 */
export function netnsSkipReason(tools: readonly string[] = []): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root';
  for (const t of ['ip', ...tools])
    if (!which(t)) return `the "${t}" command is missing (Debian: ${t === 'ip' ? 'iproute2' : t === 'nft' ? 'nftables' : t})`;
  const probe = `${PREFIX}${process.pid}-probe`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr;
    return `cannot create a network namespace: ${(stderr ? stderr.toString() : (err as Error).message).trim()}`;
  }
  return null;
}

/**
 * The skip decision for a describe block: the reason is printed, so a skip is
 * visible; under CI (where .ci/run installs the tools and runs as root) a
 * missing prerequisite is an error instead.
 */
export function netnsGate(what: string, tools: readonly string[] = []): boolean {
  const reason = netnsSkipReason(tools);
  if (reason === null) return false;
  if (process.env.CI) throw new Error(`${what}: ${reason} (CI must run these tests)`);
  console.warn(`SKIPPED ${what}: ${reason}`);
  return true;
}

function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, [...args], { timeout: opts.timeoutMs ?? 20_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr: err && !stderr ? err.message : stderr });
    });
    // A command that does not read its input closes the pipe: that is not an error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<void> {
  const r = await run(cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function removeNamespace(ns: string): Promise<void> {
  await run('ip', ['netns', 'del', ns]);
  rmSync(join('/etc/netns', ns), { recursive: true, force: true });
}

/** Removes namespaces that an earlier test process left behind when it died. */
async function sweepStale(): Promise<void> {
  const r = await run('ip', ['netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) await removeNamespace(name);
  }
}

let counter = 0;

/**
 * Creates the three hosts. `names` resolve to the aws host in every
 * namespace; `hosts` adds lines per host (e.g. a name for a denied address).
 */
export async function createTopology(
  opts: { names?: readonly string[]; hosts?: Partial<Record<'client' | 'gateway' | 'aws', readonly [string, string][]>> } = {},
): Promise<Topology> {
  await sweepStale();
  const id = `${PREFIX}${process.pid}-${++counter}`;
  const ns = { client: `${id}-client`, gateway: `${id}-gw`, aws: `${id}-aws` };
  const children = new Set<ChildProcess>();
  const created: string[] = [];

  const host = (name: string, v4: string, v6: string): NsHost => ({
    ns: name,
    v4,
    v6,
    run: (cmd, args, o) => run('ip', ['netns', 'exec', name, cmd, ...args], o),
    spawn: (cmd, args, o) => {
      const child = spawn('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: o?.env ?? process.env });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
  });

  const destroy = async (): Promise<void> => {
    await Promise.all(
      [...children].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 3_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    for (const n of created) await removeNamespace(n);
  };

  try {
    const names = opts.names ?? [];
    for (const [role, name] of Object.entries(ns) as ['client' | 'gateway' | 'aws', string][]) {
      await must('ip', ['netns', 'add', name]);
      created.push(name);
      const dir = join('/etc/netns', name);
      mkdirSync(dir, { recursive: true });
      const lines = [
        '127.0.0.1 localhost',
        '::1 localhost',
        ...names.flatMap((n) => [`${ADDRESSES.aws.v4} ${n}`, `${ADDRESSES.aws.v6} ${n}`]),
        ...(opts.hosts?.[role] ?? []).map(([ip, n]) => `${ip} ${n}`),
      ];
      writeFileSync(join(dir, 'hosts'), `${lines.join('\n')}\n`);
      writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
      await must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    }
    // client eth0 <-> gateway eth0; gateway eth1 <-> aws eth0
    await must('ip', ['-n', ns.client, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.gateway]);
    await must('ip', ['-n', ns.gateway, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.aws]);
    const addr = async (n: string, dev: string, v4: string, v6: string) => {
      await must('ip', ['-n', n, 'addr', 'add', `${v4}/24`, 'dev', dev]);
      await must('ip', ['-n', n, '-6', 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad']);
      await must('ip', ['-n', n, 'link', 'set', dev, 'up']);
    };
    await addr(ns.client, 'eth0', ADDRESSES.client.v4, ADDRESSES.client.v6);
    await addr(ns.gateway, 'eth0', ADDRESSES.gatewayClientSide.v4, ADDRESSES.gatewayClientSide.v6);
    await addr(ns.gateway, 'eth1', ADDRESSES.gatewayUpstreamSide.v4, ADDRESSES.gatewayUpstreamSide.v6);
    await addr(ns.aws, 'eth0', ADDRESSES.aws.v4, ADDRESSES.aws.v6);
    for (const [n, via] of [
      [ns.client, ADDRESSES.gatewayClientSide],
      [ns.aws, ADDRESSES.gatewayUpstreamSide],
    ] as const) {
      await must('ip', ['-n', n, 'route', 'add', 'default', 'via', via.v4]);
      await must('ip', ['-n', n, '-6', 'route', 'add', 'default', 'via', via.v6]);
    }
    await must('ip', ['netns', 'exec', ns.gateway, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  } catch (err) {
    await destroy();
    throw err;
  }

  return {
    client: host(ns.client, ADDRESSES.client.v4, ADDRESSES.client.v6),
    gateway: Object.assign(host(ns.gateway, ADDRESSES.gatewayClientSide.v4, ADDRESSES.gatewayClientSide.v6), {
      upstreamV4: ADDRESSES.gatewayUpstreamSide.v4,
      upstreamV6: ADDRESSES.gatewayUpstreamSide.v6,
    }),
    aws: host(ns.aws, ADDRESSES.aws.v4, ADDRESSES.aws.v6),
    clientCidrs: ['10.201.0.0/24', 'fd00:201::/64'],
    awsCidrs: ['198.51.100.0/24', '2001:db8:100::/64'],
    destroy,
  };
}

/** A single bare namespace (loopback only), for commands that need a private netfilter state. */
export async function createNamespace(): Promise<{ ns: string; run: NsHost['run']; destroy(): Promise<void> }> {
  await sweepStale();
  const ns = `${PREFIX}${process.pid}-${++counter}-solo`;
  await must('ip', ['netns', 'add', ns]);
  return {
    ns,
    run: (cmd, args, o) => run('ip', ['netns', 'exec', ns, cmd, ...args], o),
    destroy: () => removeNamespace(ns),
  };
}

/** Waits for a line on a child's stdout that satisfies `match`, or fails with what the child printed. */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    let buffered = '';
    const timer = setTimeout(() => done(new Error(`no matching line within ${timeoutMs} ms; stdout: ${out} stderr: ${err}`)), timeoutMs);
    const onData = (c: Buffer) => {
      out += c.toString();
      buffered += c.toString();
      let i: number;
      while ((i = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        if (match(line)) return done(null, line);
      }
    };
    const onErr = (c: Buffer) => {
      err += c.toString();
    };
    const onExit = (code: number | null) => done(new Error(`exited (${code}) before a matching line; stdout: ${out} stderr: ${err}`));
    const done = (e: Error | null, line?: string) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      if (e) reject(e);
      else resolve(line!);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
