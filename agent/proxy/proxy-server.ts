/**
 * The explicit forward proxy listener: CONNECT tunnels, absolute-form plain
 * HTTP, and nothing else. It admits the client and parses what it asked
 * for; everything after that is the shared connection path
 * (connection-path.ts), which the transparent listener uses too.
 *
 *   accept ─▶ admit client ─▶ parse target ─▶ ConnectionPath.tunnel() / .http()
 *                 │ 403            │ 400          (each refusal here is a record too: one line, one increment)
 *   drain: stop accepting → wait for tunnels until the deadline → close the rest
 */
import http from 'node:http';
import type net from 'node:net';
import type { Logger } from '../../common/log/logger.js';
import { parseAbsoluteUrl, parseConnectAuthority } from '../net/authority.js';
import { newRecord, type RecordOrigin } from '../observe/model/request-record.js';
import type { Admission } from '../net/client-admission.js';
import { rawFailureResponse, type ProxyFailure } from './failures.js';
import type { ConnectionPath } from './connection-path.js';
import type { TunnelEntry } from './connection-types.js';

export interface ProxyOptions {
  path: ConnectionPath;
  logger: Logger;
  now: () => number;
  maxHeaderBytes: number;
  headerTimeoutMs: number;
}

const CONNECT_OK = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

/** CONNECT answers: "200 Connection Established", or an HTTP refusal with the reason header. */
const CONNECT_ENTRY: TunnelEntry = {
  kind: 'connect',
  established: (client) => client.write(CONNECT_OK),
  refuse: (client, failure) => {
    if (client.writable) client.end(rawFailureResponse(failure));
    client.destroySoon?.();
  },
};

/** The same HTTP server settings serve explicit requests and redirected plain HTTP. */
export function proxyHttpServer(opts: { maxHeaderBytes: number; headerTimeoutMs: number }): http.Server {
  return http.createServer({
    maxHeaderSize: opts.maxHeaderBytes,
    headersTimeout: opts.headerTimeoutMs,
    // Node checks header deadlines on this interval (default 30 s): keep it well under the timeout.
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(opts.headerTimeoutMs / 4))),
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    noDelay: true,
  });
}

/** The failure a request-parsing error of Node's HTTP server stands for; null when the client simply went away. */
export function clientErrorFailure(err: NodeJS.ErrnoException, socket: net.Socket): ProxyFailure | null {
  const code = err.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) return null;
  const reason = code === 'HPE_HEADER_OVERFLOW' ? 'header-too-large' : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'header-timeout' : 'malformed';
  return { kind: 'bad-request', reason };
}

/**
 * A connection the proxy's HTTP server parses for another listener (the
 * transparent one's plain HTTP): its requests, CONNECTs and parse errors go
 * to these handlers instead of the explicit proxy's. Adopting keeps one HTTP
 * server, with its header timeout and size limit, for every plain-HTTP client.
 */
export interface AdoptedConnection {
  request(req: http.IncomingMessage, res: http.ServerResponse): void;
  connect(req: http.IncomingMessage, socket: net.Socket): void;
  /** `failure` null: the client went away. */
  clientError(socket: net.Socket, failure: ProxyFailure | null): void;
}

export class ForwardProxy {
  readonly server: http.Server;
  private readonly adopted = new WeakMap<net.Socket, AdoptedConnection>();
  /** Connections with a request under way: a parse error there is the client leaving mid-body, and that request's record says so. */
  private readonly busy = new WeakSet<net.Socket>();

  constructor(private readonly opts: ProxyOptions) {
    this.server = proxyHttpServer(opts);
    this.server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void this.onConnect(req, socket, head));
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void this.onRequest(req, res));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.onClientError(err, socket));
  }

  private get path(): ConnectionPath {
    return this.opts.path;
  }

  /**
   * Parses HTTP on a socket accepted elsewhere. Bytes already read from it
   * must have been put back (`unshift`) and the socket left paused: it is
   * resumed here, after the parser is attached, so those bytes come first.
   */
  adopt(socket: net.Socket, conn: AdoptedConnection): void {
    this.adopted.set(socket, conn);
    this.server.emit('connection', socket);
    socket.resume();
  }

  /** Who a request came from, as admission saw them (a refused client has no network). */
  private origin(admission: Admission, startedAt: number): RecordOrigin {
    return { startedAt, clientIp: admission.clientIp, network: admission.admitted ? admission.network : null, capture: 'explicit' };
  }

  private async onConnect(req: http.IncomingMessage, client: net.Socket, head: Buffer): Promise<void> {
    const adopted = this.adopted.get(client);
    if (adopted) return adopted.connect(req, client);
    const startedAt = this.opts.now();
    client.on('error', () => undefined); // ECONNRESET/EPIPE from a client must never crash the agent
    const admission = this.path.settings.admission.admit(client.remoteAddress);
    const who = this.origin(admission, startedAt);
    const refuse = (kind: 'connect' | 'invalid', failure: ProxyFailure): void => {
      this.path.refused(newRecord(kind, 'tunnel', who, null, null), failure);
      CONNECT_ENTRY.refuse(client, failure);
    };
    if (!admission.admitted) return refuse('connect', { kind: 'client-not-allowed' });
    if (this.path.draining) return refuse('connect', { kind: 'draining' });
    const target = parseConnectAuthority(req.url ?? '');
    if (!target) return refuse('invalid', { kind: 'bad-request', reason: 'bad-authority' });
    const ctx = {
      startedAt,
      clientIp: admission.clientIp,
      network: admission.network,
      capture: 'explicit' as const,
      originalDestination: null,
    };
    await this.path.tunnel(client, head, target, ctx, CONNECT_ENTRY);
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const socket = req.socket;
    this.busy.add(socket);
    res.once('close', () => this.busy.delete(socket));
    const adopted = this.adopted.get(req.socket);
    if (adopted) return adopted.request(req, res);
    const startedAt = this.opts.now();
    const admission = this.path.settings.admission.admit(req.socket.remoteAddress);
    const who = this.origin(admission, startedAt);
    const reply = (kind: 'http' | 'invalid', failure: ProxyFailure): void =>
      this.path.reply(req, res, newRecord(kind, 'http', who, null, null), failure);
    if (!admission.admitted) return reply('http', { kind: 'client-not-allowed' });
    const url = req.url ?? '';
    if (url.startsWith('/') || url === '*') return reply('invalid', { kind: 'bad-request', reason: 'origin-form' });
    const parsed = parseAbsoluteUrl(url);
    if ('error' in parsed) return reply('invalid', { kind: 'bad-request', reason: parsed.error });
    const ctx = {
      startedAt,
      clientIp: admission.clientIp,
      network: admission.network,
      capture: 'explicit' as const,
      originalDestination: null,
    };
    await this.path.http(req, res, parsed, ctx, 'http');
  }

  private onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    if (this.busy.has(socket)) {
      socket.destroy();
      return;
    }
    const failure = clientErrorFailure(err, socket);
    const adopted = this.adopted.get(socket);
    if (adopted) return adopted.clientError(socket, failure);
    if (failure === null) {
      socket.destroy();
      return;
    }
    const who = this.origin(this.path.settings.admission.admit(socket.remoteAddress), this.opts.now());
    this.path.refused(newRecord('invalid', 'http', who, null, null), failure);
    CONNECT_ENTRY.refuse(socket, failure);
  }

  /** Drain: stops accepting and closes idle keep-alive connections (again on every call). */
  stopAccepting(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    return closed;
  }

  closeIdle(): void {
    this.server.closeIdleConnections();
  }

  closeAll(): void {
    this.server.closeAllConnections();
  }
}
