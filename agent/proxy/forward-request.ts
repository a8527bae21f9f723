/**
 * One HTTP request → its origin, unchanged, through an undici dispatcher: the
 * one forwarding stack for plain HTTP (http-forward.ts) and for requests
 * decrypted by the inspector. Raw header names and order kept (hop-by-hop
 * ones dropped, never re-signed), no Via or X-Forwarded-For added, bodies
 * streamed both ways with backpressure, so a 1 GiB upload passes in constant
 * memory. The dispatcher's connector decides where a connection may go: it
 * only ever dials addresses the destination policy checked.
 */
import type http from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { failureAnswer, failureFromError, failureHeaders, type ProxyFailure } from './failures.js';
import { HOP_BY_HOP, connectionNamed } from '../net/hop-by-hop.js';

/**
 * Flat [name, value, …] list from the raw headers, hop-by-hop ones (and what
 * Connection names) removed, and Expect too: the proxy answers 100 Continue
 * itself, and undici refuses the header.
 */
export function forwardableRequestHeaders(raw: readonly string[]): string[] {
  const connection: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] ?? '').toLowerCase() === 'connection') connection.push(raw[i + 1] ?? '');
  const named = connectionNamed(connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || named.has(lower)) continue;
    out.push(name, raw[i + 1] ?? '');
  }
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
}

export async function forwardRequest(req: http.IncomingMessage, res: http.ServerResponse, opts: ForwardOptions): Promise<ForwardOutcome> {
  let bytesUp = 0;
  let counted = 0;
  let cut = (): number => counted;
  const hasBody =
    req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  const body = hasBody ? observedBody(req, opts.peekBody ?? null, (n) => (bytesUp += n)) : null;
  const started = opts.now();
  let upstreamMs: number | null = null;
  let upstreamBroke = false;
  let clientLeft = false;
  const clientGone = (): boolean => clientLeft || (!upstreamBroke && !res.writableFinished && (res.destroyed || req.socket.destroyed));
  try {
    const up = await opts.dispatcher.request({
      origin: opts.origin,
      path: opts.path,
      method: req.method ?? 'GET',
      headers: forwardableRequestHeaders(req.rawHeaders),
      body,
      reset: opts.reset === true,
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
    });
    upstreamMs = opts.now() - started;
    const headers: string[] = [];
    for (const [name, value] of Object.entries(up.headers)) {
      if (HOP_BY_HOP.has(name) || value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) headers.push(name, v);
      else headers.push(name, value);
    }
    const length = declaredLength(up.headers['content-length']);
    // Bytes down: the declared length once the answer has gone out whole, else what the client's socket
    // took (head included, for an answer cut short); counted chunk by chunk only when there is no length.
    const socket = req.socket;
    const writtenBefore = socket.bytesWritten;
    res.writeHead(up.statusCode, headers);
    if (length === null) up.body.on('data', (c: Buffer) => (counted += c.length));
    else cut = () => Math.max(0, socket.bytesWritten - writtenBefore);
    // pipe + finished rather than stream.pipeline: no AbortController per request on the hot path.
    up.body.on('error', (err) => {
      if (clientLeft) return;
      upstreamBroke = true;
      res.destroy(err);
    });
    res.once('close', () => {
      if (up.body.readableEnded) return;
      // The answer did not reach the client whole, and not because the upstream broke: the client left.
      if (!upstreamBroke) clientLeft = true;
      up.body.destroy();
    });
    up.body.pipe(res);
    try {
      await finished(res);
    } catch (err) {
      if (clientGone()) return { status: up.statusCode, bytesUp, bytesDown: cut(), failure: null, clientGone: true, upstreamMs };
      throw err;
    }
    const bytesDown = length ?? counted;
    return { status: up.statusCode, bytesUp, bytesDown, failure: null, clientGone: false, upstreamMs };
  } catch (err) {
    req.resume();
    if (clientGone() || (err as { code?: unknown } | null)?.code === 'ECLIENTCLOSED') {
      res.destroy();
      return { status: res.headersSent ? res.statusCode : null, bytesUp, bytesDown: cut(), failure: null, clientGone: true, upstreamMs };
    }
    const failure = failureFromError(err, 'upstream');
    const answered = !res.headersSent;
    if (answered) {
      const a = failureAnswer(failure);
      res.writeHead(a.status, failureHeaders(failure)).end(`${a.reason}\n`);
    } else {
      res.destroy();
    }
    return {
      status: answered ? failureAnswer(failure).status : res.statusCode,
      bytesUp,
      bytesDown: cut(),
      failure,
      clientGone: false,
      upstreamMs,
    };
  }
}
