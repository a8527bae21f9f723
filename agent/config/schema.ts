/**
 * The agent's configuration file: defaults → strict decode (unknown keys are
 * rejected by name) → cross-field validation. Keys are snake_case and form a
 * contract with operators: add keys, never rename them.
 */
import { z } from 'zod';
import { TELEMETRY_PATH } from '../../protocol/telemetry-status.js';
import { parseIp } from '../../common/cidr/ip.js';
import {
  cidr,
  cidrList,
  duration,
  listenAddress,
  positiveDuration,
  logLevel,
  nullablePath,
  port,
  positiveInt,
  required,
  requiredListenAddress,
  show,
  size,
  url,
} from '../../common/config/schema-helpers.js';

const hostPattern = z
  .string()
  .regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i, 'expected a host name or "*.suffix"');

const upstreamTarget = z.string().superRefine((v, ctx) => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(v);
  const ip = m ? (m[1] ?? m[2] ?? '') : '';
  if (!m || parseIp(ip) === null || Number(m[3]) < 1 || Number(m[3]) > 65535) {
    ctx.addIssue({ code: 'custom', message: `${show(v)} is not "ip:port" (use "127.0.0.1:8443" or "[::1]:8443")` });
  }
});

const gateway = z.strictObject({
  id: z
    .string({ error: required('the gateway id, e.g. "gw-dc1"', 'a string') })
    .regex(/^[a-z0-9](?:[a-z0-9-]{0,62})$/, 'expected lower-case letters, digits and "-" (at most 63), e.g. "gw-dc1"'),
  egress_cidrs: z
    .array(cidr, { error: required('the public CIDRs AWS sees from this gateway', 'a list of CIDRs') })
    .min(1, 'at least one egress CIDR is required'),
});

const network = z.strictObject({
  name: z
    .string({ error: required('the network name, e.g. "vpc-prod"', 'a string') })
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'expected letters, digits, ".", "_" or "-"'),
  cidrs: cidrList.min(1, 'at least one CIDR is required'),
});

const proxy = z.strictObject({
  listen: listenAddress.default({ host: '0.0.0.0', port: 3128, text: '0.0.0.0:3128' }),
  allowed_clients: cidrList.default([]),
  allowed_ports: z.array(port).min(1, 'at least one port is required').default([443, 80]),
  allow_destination_cidrs: cidrList.default([]),
  max_tunnels: positiveInt('max_tunnels').default(10_000),
  connect_timeout: positiveDuration.default(10_000),
  idle_timeout: positiveDuration.default(300_000),
  /** Time a client has to send its request headers (slowloris guard). */
  header_timeout: positiveDuration.default(10_000),
  /** Largest request head accepted (request line plus headers). */
  max_header_bytes: size.default(16 * 1024),
  /** How long SIGTERM waits for open tunnels before closing them. */
  drain_timeout: duration.default(30_000),
  /**
   * What carries a tunnel's bytes: "native" (the tunnel-relay addon; the agent does not start
   * without it), "js" (Node sockets), "auto" (native when the addon loaded, else js).
   */
  tunnel_relay: z
    .enum(['auto', 'native', 'js'], { error: (i) => `expected "auto", "native" or "js", got ${show(i.input)}` })
    .default('auto'),
  /**
   * Processes serving the proxy and transparent listeners: a number, or "auto" for one per
   * available CPU. Above 1, a primary process keeps the single telemetry pipeline.
   */
  workers: z
    .union([z.literal('auto'), positiveInt('workers').max(256, 'expected at most 256 workers')], {
      error: (i) => `expected "auto" or a positive number of processes, got ${show(i.input)}`,
    })
    .default(1),
});

/**
 * The transparent listener: connections the kernel redirected to the agent
 * (nftables `redirect`, or a firewall's policy route), routed by SNI / Host.
 * Absent = no transparent listener.
 */
const transparent = z.strictObject({
  listen: requiredListenAddress('the transparent listener address, e.g. "[::]:3129" (IPv4 and IPv6) or "0.0.0.0:3129"'),
  /** Destination ports the kernel redirects to the listener (`transparent-rules` reads them). */
  ports: z
    .array(port, { error: (i) => `expected a list of ports, got ${show(i.input)}` })
    .min(1, 'at least one port is required')
    .default([443, 80]),
});

const inspect = z.strictObject({
  ca_cert: z.string({ error: required('path to the inspection CA certificate (PEM)', 'a string') }).min(1),
  ca_key: z.string({ error: required('path to the inspection CA key (PEM, mode 0600)', 'a string') }).min(1),
  hosts: z.array(hostPattern).default(['*.amazonaws.com', '*.api.aws']),
  passthrough: z.array(hostPattern).default([]),
  /** After a client rejects the agent's certificate (pinning, CA not trusted), tunnel that client to that host instead. */
  passthrough_on_failure: z.boolean().default(true),
  /** How long a (client, host) pair stays on the automatic passthrough list. */
  passthrough_ttl: positiveDuration.default(3_600_000),
  /** Most (client, host) pairs on the automatic passthrough list; the least recently used goes first. */
  passthrough_max_entries: positiveInt('passthrough_max_entries').default(10_000),
  leaf_validity: positiveDuration.default(7 * 86_400_000),
  cert_cache_size: positiveInt('cert_cache_size').default(1000),
});

