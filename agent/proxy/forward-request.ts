/**
 * One HTTP request → its origin, unchanged, through an undici dispatcher: the
 * one forwarding stack for plain HTTP (http-forward.ts) and for requests
 * decrypted by the inspector. Raw header names and order kept (hop-by-hop
 * ones dropped, never re-signed), no Via or X-Forwarded-For added, bodies
 * streamed both ways with backpressure, so a 1 GiB upload passes in constant
 * memory. A request body declared at 64 KiB or less is read whole first and
 * goes upstream in one write with its head (most API calls: one TLS record
 * and one syscall fewer each, and no stream per request). The dispatcher's
 * connector decides where a connection may go: it only ever dials addresses
 * the destination policy checked.
 */
import type http from 'node:http';
import { Readable, Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import { failureAnswer, failureFromError, failureHeaders, type ProxyFailure } from './failures.js';
import { HOP_BY_HOP, connectionNamed } from '../net/hop-by-hop.js';

/**
 * Flat [name, value, …] list from the raw headers, hop-by-hop ones (and what
 * Connection names) removed, and Expect too: the proxy answers 100 Continue
 * itself, and undici refuses the header. `host`: sent in place of the
 * client's Host lines.
 */
export function forwardableRequestHeaders(raw: readonly string[], host?: string): string[] {
  const connection: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] ?? '').toLowerCase() === 'connection') connection.push(raw[i + 1] ?? '');
  const named = connectionNamed(connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || named.has(lower) || (host !== undefined && lower === 'host')) continue;
    out.push(name, raw[i + 1] ?? '');
  }
  if (host !== undefined) out.push('Host', host);
  return out;
}

export interface ForwardOutcome {
  status: number | null;
  bytesUp: number;
  bytesDown: number;
  /** Why the exchange failed on the upstream side; null when it completed or the client left. */
  failure: ProxyFailure | null;
  /** The client went away before the whole answer reached it (its own doing: not an upstream failure). */
  clientGone: boolean;
  /** Time to response headers (ms), when they came. */
  upstreamMs: number | null;
}

/**
 * The request body as undici will read it: a pass-through that counts bytes
 * and shows each chunk to `peek` (the form-action sniffer) on its way. No
 * 'data' listener on the request itself — that would let bytes flow out
 * before undici starts reading.
 */
function observedBody(req: http.IncomingMessage, peek: ((chunk: Buffer) => void) | null, count: (n: number) => void): Readable {
  const t = new Transform({
    highWaterMark: 64 * 1024,
    transform(chunk: Buffer, _enc, cb) {
      count(chunk.length);
      peek?.(chunk);
      cb(null, chunk);
    },
  });
  req.on('error', (err) => t.destroy(err));
  // The client left before its body ended: undici must not wait for the rest.
  req.on('close', () => {
    if (!req.complete) t.destroy(Object.assign(new Error('client closed the request body'), { code: 'ECLIENTCLOSED' }));
  });
  return req.pipe(t);
}

/** A response's Content-Length when it is one plain integer (no per-chunk counting needed then). */
function declaredLength(v: string | string[] | undefined): number | null {
  return typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : null;
}

export interface ForwardOptions {
  dispatcher: Dispatcher;
  /** `scheme://host:port` the dispatcher keys its pool by. */
  origin: string;
  /** Origin-form request target, as the client sent it. */
  path: string;
  now: () => number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  peekBody?: ((chunk: Buffer) => void) | null;
  /** Close the upstream connection after this exchange (the client asked to close its own). */
  reset?: boolean;
  /** The `Host` to send in place of the client's (an absolute-form request whose `Host` named another host). */
  host?: string;
}

/** Response bytes that may wait for a slow client before the upstream read pauses. */
const RESPONSE_BUFFER = 64 * 1024;

/** Request bodies up to this declared length are read whole, then sent with their head in one write. */
const SMALL_BODY = 64 * 1024;

/** A request body declared small enough to read whole (a Content-Length, no Transfer-Encoding). */
function isSmallBody(req: http.IncomingMessage): boolean {
  const v = req.headers['content-length'];
  if (typeof v !== 'string' || req.headers['transfer-encoding'] !== undefined || !/^\d{1,6}$/.test(v)) return false;
  const n = Number(v);
  return n > 0 && n <= SMALL_BODY;
}

/**
 * A small request body read whole (each chunk shown to `peek` and counted on its way); null when the
 * client left or failed before its end. Memory stays bounded: only bodies declared ≤ SMALL_BODY come here.
 */
function readSmallBody(
  req: http.IncomingMessage,
  peek: ((chunk: Buffer) => void) | null,
  count: (n: number) => void,
): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (b: Buffer | null): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(b);
    };
    const onData = (c: Buffer): void => {
      count(c.length);
      peek?.(c);
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => finish(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.once('close', () => finish(null));
    req.on('error', () => finish(null));
  });
}

