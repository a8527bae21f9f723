/**
 * TLS inspection of CONNECT tunnels to AWS endpoints. The ClientHello is
 * peeked first: clients that only speak h2, or whose SNI differs from the
 * CONNECT host, are tunnelled untouched. Otherwise TLS is terminated with a
 * leaf minted for the host, each HTTP/1.1 request is attributed (key,
 * action) and forwarded unchanged to the real endpoint over verified TLS.
 * A client that rejects the agent's certificate (pinning, CA not trusted)
 * is recorded, and — if the config says so — that client alone is tunnelled
 * to that host for a while (see passthrough-memory.ts). Only a rejection
 * earns it: a completed ClientHello, our certificate sent, then a
 * certificate alert or a close. Garbage, timeouts and resets never do.
 *
 *   CONNECT ─▶ peek hello ─┬─ h2-only / SNI mismatch / not TLS ──▶ plain tunnel
 *                          └─ terminate TLS ─▶ http.Server (keep-alive) ─▶ per request: describe → forward → observe
 */
import http from 'node:http';
import tls from 'node:tls';
import type net from 'node:net';
import type { Dispatcher } from 'undici';
import type { Logger } from '../../common/log/logger.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import { newRecord, type RequestRecord, type RequestRecorder } from '../observe/model/request-record.js';
import type { HostPatternSet } from '../net/resolve-overrides.js';
import type { LeafMinter } from '../tls/leaf-minter.js';
import type { Inspector, InspectContext, InspectSummary, LivePolicy } from '../proxy/connection-types.js';
import { peekClientHello } from './peek-client-hello.js';
import { actionReader, describeRequest } from '../aws/describe-request.js';
import { classifyEndpoint, type AwsEndpoint } from '../aws/endpoint.js';
import { forwardRequest } from '../proxy/forward-request.js';
import { answerRefusal, failureAnswer, fillRefusal, rawFailureResponse, type ProxyFailure } from '../proxy/failures.js';
import { headAmbiguity } from '../net/authority.js';
import { clientErrorFailure } from '../proxy/proxy-server.js';
import { PassthroughMemory } from './passthrough-memory.js';

export type InterceptFailureCause =
  | 'h2-only'
  | 'sni-mismatch'
  | 'malformed-hello'
  | 'hello-timeout'
  | 'cert-rejected'
  | 'handshake-failed'
  | 'handshake-timeout'
  | 'client-closed'
  | 'mint-failed';

/** How a client showed it rejected the agent's certificate: the alert it sent, or a close after our ServerHello flight. */
export type PassthroughCause = 'unknown-ca' | 'bad-certificate' | 'certificate-unknown' | 'access-denied' | 'closed-after-server-hello';

/** The certificate-rejection alerts, by Node's error code and by TLS alert number (RFC 8446 §6). */
const REJECTION_CODES: Readonly<Record<string, PassthroughCause>> = {
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'unknown-ca',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'bad-certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'certificate-unknown',
  ERR_SSL_TLSV1_ALERT_ACCESS_DENIED: 'access-denied',
};
const REJECTION_ALERTS: Readonly<Record<string, PassthroughCause>> = {
  '48': 'unknown-ca',
  '42': 'bad-certificate',
  '46': 'certificate-unknown',
  '49': 'access-denied',
};

/** The certificate-rejection alert a handshake error reports, if it is one. */
export function rejectionAlert(err: NodeJS.ErrnoException): PassthroughCause | null {
  const byCode = err.code !== undefined ? REJECTION_CODES[err.code] : undefined;
  if (byCode) return byCode;
  const n = /alert number (\d+)/i.exec(err.message ?? '')?.[1];
  return (n !== undefined ? REJECTION_ALERTS[n] : undefined) ?? null;
}

export interface InspectorOptions {
  hosts: HostPatternSet;
  passthrough: HostPatternSet;
  passthroughOnFailure: boolean;
  passthroughTtlMs: number;
  passthroughMaxEntries: number;
  minter: LeafMinter;
  dispatcher: Dispatcher;
  /** A fresh upstream pool, for when the destination policy changes (connections kept alive were checked under the old one). */
  newDispatcher: () => Dispatcher;
  /** Where each decrypted request's record goes. */
  recorder: RequestRecorder;
  metrics: AgentMetrics;
  logger: Logger;
  now: () => number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Told each automatic passthrough entry added here (a proxy worker tells the others). */
  onPassthrough?: (clientIp: string, host: string) => void;
}

