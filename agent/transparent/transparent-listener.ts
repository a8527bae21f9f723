/**
 * The transparent listener: connections the kernel redirected to the agent
 * (nftables `redirect`, a firewall's policy route). The client believes it
 * is talking to the AWS endpoint, so the first bytes name the host: the SNI
 * of a TLS ClientHello, or the `Host` of a plain HTTP request. From there a
 * connection takes the same path as an explicit CONNECT or absolute-form
 * request (proxy/connection-path.ts). The agent dials the address it
 * resolved for that name and checked, never the address the client dialled.
 *
 *   accept ─▶ admit ─▶ original destination (port; else 443 / 80)
 *                         │
 *                         ▼
 *            peek first bytes (proxy.header_timeout)
 *              ├─ ClientHello with SNI ─▶ ConnectionPath.tunnel()  (refusal: a TLS alert, then close)
 *              ├─ HTTP request line ────▶ HTTP server ─▶ per request: Host ─▶ ConnectionPath.http()
 *              └─ no SNI / timeout / neither TLS nor HTTP ─▶ closed, counted by reason
 *
 * Every connection ends in a record (observe/model/request-record.ts), those
 * closed before they could be routed too: one decision line each.
 */
import type http from 'node:http';
import net from 'node:net';
import type { Logger } from '../../common/log/logger.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import { HTTP_DEFAULT_PORT, normalizeHost, parseAbsoluteUrl, parseHostHeader, type AbsoluteTarget } from '../net/authority.js';
import type { ConnectionPath } from '../proxy/connection-path.js';
import type { ConnectionContext, Drainable, TunnelEntry } from '../proxy/connection-types.js';
import { failureAnswer, rawFailureResponse, tlsAlertRecord, type ProxyFailure } from '../proxy/failures.js';
import { newRecord, type RecordOrigin } from '../observe/model/request-record.js';
import type { AdoptedConnection, ForwardProxy } from '../proxy/proxy-server.js';
import { peekClientHello } from '../inspect/peek-client-hello.js';
import type { OriginalDestinationReader } from './original-destination.js';

/** Why a redirected connection was closed before it could be routed (the metric's `reason`, the record's). */
export type TransparentRejectReason =
  'no-sni' | 'bad-sni' | 'malformed-hello' | 'header-timeout' | 'not-tls-or-http' | 'malformed-http' | 'no-host' | 'client-closed';

export interface TransparentListenerOptions {
  path: ConnectionPath;
  /** Parses redirected plain HTTP with the explicit proxy's HTTP server (its header timeout and size limit). */
  httpServer: Pick<ForwardProxy, 'adopt'>;
  originalDestination: OriginalDestinationReader;
  metrics: AgentMetrics;
  logger: Logger;
  now: () => number;
  headerTimeoutMs: number;
}

const HTTPS_PORT = 443;

/** A redirected TLS connection is answered in TLS: nothing when the tunnel is up, a fatal alert when refused. */
const TRANSPARENT_TLS_ENTRY: TunnelEntry = {
  kind: 'transparent',
  established: () => undefined,
  refuse: (client, failure) => {
    if (client.writable) client.end(tlsAlertRecord(failure));
    client.destroySoon?.();
  },
};

/** An HTTP request line starts with a method: upper-case letters (RFC 9110 tokens in practice). */
function looksLikeHttp(bytes: Buffer): boolean {
  const b = bytes[0];
  return b !== undefined && b >= 0x41 && b <= 0x5a;
}

export class TransparentListener implements Drainable {
  readonly server: net.Server;
  private readonly peeking = new Set<net.Socket>();
  private readonly contexts = new WeakMap<net.Socket, ConnectionContext>();
  private readonly httpHandlers: AdoptedConnection;

  constructor(private readonly opts: TransparentListenerOptions) {
    // Half-open allowed: a client's FIN ends only its direction of the tunnel.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => void this.onConnection(socket));
    this.httpHandlers = {
      request: (req, res) => void this.onRequest(req, res),
      // A proxy request on a redirected connection: the client did not mean to talk to a proxy.
      connect: (_req, socket) => this.reject(socket, 'malformed-http', { kind: 'bad-request', reason: 'malformed' }),
      clientError: (socket, failure) => {
        if (failure === null) return void socket.destroy();
        const reason = failure.kind === 'bad-request' && failure.reason === 'header-timeout' ? 'header-timeout' : 'malformed-http';
        this.reject(socket, reason, failure);
      },
    };
  }

  private get path(): ConnectionPath {
    return this.opts.path;
  }

