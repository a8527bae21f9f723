/**
 * Plain-HTTP forwarding of absolute-form requests (`GET http://host/path`)
 * with http-proxy-3, to the address the policy checked (Host header kept as
 * sent), over a bounded keep-alive pool. Hop-by-hop headers are stripped;
 * everything else — SigV4 signs Host and x-amz-* — passes unchanged.
 */
import http from 'node:http';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { failureAnswer, failureFromError, failureHeaders, type ProxyFailure } from './failures.js';
import { HOP_BY_HOP, connectionNamed } from '../net/hop-by-hop.js';

/**
 * Hop-by-hop header names of a request: the shared list plus those its
 * Connection header names — except Transfer-Encoding, which Node's client
 * needs to frame the body it streams on.
 */
const STRIPPED = [...HOP_BY_HOP].filter((h) => h !== 'transfer-encoding');

export function hopByHopHeaders(headers: http.IncomingHttpHeaders): string[] {
  return [...STRIPPED, ...connectionNamed([headers.connection])];
}

export interface ForwardResult {
  status: number | null;
  bytesUp: number;
  bytesDown: number;
  failure: ProxyFailure | null;
}

export class HttpForwarder {
  private readonly proxy: ProxyServer;
  private readonly exchanges = new WeakMap<http.IncomingMessage, { status: number | null; bytesDown: number }>();
  readonly agent: http.Agent;

  constructor(opts: { maxSocketsPerOrigin: number; keepAliveTimeoutMs: number; upstreamTimeoutMs: number }) {
    this.agent = new http.Agent({
      keepAlive: true,
      maxSockets: opts.maxSocketsPerOrigin,
      maxFreeSockets: 16,
      timeout: opts.keepAliveTimeoutMs,
      scheduling: 'lifo',
    });
    this.proxy = createProxyServer({
      agent: this.agent,
      xfwd: false,
      changeOrigin: false,
      prependPath: false,
      proxyTimeout: opts.upstreamTimeoutMs,
    });
    // Errors are handled per request through the callback; this keeps stray ones from crashing.
    this.proxy.on('error', () => undefined);
    this.proxy.on('proxyRes', (proxyRes: http.IncomingMessage, req: http.IncomingMessage) => {
      const x = this.exchanges.get(req);
      if (!x) return;
      x.status = proxyRes.statusCode ?? null;
      proxyRes.on('data', (c: Buffer) => (x.bytesDown += c.length));
    });
  }

  /** Forwards `req` (whose url is already origin-form) to ip:port; resolves when the exchange ends. */
  forward(req: http.IncomingMessage, res: http.ServerResponse, ip: string, port: number, connectTimeoutMs: number): Promise<ForwardResult> {
    return new Promise((resolve) => {
      let bytesUp = 0;
      const x = { status: null as number | null, bytesDown: 0 };
      this.exchanges.set(req, x);
      let settled = false;
      const done = (failure: ProxyFailure | null): void => {
        if (settled) return;
        settled = true;
        resolve({ status: x.status, bytesUp, bytesDown: x.bytesDown, failure });
      };
      req.on('data', (c: Buffer) => (bytesUp += c.length));
      // http-proxy copies req.headers upstream and req.headers.connection onto the response:
      // drop hop-by-hop headers, but keep a client's "close" so both hops honour it.
      const wantsClose = connectionNamed([req.headers.connection]).has('close');
      for (const h of hopByHopHeaders(req.headers)) delete req.headers[h];
      if (wantsClose) req.headers.connection = 'close';
      res.once('close', () => {
        done(res.writableFinished ? null : { kind: 'upstream-error', code: 'ECLIENTCLOSED' });
      });
      const target = { protocol: 'http:', host: ip, port };
      this.proxy.web(req, res, { target, connectTimeout: connectTimeoutMs }, (err: Error) => {
        const failure = failureFromError(err, 'upstream');
        if (!res.headersSent) {
          res.writeHead(failureAnswer(failure).status, failureHeaders(failure)).end(`${failureAnswer(failure).reason}\n`);
        } else {
          res.destroy();
        }
        done(failure);
      });
    });
  }

  close(): void {
    this.agent.destroy();
    this.proxy.close();
  }
}