interface ConnState {
  ctx: InspectContext;
  /** Classified once per connection; every request on it goes to the same host. */
  endpoint: AwsEndpoint | null;
  /** Decrypted requests so far. */
  requests: number;
}

export class TlsInspector implements Inspector {
  /** (client, host) pairs whose client refused interception: tunnelled until the entry expires. */
  private readonly autoPassthrough: PassthroughMemory;
  private readonly server: http.Server;
  private readonly conns = new WeakMap<net.Socket, ConnState>();
  private open = 0;
  private retired: (() => void) | null = null;
  private live: LivePolicy | null = null;
  private isFinished = false;
  private dispatcher: Dispatcher;

  constructor(private readonly opts: InspectorOptions) {
    this.dispatcher = opts.dispatcher;
    this.autoPassthrough = new PassthroughMemory({
      maxEntries: opts.passthroughMaxEntries,
      ttlMs: opts.passthroughTtlMs,
      now: opts.now,
      onSize: (n) => opts.metrics.passthroughEntries.set(n),
    });
    opts.metrics.passthroughEntries.set(0);
    this.server = http.createServer({
      keepAliveTimeout: opts.idleTimeoutMs,
      requestTimeout: 0,
      headersTimeout: opts.headersTimeoutMs,
      // Node checks header deadlines on this interval (default 30 s): keep it well under the timeout.
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(opts.headersTimeoutMs / 4))),
      noDelay: true,
    });
    // This server never listens (connections are handed to it), and Node starts the timer that
    // enforces headersTimeout only on 'listening': without this, a client that sends part of a
    // request head and then trickles or waits is held until the idle timeout, however slow.
    // close() (retire) stops the timer again.
    this.server.emit('listening');
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void this.onRequest(req, res));
    // Answer "100 Continue" ourselves (undici refuses an Expect header) and stream the body on unchanged.
    this.server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeContinue();
      void this.onRequest(req, res);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.onClientError(err, socket));
  }

  /** An automatic passthrough entry added elsewhere (another proxy worker's). */
  rememberPassthrough(clientIp: string, host: string): void {
    if (this.opts.passthroughOnFailure) this.autoPassthrough.add(clientIp, host);
  }

  get finished(): boolean {
    return this.isFinished;
  }

  usePolicy(live: LivePolicy): void {
    // A finished inspector's pool is closed: nothing to renew.
    if (this.isFinished) return;
    const changed = this.live !== null && (live.policy !== this.live.policy || live.overrides !== this.live.overrides);
    this.live = live;
    // Pooled upstream connections were checked under the old policy: new requests get new ones, the
    // old pool closes once its requests have ended.
    if (changed) {
      const old = this.dispatcher;
      this.dispatcher = this.opts.newDispatcher();
      void old.close().catch(() => undefined);
    }
  }

  /** The upstream pool requests go through now. */
  get upstream(): Dispatcher {
    return this.dispatcher;
  }

  /** The destination policy for a new upstream connection (the connector asks on every one). */
  policy(): LivePolicy {
    if (this.live === null) throw new Error('the inspector has no destination policy yet');
    return this.live;
  }

  wants(host: string, port: number, clientIp: string): boolean {
    if (port !== 443 || !this.opts.hosts.matches(host) || this.opts.passthrough.matches(host)) return false;
    return !this.autoPassthrough.has(clientIp, host);
  }

  /**
   * Records a failed interception. `rejected` is set only when the client
   * rejected the agent's certificate; then, if configured, this client is
   * tunnelled to this host for `passthrough_ttl`.
   */
  private interceptFailed(ctx: InspectContext, cause: InterceptFailureCause, detail?: string, rejected?: PassthroughCause): void {
    this.opts.metrics.tlsInterceptFailures.inc({ cause });
    const passthrough = this.opts.passthroughOnFailure && rejected !== undefined;
    if (passthrough) {
      this.autoPassthrough.add(ctx.clientIp, ctx.target.host);
      this.opts.onPassthrough?.(ctx.clientIp, ctx.target.host);
      this.opts.metrics.passthroughAdditions.inc({ cause: rejected });
    }
    this.opts.logger.warn(
      {
        event: 'tls_intercept_failed',
        cause,
        detail,
        client_ip: ctx.clientIp,
        host: ctx.target.host,
        rejection: rejected ?? null,
        passthrough_next: passthrough,
      },
      `TLS interception of ${ctx.target.host} failed (${cause})${
        passthrough ? '; this client is tunnelled to the host without inspection for a while' : ''
      }`,
    );
  }

  /**
   * Takes one CONNECT from its first byte to its end. The connection counts as open for the whole
   * call — ClientHello peek included — so a retired inspector closes its upstream pool only after
   * every connection it was handed has ended.
   */
  async handle(client: net.Socket, head: Buffer, ctx: InspectContext): Promise<InspectSummary> {
    this.open++;
    try {
      return await this.handleOpen(client, head, ctx);
    } finally {
      if (--this.open === 0) this.retired?.();
    }
  }

  private async handleOpen(client: net.Socket, head: Buffer, ctx: InspectContext): Promise<InspectSummary> {
    const peek = await peekClientHello(client, head, this.opts.handshakeTimeoutMs);
    if (peek.hello === null) {
      client.destroy();
      if (peek.cause !== 'timeout') return { kind: 'done', requests: 0, failure: null };
      this.interceptFailed(ctx, 'hello-timeout');
      return { kind: 'done', requests: 0, failure: 'hello-timeout' };
    }
    const hello = peek.hello;
    if (hello.kind === 'not-tls') return { kind: 'tunnel', head: peek.bytes };
    if (hello.kind !== 'hello') {
      this.interceptFailed(ctx, 'malformed-hello', hello.kind === 'malformed' ? hello.reason : undefined);
      return { kind: 'tunnel', head: peek.bytes };
    }
    if (hello.alpn.length > 0 && !hello.alpn.includes('http/1.1')) {
      this.interceptFailed(ctx, 'h2-only', hello.alpn.join(','));
      return { kind: 'tunnel', head: peek.bytes };
    }
    if (hello.sni !== null && hello.sni.toLowerCase().replace(/\.$/, '') !== ctx.target.host) {
      this.interceptFailed(ctx, 'sni-mismatch');
      return { kind: 'tunnel', head: peek.bytes };
    }
    let context: tls.SecureContext;
    try {
      const r = await this.opts.minter.secureContextFor(ctx.target.host);
      (r.cached ? this.opts.metrics.certCacheHits : this.opts.metrics.certCacheMisses).inc();
      context = r.context;
    } catch (err) {
      this.interceptFailed(ctx, 'mint-failed', (err as Error).message);
      return { kind: 'tunnel', head: peek.bytes };
    }
    client.unshift(peek.bytes);
    return this.terminate(client, context, ctx);
  }

  private terminate(client: net.Socket, context: tls.SecureContext, ctx: InspectContext): Promise<InspectSummary> {
    return new Promise((resolve) => {
      // What the raw socket had sent and read before TLS (the peeked hello is already read): more
      // written at close means our ServerHello flight went out; nothing more read means the client
      // answered it with nothing at all.
      const writtenBefore = client.bytesWritten;
      const readBefore = client.bytesRead;
      const secure = new tls.TLSSocket(client, { isServer: true, secureContext: context, ALPNProtocols: ['http/1.1'] });
      let established = false;
      let failed: InterceptFailureCause | null = null;
      const state: ConnState = { ctx, endpoint: classifyEndpoint(ctx.target.host), requests: 0 };
      const fail = (cause: InterceptFailureCause, detail: string, rejected?: PassthroughCause): void => {
        failed = cause;
        clearTimeout(handshakeTimer);
        this.interceptFailed(ctx, cause, detail, rejected);
      };
      const handshakeTimer = setTimeout(() => {
        if (!established && !failed) {
          fail('handshake-timeout', 'no handshake within proxy.header_timeout');
          secure.destroy();
        }
      }, this.opts.handshakeTimeoutMs);
      secure.once('secure', () => {
        established = true;
        clearTimeout(handshakeTimer);
        this.conns.set(secure, state);
        secure.setTimeout(this.opts.idleTimeoutMs, () => secure.destroy());
        this.server.emit('connection', secure);
      });
      secure.on('error', (err: NodeJS.ErrnoException) => {
        if (established || failed) return;
        const rejected = client.bytesWritten > writtenBefore ? rejectionAlert(err) : null;
        const cause: InterceptFailureCause = rejected ? 'cert-rejected' : err.code === 'ECONNRESET' ? 'client-closed' : 'handshake-failed';
        fail(cause, err.code ?? (err.message ?? '').slice(0, 120), rejected ?? undefined);
      });
      secure.once('close', () => {
        clearTimeout(handshakeTimer);
        if (!established && !failed) {
          // A clean close (no alert, no reset) right after our certificate went out, with not one byte
          // sent back: Node and Go clients do this when verification fails (a CA they do not trust, a
          // pinned key). A close before our flight, or after the client sent more, is a client that went away.
          if (client.bytesWritten > writtenBefore && client.bytesRead === readBefore)
            fail('cert-rejected', 'closed after the server hello', 'closed-after-server-hello');
          else fail('client-closed', 'closed during the handshake');
        }
        if (!established && !client.destroyed) client.destroy();
        resolve({ kind: 'done', requests: state.requests, failure: failed });
      });
      client.once('close', () => secure.destroy());
      // The proxy's sockets allow half-open; a client that hangs up mid-handshake must not linger.
      secure.once('end', () => {
        if (!established) secure.destroy();
      });
    });
  }

  /** A decrypted request head that timed out, was too large or did not parse: answered, recorded, closed. */
  private onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    const failure = clientErrorFailure(err, socket);
    const state = this.conns.get(socket);
    if (failure === null || !state) {
      socket.destroy();
      return;
    }
    const record = newRecord('invalid', 'inspect', state.ctx, null, null);
    record.originalIp = state.ctx.originalIp;
    fillRefusal(record, failure, this.opts.now());
    this.opts.recorder.record(record);
    socket.end(rawFailureResponse(failure));
    socket.destroySoon?.();
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const state = this.conns.get(req.socket);
    if (!state) {
      res.writeHead(500).end();
      return;
    }
    state.requests++;
    const { ctx, endpoint } = state;
    const record = newRecord('inspected', 'inspect', { ...ctx, startedAt: this.opts.now() }, ctx.target, ctx.aws);
    record.originalIp = ctx.originalIp;
    // Inside the tunnel too, the request must be for the host the tunnel was opened (and is recorded) for.
    const ambiguity = headAmbiguity(req.rawHeaders, ctx.target);
    if (ambiguity !== null) return this.refuse(req, res, record, { kind: 'bad-request', reason: ambiguity });
    const d = describeRequest({
      method: req.method ?? 'GET',
      target: req.url ?? '/',
      headers: req.headers,
      host: ctx.target.host,
      endpoint,
    });
    const reader = actionReader(d);
    if (!d.key) this.opts.metrics.unattributedRequests.inc({ reason: d.unattributed ?? 'unsigned' });
    const result = await forwardRequest(req, res, {
      dispatcher: this.dispatcher,
      origin: `https://${ctx.target.host}:${ctx.target.port}`,
      path: req.url ?? '/',
      now: this.opts.now,
      headersTimeoutMs: this.opts.bodyTimeoutMs,
      bodyTimeoutMs: this.opts.bodyTimeoutMs,
      peekBody: reader.peek,
    });
    if (result.upstreamMs !== null) this.opts.metrics.upstreamDuration.observe(result.upstreamMs / 1000);
    record.endedAt = this.opts.now();
    record.aws = d.aws ?? ctx.aws;
    record.key = d.key;
    record.action = reader.action();
    record.bytesUp = result.bytesUp;
    record.bytesDown = result.bytesDown;
    record.status = result.status;
    if (result.failure) {
      const a = failureAnswer(result.failure);
      record.outcome = a.outcome;
      record.reason = a.reason;
    } else if (result.clientGone) {
      record.outcome = 'client_error';
      record.reason = 'client-error';
    }
    this.opts.recorder.record(record);
  }

  /** A decrypted request refused before it is forwarded: recorded, answered with the reason header, the connection closed after it. */
  private refuse(req: http.IncomingMessage, res: http.ServerResponse, record: RequestRecord, failure: ProxyFailure): void {
    record.kind = 'invalid';
    fillRefusal(record, failure, this.opts.now());
    this.opts.recorder.record(record);
    answerRefusal(req, res, failure);
  }

  /** Stops for good once the connections it holds have ended (after a reload replaced it); `onIdle` runs once. */
  retire(onIdle: () => void): void {
    this.retired = () => {
      if (this.isFinished) return;
      this.isFinished = true;
      this.server.close();
      onIdle();
    };
    if (this.open === 0) this.retired();
  }
}