export function forwardRequest(req: http.IncomingMessage, res: http.ServerResponse, opts: ForwardOptions): Promise<ForwardOutcome> {
  const peek = opts.peekBody ?? null;
  let bytesUp = 0;
  const count = (n: number): number => (bytesUp += n);
  const up = (): number => bytesUp;
  if (isSmallBody(req))
    return readSmallBody(req, peek, count).then((body) => {
      if (body !== null) return exchange(req, res, opts, body, up);
      // The client left before its body ended: nothing was sent upstream.
      res.destroy();
      return { status: null, bytesUp, bytesDown: 0, failure: null, clientGone: true, upstreamMs: null };
    });
  const hasBody =
    req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  return exchange(req, res, opts, hasBody ? observedBody(req, peek, count) : null, up);
}

/**
 * The exchange as an undici dispatch handler: the response head goes to `res` as it comes and each
 * body chunk is written to `res` straight from the parser (paused while `res` is full), with no
 * response stream, promise or async resource in between — the cost per request and per MB that
 * `dispatcher.request()` adds on top of the same connection pool.
 */
function exchange(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: ForwardOptions,
  body: Readable | Buffer | null,
  up: () => number,
): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    let counted = 0;
    /** The response's declared length, once its head went out (no per-chunk counting then). */
    let length: number | null = null;
    let writtenBefore = 0;
    const socket = req.socket;
    // Bytes down: the declared length once the answer has gone out whole, else what the client's socket
    // took (head included, for an answer cut short); counted chunk by chunk only when there is no length.
    const cut = (): number => (length === null ? counted : Math.max(0, socket.bytesWritten - writtenBefore));
    const started = opts.now();
    let upstreamMs: number | null = null;
    let status: number | null = null;
    let controller: Dispatcher.DispatchController | null = null;
    /** The upstream answer ended whole (res.end() called). */
    let ended = false;
    let settled = false;
    const settle = (o: ForwardOutcome): void => {
      if (settled) return;
      settled = true;
      res.off('close', onClose);
      res.off('drain', onDrain);
      resolve(o);
    };
    const gone = (): void => {
      req.resume();
      settle({
        status: res.headersSent ? res.statusCode : null,
        bytesUp: up(),
        bytesDown: cut(),
        failure: null,
        clientGone: true,
        upstreamMs,
      });
    };
    const onDrain = (): void => controller?.resume();
    // The client went away before the whole answer reached it (its own doing: not an upstream failure).
    const onClose = (): void => {
      if (res.writableFinished) return;
      if (!ended) controller?.abort(Object.assign(new Error('client closed the connection'), { code: 'ECLIENTCLOSED' }));
      gone();
    };
    res.on('close', onClose);
    res.on('drain', onDrain);
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) c.abort(Object.assign(new Error('client closed the connection'), { code: 'ECLIENTCLOSED' }));
      },
      onResponseStart(c, statusCode, headers) {
        if (statusCode < 200 || settled) return;
        upstreamMs = opts.now() - started;
        status = statusCode;
        const out: string[] = [];
        for (const name in headers) {
          const value = headers[name];
          if (HOP_BY_HOP.has(name) || value === undefined) continue;
          if (Array.isArray(value)) for (const v of value) out.push(name, v);
          else out.push(name, value);
        }
        length = declaredLength(headers['content-length']);
        writtenBefore = socket.bytesWritten;
        res.writeHead(statusCode, out);
      },
      onResponseData(c, chunk) {
        if (settled) return;
        if (length === null) counted += chunk.length;
        // As a piped stream would: the upstream is read on until this much waits for the client (one
        // write's worth would stop the read after every chunk, and the reads and writes get small).
        if (!res.write(chunk) && res.writableLength >= RESPONSE_BUFFER) c.pause();
      },
      onResponseEnd() {
        if (settled) return;
        ended = true;
        res.end(() => settle({ status, bytesUp: up(), bytesDown: length ?? counted, failure: null, clientGone: false, upstreamMs }));
      },
      onResponseError(_c, err) {
        if (body instanceof Readable && !body.destroyed) body.destroy();
        if (settled) return;
        if ((err as { code?: unknown } | null)?.code === 'ECLIENTCLOSED' || res.destroyed || socket.destroyed) {
          res.destroy();
          gone();
          return;
        }
        req.resume();
        const failure = failureFromError(err, 'upstream');
        if (!res.headersSent) {
          const a = failureAnswer(failure);
          res.writeHead(a.status, failureHeaders(failure)).end(`${a.reason}\n`);
          settle({ status: a.status, bytesUp: up(), bytesDown: cut(), failure, clientGone: false, upstreamMs });
        } else {
          // The upstream broke mid-answer: the client sees its connection cut.
          settle({ status: res.statusCode, bytesUp: up(), bytesDown: cut(), failure, clientGone: false, upstreamMs });
          res.destroy();
        }
      },
    };
    opts.dispatcher.dispatch(
      {
        origin: opts.origin,
        path: opts.path,
        method: req.method ?? 'GET',
        headers: forwardableRequestHeaders(req.rawHeaders, opts.host),
        body,
        reset: opts.reset === true,
        headersTimeout: opts.headersTimeoutMs,
        bodyTimeout: opts.bodyTimeoutMs,
      },
      handler,
    );
  });
}
