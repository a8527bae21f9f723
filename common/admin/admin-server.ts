/**
 * The admin listener: `/metrics` (Prometheus text), `/healthz` (the process
 * is alive and its event loop turns), `/readyz` (listeners up, config loaded).
 * Bind it to loopback; it exposes no secrets, but it is not for the world.
 */
import http from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  checks: Record<string, boolean>;
}

export interface AdminServerOptions {
  registry: Registry;
  readiness: () => Readiness;
  /** Extra read-only JSON endpoints, e.g. `/status` (answered when the promise, if any, resolves). */
  routes?: Record<string, () => unknown>;
}

export function createAdminServer(opts: AdminServerOptions): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${String(err)}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const r = opts.readiness();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
      return;
    }
    const route = path !== undefined ? opts.routes?.[path] : undefined;
    if (route) {
      Promise.resolve()
        .then(route)
        .then(
          (value) => res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(value)}\n`),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${path} failed: ${String(err)}\n`),
        );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}

/**
 * Listens and resolves with the bound address, or rejects with the listen error (EADDRINUSE…).
 * `backlog`: the accept queue (Node's default 511; the kernel caps it at net.core.somaxconn).
 * `shared`: a cluster worker's listener, which the primary holds for all its workers (node:cluster);
 * otherwise the process binds the address itself.
 */
export function listen(
  server: http.Server | NetServer,
  host: string,
  port: number,
  backlog?: number,
  shared = false,
): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port, exclusive: !shared, ...(backlog !== undefined ? { backlog } : {}) }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * `listen` for the listener configured under `key` (e.g. `admin.listen`): an address in use,
 * not on this host, or a privileged port becomes an error that names the key to change.
 */
export async function listenAt(
  key: string,
  server: http.Server | NetServer,
  host: string,
  port: number,
  backlog?: number,
  shared = false,
): Promise<AddressInfo> {
  try {
    return await listen(server, host, port, backlog, shared);
  } catch (err) {
    throw new Error(listenErrorMessage(key, host, port, err), { cause: err });
  }
}

/** Where the listen addresses and these errors are documented. */
const LISTEN_DOC = 'docs/configuration.md#listen-addresses';

export function listenErrorMessage(key: string, host: string, port: number, err: unknown): string {
  const code = (err as { code?: string }).code;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (code === 'EADDRINUSE')
    return `${key}: ${where} is already in use by another process (EADDRINUSE); stop that process or set ${key} to a free address (${LISTEN_DOC})`;
  if (code === 'EADDRNOTAVAIL')
    return `${key}: ${host} is not an address of this host (EADDRNOTAVAIL); set ${key} to one of its addresses, 127.0.0.1 or 0.0.0.0 (${LISTEN_DOC})`;
  if (code === 'EACCES')
    return `${key}: ${where} needs privileges to bind (EACCES; ports below 1024 need CAP_NET_BIND_SERVICE); set ${key} to a port above 1023 (${LISTEN_DOC})`;
  return `${key}: cannot listen on ${where}: ${(err as Error).message}`;
}

export function closeServer(server: http.Server | NetServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    if ('closeIdleConnections' in server) server.closeIdleConnections();
  });
}
