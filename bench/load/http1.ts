/**
 * A minimal HTTP/1.1 client connection for the load generator: one request
 * at a time on a socket, the response parsed incrementally (Content-Length
 * or chunked), its body counted and never copied. Cheaper per request than
 * a general client, so the generator spends its CPU on TLS and syscalls.
 *
 *   send(buf) ─▶ socket.write ─▶ 'data' ─▶ head? ─▶ body bytes counted ─▶ resolve {status, bodyBytes}
 */
import type { Duplex } from 'node:stream';

export interface Response {
  status: number;
  bodyBytes: number;
  /** The server asked to close (Connection: close) or the body ran to EOF. */
  close: boolean;
}

type BodyMode =
  | { kind: 'length'; remaining: number }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-crlf' | 'trailer'; remaining: number; line: string }
  | { kind: 'eof' };

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class Http1Connection {
  private head: Buffer | null = null;
  private status = 0;
  private body: BodyMode | null = null;
  private bodyBytes = 0;
  private closeAfter = false;
  private pending: { resolve: (r: Response) => void; reject: (e: Error) => void } | null = null;
  private dead: Error | null = null;
  private noBody = false;

  constructor(readonly socket: Duplex) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.fail(err));
    socket.on('close', () => {
      if (this.body?.kind === 'eof' && this.pending) return this.complete();
      this.fail(new Error('connection closed before the response ended'));
    });
  }

  get usable(): boolean {
    return this.dead === null && !this.socket.destroyed;
  }

  /** Sends one complete request and resolves with the parsed response. */
  send(request: Buffer, opts: { head?: boolean } = {}): Promise<Response> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.pending) return Promise.reject(new Error('one request at a time'));
    this.noBody = opts.head === true;
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(request);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.dead ??= err;
    const p = this.pending;
    this.pending = null;
    p?.reject(err);
  }

  private complete(): void {
    const p = this.pending;
    const r: Response = { status: this.status, bodyBytes: this.bodyBytes, close: this.closeAfter || this.body?.kind === 'eof' };
    this.pending = null;
    this.head = null;
    this.body = null;
    this.bodyBytes = 0;
    this.closeAfter = false;
    p?.resolve(r);
  }

  private onData(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (!this.pending) return; // unsolicited bytes: ignore
      if (this.body === null) {
        const buf = this.head ? Buffer.concat([this.head, data]) : data;
        const end = buf.indexOf(CRLFCRLF);
        if (end < 0) {
          if (buf.length > 64 * 1024) return this.fail(new Error('response head too large'));
          this.head = buf;
          return;
        }
        this.head = null;
        this.parseHead(buf.subarray(0, end).toString('latin1'));
        data = buf.subarray(end + 4);
        const body = this.body as BodyMode | null; // parseHead set it, or failed
        if (body === null) return;
        if (body.kind === 'length' && body.remaining === 0) {
          this.complete();
          continue;
        }
      }
      data = this.consumeBody(data);
    }
  }

  private parseHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) return this.fail(new Error(`bad status line: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`));
    this.status = Number(m[1]);
    let length: number | null = null;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] ?? '';
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line
        .slice(colon + 1)
        .trim()
        .toLowerCase();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding' && value.includes('chunked')) chunked = true;
      else if (name === 'connection' && value.includes('close')) this.closeAfter = true;
    }
    if (this.noBody || this.status === 204 || this.status === 304 || (this.status >= 100 && this.status < 200))
      this.body = { kind: 'length', remaining: 0 };
    else if (chunked) this.body = { kind: 'chunked', state: 'size', remaining: 0, line: '' };
    else if (length !== null) this.body = { kind: 'length', remaining: length };
    else this.body = { kind: 'eof' };
  }

  /** Consumes body bytes; returns what belongs to nothing (there is no pipelining, so normally empty). */
  private consumeBody(data: Buffer): Buffer {
    const body = this.body;
    if (!body) return data;
    if (body.kind === 'eof') {
      this.bodyBytes += data.length;
      return Buffer.alloc(0);
    }
    if (body.kind === 'length') {
      const n = Math.min(body.remaining, data.length);
      body.remaining -= n;
      this.bodyBytes += n;
      if (body.remaining === 0) this.complete();
      return data.subarray(n);
    }
    let i = 0;
    while (i < data.length) {
      if (body.state === 'data') {
        const n = Math.min(body.remaining, data.length - i);
        body.remaining -= n;
        this.bodyBytes += n;
        i += n;
        if (body.remaining === 0) body.state = 'data-crlf';
        continue;
      }
      const nl = data.indexOf(10, i);
      if (nl < 0) {
        body.line += data.subarray(i).toString('latin1');
        return Buffer.alloc(0);
      }
      const line = (body.line + data.subarray(i, nl).toString('latin1')).replace(/\r$/, '');
      body.line = '';
      i = nl + 1;
      if (body.state === 'data-crlf') {
        body.state = 'size';
      } else if (body.state === 'size') {
        const size = parseInt(line.split(';')[0] ?? '', 16);
        if (Number.isNaN(size)) {
          this.fail(new Error('bad chunk size'));
          return Buffer.alloc(0);
        }
        if (size === 0) body.state = 'trailer';
        else {
          body.state = 'data';
          body.remaining = size;
        }
      } else if (line === '') {
        this.complete();
        return data.subarray(i);
      }
    }
    return Buffer.alloc(0);
  }
}
