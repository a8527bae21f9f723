/**
 * Request bodies under a size limit and a deadline. `readBody` buffers up to
 * the limit and stops at once past it; `discardBody` reads and drops what a
 * refused request still sends, so the answer reaches clients that read only
 * after sending (closing with unread data makes the kernel reset the
 * connection, and the client sees EPIPE instead of the answer).
 */
import type http from 'node:http';

export type BodyResult = { kind: 'ok'; body: Buffer } | { kind: 'too-large'; received: number } | { kind: 'timeout' } | { kind: 'aborted' };
export type DiscardResult = 'ended' | 'too-large' | 'timeout' | 'aborted';

interface Watch<T> {
  resolve: (v: T) => void;
  promise: Promise<T>;
}

function settleOnce<T>(cleanup: () => void): Watch<T> {
  let done = false;
  let outer!: (v: T) => void;
  const promise = new Promise<T>((r) => (outer = r));
  return {
    promise,
    resolve: (v) => {
      if (done) return;
      done = true;
      cleanup();
      outer(v);
    },
  };
}

/**
 * Calls `onData` for each chunk until the body ends, the request fails or
 * `deadlineAt` (epoch ms) passes; `onData` returns a result to stop early.
 */
function consume<T>(
  req: http.IncomingMessage,
  deadlineAt: number,
  onData: (chunk: Buffer) => T | undefined,
  onEnd: () => T,
  timeout: T,
  aborted: T,
): Promise<T> {
  if (req.readableEnded) return Promise.resolve(onEnd());
  const data = (c: Buffer): void => {
    const r = onData(c);
    if (r !== undefined) w.resolve(r);
  };
  const end = (): void => w.resolve(onEnd());
  const fail = (): void => w.resolve(aborted);
  const timer = setTimeout(() => w.resolve(timeout), Math.max(0, deadlineAt - Date.now()));
  timer.unref();
  const w = settleOnce<T>(() => {
    clearTimeout(timer);
    req.off('data', data);
    req.off('end', end);
    req.off('error', fail);
    req.off('aborted', fail);
    req.off('close', fail);
  });
  req.on('data', data);
  req.on('end', end);
  req.on('error', fail);
  req.on('aborted', fail);
  // 'close' before 'end' means the client went away mid-body.
  req.on('close', fail);
  return w.promise;
}

export function readBody(req: http.IncomingMessage, limit: number, deadlineAt: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ kind: 'too-large', received: 0 });
  const chunks: Buffer[] = [];
  let size = 0;
  return consume<BodyResult>(
    req,
    deadlineAt,
    (c) => {
      size += c.length;
      if (size > limit) {
        chunks.length = 0;
        return { kind: 'too-large', received: size };
      }
      chunks.push(c);
      return undefined;
    },
    () => ({ kind: 'ok', body: Buffer.concat(chunks, size) }),
    { kind: 'timeout' },
    { kind: 'aborted' },
  );
}

/** Reads and drops the rest of a body: at most `limit` more bytes, until `deadlineAt`. */
export function discardBody(req: http.IncomingMessage, limit: number, deadlineAt: number): Promise<DiscardResult> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve('too-large');
  let size = 0;
  return consume<DiscardResult>(
    req,
    deadlineAt,
    (c) => ((size += c.length) > limit ? 'too-large' : undefined),
    () => 'ended',
    'timeout',
    'aborted',
  );
}