const upstream = z.strictObject({
  ca_file: nullablePath,
  resolve: z.record(hostPattern, upstreamTarget).default({}),
  max_connections_per_origin: positiveInt('max_connections_per_origin').default(64),
  keep_alive_timeout: positiveDuration.default(4_000),
});

/** The detector takes telemetry at POST /v1/telemetry: a URL without that path would pass here and 404 forever. */
const detectorUrl = url(['http', 'https']).superRefine((v, ctx) => {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return; // reported by url()
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return; // likewise
  if (u.pathname !== TELEMETRY_PATH)
    ctx.addIssue({
      code: 'custom',
      message: `"${v}" does not have the path ${TELEMETRY_PATH}: the detector takes telemetry there and only there (e.g. "${u.protocol}//${u.host}${TELEMETRY_PATH}")`,
    });
});

const telemetry = z.strictObject({
  detector_url: detectorUrl.nullable().default(null),
  secret_file: nullablePath,
  file: nullablePath,
  spool_dir: z.string().min(1).default('/var/lib/egress-witness/spool'),
  spool_max_bytes: size.default(1024 ** 3),
  flush_interval: positiveDuration.default(2_000),
  heartbeat_interval: positiveDuration.default(30_000),
  observe_all: z.boolean().default(false),
  max_batch_records: positiveInt('max_batch_records').default(5_000),
  max_pending_records: positiveInt('max_pending_records').default(100_000),
  max_in_flight: positiveInt('max_in_flight').default(2),
  egress_check_url: url(['http', 'https']).nullable().default(null),
  egress_check_interval: positiveDuration.default(300_000),
});

const admin = z.strictObject({ listen: listenAddress.default({ host: '127.0.0.1', port: 9464, text: '127.0.0.1:9464' }) });
const log = z.strictObject({ level: logLevel.default('info') });

export const agentConfigSchema = z
  .strictObject({
    gateway,
    networks: z.array(network).default([]),
    proxy: proxy.default(() => proxy.parse({})),
    inspect: inspect.nullable().default(null),
    transparent: transparent.nullable().default(null),
    upstream: upstream.default(() => upstream.parse({})),
    telemetry: telemetry.default(() => telemetry.parse({})),
    admin: admin.default(() => admin.parse({})),
    log: log.default(() => log.parse({})),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.networks.forEach((n, i) => {
      if (seen.has(n.name)) ctx.addIssue({ code: 'custom', path: ['networks', i, 'name'], message: `duplicate network name "${n.name}"` });
      seen.add(n.name);
    });
    if (c.networks.length === 0 && c.proxy.allowed_clients.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['networks'],
        message: 'no routed networks and no proxy.allowed_clients: the proxy would admit nobody',
      });
    }
    if (c.transparent !== null) transparentProblems(c).forEach((p) => ctx.addIssue({ code: 'custom', ...p }));
    if (c.telemetry.detector_url !== null && c.telemetry.secret_file === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['telemetry', 'secret_file'],
        message: 'required when telemetry.detector_url is set (batches are HMAC-signed)',
      });
    }
  });

type Listen = { host: string; port: number; text: string };

/** Two listen addresses would collide: same port (not 0) and the same or a wildcard host. */
function sameSocket(a: Listen, b: Listen): boolean {
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  return a.port !== 0 && a.port === b.port && (a.host === b.host || wildcard(a.host) || wildcard(b.host));
}

function transparentProblems(c: {
  transparent: { listen: Listen; ports: number[] } | null;
  proxy: { listen: Listen; allowed_ports: number[] };
  admin: { listen: Listen };
}): { path: (string | number)[]; message: string }[] {
  const t = c.transparent;
  if (t === null) return [];
  const out: { path: (string | number)[]; message: string }[] = [];
  for (const [key, other] of [
    ['proxy.listen', c.proxy.listen],
    ['admin.listen', c.admin.listen],
  ] as const) {
    if (sameSocket(t.listen, other))
      out.push({ path: ['transparent', 'listen'], message: `"${t.listen.text}" collides with ${key} "${other.text}": use another port` });
  }
  const seen = new Set<number>();
  t.ports.forEach((p, i) => {
    if (seen.has(p)) out.push({ path: ['transparent', 'ports', i], message: `duplicate port ${p}` });
    else if (!c.proxy.allowed_ports.includes(p))
      out.push({
        path: ['transparent', 'ports', i],
        message: `port ${p} would be redirected to the agent but is not in proxy.allowed_ports, so every such connection would be refused; add it there or remove it here`,
      });
    seen.add(p);
  });
  return out;
}

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type NetworkConfig = AgentConfig['networks'][number];
export type TransparentConfig = NonNullable<AgentConfig['transparent']>;

/** The top-level keys that identify an agent file (check-config uses them to tell files apart). */
export const AGENT_MARKER_KEYS = ['gateway', 'networks', 'proxy'] as const;
