/**
 * The explicit forward proxy listener: CONNECT tunnels, absolute-form plain
 * HTTP, and nothing else. It admits the client and parses what it asked
 * for; everything after that is the shared connection path
 * (connection-path.ts), which the transparent listener uses too.
 *
 *   accept (net.Server) ─▶ first read: a whole plain CONNECT head? (connect-head.ts)
 *        │ yes                                   │ no: bytes put back, the connection goes to the HTTP server
 *        ▼                                       ▼   (its parser, limits and header timeout; 'connect' / 'request')
 *   admit client ─▶ parse target ─▶ ConnectionPath.tunnel()          admit client ─▶ parse target ─▶ .tunnel() / .http()
 *        │ 403          │ 400      (each refusal here is a record too: one line, one increment)
 *   drain: stop accepting → wait for tunnels until the deadline → close the rest
 *
 * A CONNECT read without the HTTP server costs no parser, IncomingMessage or
 * ServerResponse: the tunnel is most of what a new connection costs, and most
 * connections are tunnels. A connection that sends nothing within the header
 * timeout is refused as the HTTP server would (408); one whose first read is
 * not a complete CONNECT head is the HTTP server's from then on.
 */
import http from 'node:http';
import net from 'node:net';
import type { Logger } from '../../common/log/logger.js';
import { parseAbsoluteUrl, parseConnectAuthority } from '../net/authority.js';
import { newRecord, type RecordOrigin } from '../observe/model/request-record.js';
import type { Admission } from '../net/client-admission.js';
import { rawFailureResponse, type ProxyFailure } from './failures.js';
import type { ConnectionPath } from './connection-path.js';
import type { TunnelEntry } from './connection-types.js';
import { readConnectHead } from './connect-head.js';

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

/** How often header deadlines are checked: well under the timeout. */
function checkIntervalMs(headerTimeoutMs: number): number {
  return Math.max(100, Math.min(1_000, Math.floor(headerTimeoutMs / 4)));
}

