/** Raw-socket helpers: speak HTTP/1.1 to the proxy byte by byte, as hostile or odd clients do. */
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export function parseResponseHead(text: string): RawResponse | null {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, text };
}

/** Sends `payload`, collects everything until the server closes (or `timeoutMs`). */
export function rawExchange(
  port: number,
  payload: string | Buffer,
  opts: { timeoutMs?: number; localAddress?: string; keepOpen?: boolean } = {},
): Promise<{ response: RawResponse | null; text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    let text = '';
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ response: parseResponseHead(text), text, closed });
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 3_000);
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (opts.keepOpen && parseResponseHead(text)) finish();
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('error', () => undefined);
    socket.write(payload);
  });
}

/** Opens a CONNECT tunnel; resolves with the proxy's answer and the socket (open on 200). */
export function connectTunnel(
  proxyPort: number,
  authority: string,
  opts: { localAddress?: string; timeoutMs?: number } = {},
): Promise<{ status: number; headers: Record<string, string>; socket: net.Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxyPort, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to CONNECT ${authority}`));
    }, opts.timeoutMs ?? 5_000);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      const head = parseResponseHead(buf.subarray(0, end + 4).toString('latin1'));
      if (!head) return reject(new Error('bad response head'));
      resolve({ status: head.status, headers: head.headers, socket, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

/** The body of a raw response, de-chunked when Transfer-Encoding is chunked. */
export function responseBody(text: string): string {
  const head = parseResponseHead(text);
  const rest = text.slice(text.indexOf('\r\n\r\n') + 4);
  if (!head || !/chunked/i.test(head.headers['transfer-encoding'] ?? '')) return rest;
  let out = '';
  let i = 0;
  while (i < rest.length) {
    const eol = rest.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(rest.slice(i, eol), 16);
    if (!size) break;
    out += rest.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
  return out;
}

export interface SendThenReadResult {
  response: RawResponse | null;
  /** The first socket error (EPIPE, ECONNRESET…), or null. */
  error: string | null;
  /** Body bytes handed to the socket before it failed or the body was done. */
  written: number;
}

/**
 * A client that reads the answer only after it has sent the whole body (with
 * Content-Length from `head`, or chunked without one), as
 * curl and clients with a busy event loop do: it does not read the socket
 * while sending, so an answer followed by a reset before it read is lost to
 * it, and it sees EPIPE or ECONNRESET instead.
 */
export function sendThenRead(
  port: number,
  head: string,
  bodyBytes: number,
  opts: { chunked?: boolean; chunkBytes?: number } = {},
): Promise<SendThenReadResult> {
  const chunkBytes = opts.chunkBytes ?? 64 * 1024;
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.pause();
    let error: string | null = null;
    let written = 0;
    let text = '';
    s.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
    const finish = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ response: parseResponseHead(text), error, written });
    };
    const timer = setTimeout(finish, 10_000);
    s.on('connect', () => {
      void (async () => {
        s.write(head);
        while (written < bodyBytes && error === null && !s.destroyed) {
          const n = Math.min(chunkBytes, bodyBytes - written);
          const data = Buffer.alloc(n, 0x61);
          const flushed = s.write(opts.chunked ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), data, Buffer.from('\r\n')]) : data);
          written += n;
          if (!flushed) await new Promise((r) => (s.once('drain', r), s.once('close', r)));
        }
        if (opts.chunked && error === null && !s.destroyed) s.write('0\r\n\r\n');
        s.on('data', (c: Buffer) => (text += c.toString('latin1')));
        s.on('end', finish);
        s.on('close', finish);
        s.resume();
      })();
    });
  });
}

/**
 * A request whose body trickles in one byte every `everyMs` after `head`
 * (which declares a larger Content-Length), as a slow or hostile client sends
 * it. `answered` is the answer's status once the server answers, or null
 * when it closed without one.
 */
export function tricklePost(
  port: number,
  head: string,
  everyMs: number,
  localAddress?: string,
): { answered: Promise<number | null>; stop: () => void } {
  const s = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
  s.on('error', () => undefined);
  let text = '';
  let timer: NodeJS.Timeout | undefined;
  const answered = new Promise<number | null>((resolve) => {
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const r = parseResponseHead(text);
      if (r) resolve(r.status);
    });
    s.on('close', () => {
      clearInterval(timer);
      resolve(parseResponseHead(text)?.status ?? null);
    });
  });
  s.on('connect', () => {
    s.write(head);
    timer = setInterval(() => s.write('x'), everyMs);
  });
  return {
    answered,
    stop: () => {
      clearInterval(timer);
      s.destroy();
    },
  };
}
