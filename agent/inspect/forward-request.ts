/**
 * One decrypted request → the real endpoint, unchanged: raw header names and
 * order kept (hop-by-hop ones dropped, never re-signed), bodies streamed both
 * ways with backpressure, so a 1 GiB upload passes in constant memory.
 */
import type http from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { failureAnswer, failureFromError, failureHeaders, type ProxyFailure } from '../proxy/failures.js';
import { HOP_BY_HOP, connectionNamed } from '../net/hop-by-hop.js';

/**
 * Flat [name, value, …] list from the raw headers, hop-by-hop ones (and what
 * Connection names) removed, and Expect too: the agent answers 100 Continue
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
  failure: ProxyFailure | null;
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
  return req.pipe(t);
}

export async function forwardInspected(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: {
    dispatcher: Dispatcher;
    origin: string;
    now: () => number;
    headersTimeoutMs: number;
    bodyTimeoutMs: number;
    peekBody?: ((chunk: Buffer) => void) | null;
  },
): Promise<ForwardOutcome> {
  let bytesUp = 0;
  let bytesDown = 0;
  const hasBody =
    req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  const body = hasBody ? observedBody(req, opts.peekBody ?? null, (n) => (bytesUp += n)) : null;
  const started = opts.now();
  let upstreamMs: number | null = null;
  try {
    const up = await opts.dispatcher.request({
      origin: opts.origin,
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers: forwardableRequestHeaders(req.rawHeaders),
      body,
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
    res.writeHead(up.statusCode, headers);
    up.body.on('data', (c: Buffer) => (bytesDown += c.length));
    // pipe + finished rather than stream.pipeline: no AbortController per request on the hot path.
    up.body.on('error', (err) => res.destroy(err));
    res.once('close', () => {
      if (!up.body.readableEnded) up.body.destroy();
    });
    up.body.pipe(res);
    await finished(res);
    return { status: up.statusCode, bytesUp, bytesDown, failure: null, upstreamMs };
  } catch (err) {
    const failure = failureFromError(err, 'upstream');
    const answered = !res.headersSent;
    if (answered) {
      const a = failureAnswer(failure);
      res.writeHead(a.status, failureHeaders(failure)).end(`${a.reason}\n`);
    } else {
      res.destroy();
    }
    req.resume();
    return { status: answered ? failureAnswer(failure).status : res.statusCode, bytesUp, bytesDown, failure, upstreamMs };
  }
}
