/**
 * Parsing of what clients ask the proxy for: a CONNECT authority
 * (`host:port`, `[v6]:port`) or an absolute-form URL. Strict: anything odd is
 * refused rather than guessed at.
 */
import { parseIp, formatIp } from '../../common/cidr/ip.js';

export interface Target {
  /** Lower-case host name without trailing dot, or the canonical IP literal. */
  host: string;
  port: number;
  isIp: boolean;
}

const HOST_LABELS = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

export function normalizeHost(raw: string): { host: string; isIp: boolean } | null {
  let h = raw.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) {
    const ip = parseIp(h.slice(1, -1));
    return ip ? { host: formatIp(ip), isIp: true } : null;
  }
  const ip = parseIp(h);
  if (ip) return { host: formatIp(ip), isIp: true };
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (!HOST_LABELS.test(h)) return null;
  // All-numeric dotted names (e.g. "0x7f.1", "2130706433", "127.1") are IP shorthand some resolvers accept.
  if (/^[0-9.]+$/.test(h) || /^0x[0-9a-f]+$/.test(h) || /^[0-9]+$/.test(h.split('.').pop() ?? '')) return null;
  return { host: h, isIp: false };
}

function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/** `host:port` as on a CONNECT request line. The port is required. */
export function parseConnectAuthority(authority: string): Target | null {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d+)$/.exec(authority);
  if (!m) return null;
  const host = normalizeHost(m[1] ?? '');
  const port = parsePort(m[2] ?? '');
  return host && port !== null ? { ...host, port } : null;
}

/** The port of `http://` when a URL or Host names none. */
export const HTTP_DEFAULT_PORT = 80;

export interface AbsoluteTarget extends Target {
  /** Origin-form request target: path and query. */
  path: string;
}

/** `http://host[:port]/path?query` as on an absolute-form request line. */
export function parseAbsoluteUrl(url: string): AbsoluteTarget | { error: 'bad-url' | 'unsupported-scheme' } {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return { error: 'bad-url' };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { error: 'bad-url' };
  }
  if (u.protocol !== 'http:') return { error: 'unsupported-scheme' };
  if (u.username || u.password) return { error: 'bad-url' };
  const host = normalizeHost(u.hostname);
  const port = u.port === '' ? HTTP_DEFAULT_PORT : parsePort(u.port);
  if (!host || port === null) return { error: 'bad-url' };
  // Keep the path exactly as sent (URL would re-encode it, which breaks signatures).
  const afterAuthority = url.slice(url.indexOf('//') + 2);
  const slash = afterAuthority.search(/[/?]/);
  const rawPath = slash < 0 ? '/' : afterAuthority.slice(slash);
  const path = rawPath.startsWith('?') ? `/${rawPath}` : rawPath;
  return { ...host, port, path: path.split('#')[0] ?? '/' };
}

/** A `Host` header value: `host`, `host:port`, `[v6]` or `[v6]:port`; null when it is none of those. */
export function parseHostHeader(value: string | undefined): { host: string; isIp: boolean; port: number | null } | null {
  if (value === undefined) return null;
  const m = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/.exec(value.trim());
  if (!m) return null;
  const host = normalizeHost(m[1] ?? '');
  if (!host) return null;
  if (m[2] === undefined) return { ...host, port: null };
  const port = parsePort(m[2]);
  return port === null ? null : { ...host, port };
}

/** The `Host` value naming `target` (`host`, `host:port`, `[v6]:port`), its port left out when it is `defaultPort`. */
export function hostHeaderOf(target: Target, defaultPort: number): string {
  const host = target.isIp && target.host.includes(':') ? `[${target.host}]` : target.host;
  return target.port === defaultPort ? host : `${host}:${target.port}`;
}

/** Why a request head cannot be forwarded as the agent would record it. */
export type HeadAmbiguity = 'repeated-authorization' | 'repeated-host' | 'host-mismatch';

/**
 * Checks a request head (`rawHeaders`, as received) against the target the agent routes it to and
 * records it under. Node keeps only the first of repeated `Authorization` and `Host` headers in
 * `req.headers` while the raw ones are forwarded: a second `Authorization` would be sent upstream
 * but not credited, and a `Host` naming another host than the target (a second virtual host on a
 * shared front end) would be served as that host but recorded as the target. Repeated lines are
 * refused (400); another host is refused inside an inspected tunnel, and replaced by the
 * target's in plain HTTP, as RFC 9112 §3.2.2 asks of a proxy given an absolute-form request. A
 * `Host` without a port matches any port of the target's host.
 */
export function headAmbiguity(rawHeaders: readonly string[], target: { host: string; port: number }): HeadAmbiguity | null {
  let authorizations = 0;
  let hosts = 0;
  let host: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 13 && name.toLowerCase() === 'authorization') authorizations++;
    else if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++;
      host = rawHeaders[i + 1];
    }
  }
  if (authorizations > 1) return 'repeated-authorization';
  if (hosts > 1) return 'repeated-host';
  if (host === undefined) return null;
  const h = parseHostHeader(host);
  return h !== null && h.host === target.host && (h.port === null || h.port === target.port) ? null : 'host-mismatch';
}