/** The same HTTP server settings serve explicit requests and redirected plain HTTP. */
export function proxyHttpServer(opts: { maxHeaderBytes: number; headerTimeoutMs: number }): http.Server {
  return http.createServer({
    maxHeaderSize: opts.maxHeaderBytes,
    headersTimeout: opts.headerTimeoutMs,
    // Node checks header deadlines on this interval (default 30 s): keep it well under the timeout.
    connectionsCheckingInterval: checkIntervalMs(opts.headerTimeoutMs),
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

/** The proxy that accepted a socket, on the socket: the first-read listeners are shared, not a closure per connection. */
const OWNER = Symbol('forward-proxy');
type Accepted = net.Socket & { [OWNER]?: ForwardProxy | undefined };

function ignoreError(): void {} // ECONNRESET/EPIPE from a client must never crash the agent

function onFirstData(this: Accepted, chunk: Buffer): void {
  this[OWNER]?.firstRead(this, chunk);
}

function onEarlyEnd(this: Accepted): void {
  this[OWNER]?.endedEarly(this);
}

/** What the HTTP server passes to 'clientError' when a connection's headers did not come in time. */
function headerTimeoutError(): NodeJS.ErrnoException {
  return Object.assign(new Error('request headers not received in time'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
}

export class ForwardProxy {
  /** Accepts the connections; what is not a plain CONNECT goes on to `http`. */
  readonly server: net.Server;
  private readonly http: http.Server;
  private readonly adopted = new WeakMap<net.Socket, AdoptedConnection>();
  /** Connections with a request under way: a parse error there is the client leaving mid-body, and that request's record says so. */
  private readonly busy = new WeakSet<net.Socket>();
  /** Accepted connections whose first bytes have not come yet, with when they were accepted (in that order). */
  private readonly waiting = new Map<net.Socket, number>();
  private sweep: NodeJS.Timeout | null = null;

  constructor(private readonly opts: ProxyOptions) {
    this.http = proxyHttpServer(opts);
    this.http.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void this.onConnect(req, socket, head));
    this.http.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void this.onRequest(req, res));
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.onClientError(err, socket));
    // It never listens itself: this starts its tracking of connections (header timeout, idle connections).
    this.http.emit('listening');
    // Half-open allowed, as the HTTP server does: a client's FIN ends only its direction of a tunnel.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
  }

  private get path(): ConnectionPath {
    return this.opts.path;
  }

  private accept(socket: Accepted): void {
    socket.on('error', ignoreError);
    if (this.opts.headerTimeoutMs > 0) {
      this.waiting.set(socket, performance.now());
      this.sweep ??= setInterval(() => this.expire(), checkIntervalMs(this.opts.headerTimeoutMs)).unref();
    }
    socket[OWNER] = this;
    socket.on('data', onFirstData);
    socket.on('end', onEarlyEnd);
  }

  private unwatch(socket: Accepted): void {
    socket[OWNER] = undefined;
    socket.removeListener('data', onFirstData);
    socket.removeListener('end', onEarlyEnd);
    this.waiting.delete(socket);
  }

  /** A connection's first bytes: a whole plain CONNECT head is served here, anything else by the HTTP server. */
  firstRead(socket: Accepted, chunk: Buffer): void {
    this.unwatch(socket);
    socket.pause();
    const head = readConnectHead(chunk, this.opts.maxHeaderBytes);
    if (head.kind === 'other') {
      socket.unshift(chunk);
      this.http.emit('connection', socket);
      socket.resume();
      return;
    }
    // Left paused: bytes after the head wait for the tunnel (or the inspector) to read them.
    void this.connectTo(socket, head.authority, chunk.subarray(head.headLength));
  }

  /** The client closed its side before sending anything: nothing to answer, nothing to record (as the HTTP server does). */
  endedEarly(socket: Accepted): void {
    this.unwatch(socket);
    socket.destroySoon();
  }

  /** Connections that have sent nothing for the header timeout are refused as the HTTP server refuses them. */
  private expire(): void {
    const oldest = performance.now() - this.opts.headerTimeoutMs;
    for (const [socket, acceptedAt] of this.waiting) {
      if (socket.destroyed) {
        this.unwatch(socket);
        continue;
      }
      if (acceptedAt > oldest) break;
      this.unwatch(socket);
      this.onClientError(headerTimeoutError(), socket);
    }
    if (this.waiting.size === 0 && !this.server.listening && this.sweep !== null) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  /**
   * Parses HTTP on a socket accepted elsewhere. Bytes already read from it
   * must have been put back (`unshift`) and the socket left paused: it is
   * resumed here, after the parser is attached, so those bytes come first.
   */
  adopt(socket: net.Socket, conn: AdoptedConnection): void {
    this.adopted.set(socket, conn);
    this.http.emit('connection', socket);
    socket.resume();
  }

  /** Who a request came from, as admission saw them (a refused client has no network). */
  private origin(admission: Admission, startedAt: number): RecordOrigin {
    return { startedAt, clientIp: admission.clientIp, network: admission.admitted ? admission.network : null, capture: 'explicit' };
  }

  /** A CONNECT the HTTP server parsed (its first read was not a whole plain head). */
  private async onConnect(req: http.IncomingMessage, client: net.Socket, head: Buffer): Promise<void> {
    const adopted = this.adopted.get(client);
    if (adopted) return adopted.connect(req, client);
    await this.connectTo(client, req.url ?? '', head);
  }

  /** A CONNECT to `authority`, `head` the bytes that came after it: admit, check, tunnel. */
  private async connectTo(client: net.Socket, authority: string, head: Buffer): Promise<void> {
    const startedAt = this.opts.now();
    const admission = this.path.settings.admission.admit(client.remoteAddress);
    const who = this.origin(admission, startedAt);
    const refuse = (kind: 'connect' | 'invalid', failure: ProxyFailure): void => {
      this.path.refused(newRecord(kind, 'tunnel', who, null, null), failure);
      CONNECT_ENTRY.refuse(client, failure);
    };
    if (!admission.admitted) return refuse('connect', { kind: 'client-not-allowed' });
    if (this.path.draining) return refuse('connect', { kind: 'draining' });
    const target = parseConnectAuthority(authority);
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

  /** Connections still waiting for their first bytes: nothing under way, closed like idle keep-alive ones. */
  private closeWaiting(): void {
    for (const socket of this.waiting.keys()) {
      this.unwatch(socket);
      socket.destroy();
    }
  }

  /** Drain: stops accepting and closes idle keep-alive connections (again on every call). */
  stopAccepting(): Promise<void> {
    // Resolves once every connection it accepted has closed, tunnels included (as node:net counts them).
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.closeIdle();
    return closed;
  }

  closeIdle(): void {
    this.closeWaiting();
    this.http.closeIdleConnections();
  }

  closeAll(): void {
    this.closeWaiting();
    this.http.closeAllConnections();
    // Stops its connection tracking; it never listened, so there is nothing else to close.
    this.http.close();
  }
}