  private async onConnection(socket: net.Socket): Promise<void> {
    const startedAt = this.opts.now();
    socket.on('error', () => undefined); // resets from a client must never crash the agent
    const admission = this.path.settings.admission.admit(socket.remoteAddress);
    const who: RecordOrigin = {
      startedAt,
      clientIp: admission.clientIp,
      network: admission.admitted ? admission.network : null,
      capture: 'transparent',
    };
    if (!admission.admitted || this.path.draining) {
      this.path.refused(newRecord('transparent', 'tunnel', who, null, null), {
        kind: admission.admitted ? 'draining' : 'client-not-allowed',
      });
      socket.destroy();
      return;
    }
    const original = this.opts.originalDestination.read(socket);
    const ctx: ConnectionContext = {
      startedAt,
      clientIp: admission.clientIp,
      network: admission.network,
      capture: 'transparent',
      originalDestination: original.kind === 'redirected' ? { address: original.address, port: original.port } : null,
    };
    this.peeking.add(socket);
    const peek = await peekClientHello(socket, Buffer.alloc(0), this.opts.headerTimeoutMs);
    this.peeking.delete(socket);
    if (peek.hello === null) {
      return this.reject(socket, peek.cause === 'timeout' ? 'header-timeout' : 'client-closed', null, ctx);
    }
    const hello = peek.hello;
    if (hello.kind === 'not-tls' && looksLikeHttp(peek.bytes)) return this.serveHttp(socket, peek.bytes, ctx);
    if (hello.kind === 'not-tls' || hello.kind === 'incomplete') return this.reject(socket, 'not-tls-or-http', null, ctx);
    if (hello.kind === 'malformed') return this.reject(socket, 'malformed-hello', null, ctx);
    if (hello.sni === null) return this.reject(socket, 'no-sni', null, ctx);
    // An SNI is a host name (RFC 6066); an address there is not a name the agent could check.
    const name = normalizeHost(hello.sni);
    if (name === null || name.isIp) return this.reject(socket, 'bad-sni', null, ctx);
    const target = { host: name.host, isIp: false, port: ctx.originalDestination?.port ?? HTTPS_PORT };
    await this.path.tunnel(socket, peek.bytes, target, ctx, TRANSPARENT_TLS_ENTRY);
  }

  /** Hands a redirected plain-HTTP connection, first bytes put back (the peek left it paused), to the HTTP parser. */
  private serveHttp(socket: net.Socket, bytes: Buffer, ctx: ConnectionContext): void {
    this.contexts.set(socket, ctx);
    socket.unshift(bytes);
    this.opts.httpServer.adopt(socket, this.httpHandlers);
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const conn = this.contexts.get(req.socket);
    if (!conn) {
      res.writeHead(500).end();
      return;
    }
    const ctx: ConnectionContext = { ...conn, startedAt: this.opts.now() };
    const target = this.httpTarget(req, ctx);
    if (target === null) {
      this.opts.metrics.transparentRejected.inc({ reason: 'no-host' });
      const record = newRecord('transparent_http', 'http', ctx, null, null);
      record.originalIp = ctx.originalDestination?.address ?? null;
      return this.path.reply(req, res, record, { kind: 'bad-request', reason: 'no-host' });
    }
    await this.path.http(req, res, target, ctx, 'transparent_http');
  }

  /** Where a redirected request goes: its `Host` (an absolute-form URL wins, as RFC 9112 says), on the original port. */
  private httpTarget(req: http.IncomingMessage, ctx: ConnectionContext): AbsoluteTarget | null {
    const url = req.url ?? '';
    if (!url.startsWith('/')) {
      const absolute = parseAbsoluteUrl(url);
      return 'error' in absolute ? null : absolute;
    }
    const host = parseHostHeader(req.headers.host);
    if (host === null) return null;
    return { host: host.host, isIp: host.isIp, port: ctx.originalDestination?.port ?? HTTP_DEFAULT_PORT, path: url };
  }

  /**
   * Closes a connection that cannot be routed: counted by reason, recorded
   * (one decision line). `failure` given: the client spoke HTTP, so it gets
   * an HTTP answer first.
   */
  private reject(socket: net.Socket, reason: TransparentRejectReason, failure: ProxyFailure | null, known?: ConnectionContext): void {
    const ctx = known ?? this.contexts.get(socket);
    this.opts.metrics.transparentRejected.inc({ reason });
    const who: RecordOrigin = ctx ?? {
      startedAt: this.opts.now(),
      clientIp: socket.remoteAddress ?? 'unknown',
      network: null,
      capture: 'transparent',
    };
    const record = newRecord(failure !== null ? 'transparent_http' : 'transparent', failure !== null ? 'http' : 'tunnel', who, null, null);
    record.endedAt = this.opts.now();
    record.originalIp = ctx?.originalDestination?.address ?? null;
    record.outcome = 'client_error';
    record.reason = reason;
    record.status = failure !== null ? failureAnswer(failure).status : null;
    record.bytesUp = socket.bytesRead;
    this.path.record(record);
    if (failure !== null && socket.writable) socket.end(rawFailureResponse(failure));
    else socket.destroy();
    socket.destroySoon?.();
  }

  /**
   * Drain: stops accepting; connections still waiting for their first bytes
   * are closed. Redirected plain HTTP lives in the proxy's HTTP server and
   * drains with it; tunnels drain in the connection path.
   */
  stopAccepting(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    for (const s of this.peeking) s.destroy();
    return closed;
  }

  closeIdle(): void {}

  closeAll(): void {
    for (const s of this.peeking) s.destroy();
  }
}
