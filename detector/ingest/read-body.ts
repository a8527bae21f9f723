/** Reads a request body up to a limit; a larger body is refused without buffering it. */
import type http from 'node:http';

export type BodyResult = { kind: 'ok'; body: Buffer } | { kind: 'too-large' } | { kind: 'aborted' };

export function readBody(req: http.IncomingMessage, limit: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.resolve({ kind: 'too-large' });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        resolve({ kind: 'too-large' });
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve({ kind: 'ok', body: Buffer.concat(chunks, size) });
      done = true;
    });
    req.on('error', () => {
      if (!done) resolve({ kind: 'aborted' });
      done = true;
    });
    req.on('aborted', () => {
      if (!done) resolve({ kind: 'aborted' });
      done = true;
    });
  });
}
