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
