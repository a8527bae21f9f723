/**
 * How the load generator reaches the fake AWS server: directly over TLS, or
 * through a proxy with CONNECT and then TLS inside the tunnel. Every TLS
 * handshake is a full one (no session reuse), and the server certificate is
 * always verified against the CA the target names.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface TargetSpec {
  /** Proxy to CONNECT through; null = connect to `origin` directly. */
  proxy: { host: string; port: number } | null;
  /** The CONNECT request-target ("host:port") for normal traffic. */
  authority: string;
  /** Where a direct connection goes (proxy === null). */
  origin: { host: string; port: number };
  /** SNI and the name the certificate must carry. */
  servername: string;
  /** The CA the client trusts for this target (the fake server's, or the inspecting proxy's). */
  caPem: string;
}

const contexts = new Map<string, tls.SecureContext>();

function contextFor(caPem: string): tls.SecureContext {
  let ctx = contexts.get(caPem);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca: caPem });
    contexts.set(caPem, ctx);
  }
  return ctx;
}

export class DialError extends Error {
  constructor(
    readonly stage: 'connect' | 'proxy' | 'tls',
    message: string,
  ) {
    super(`${stage}: ${message}`);
  }
}

/** TCP to the proxy, `CONNECT authority`, resolves with the socket once a 2xx came back. */
export function openTunnel(proxy: { host: string; port: number }, authority: string, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port, noDelay: true });
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new DialError('proxy', 'CONNECT timed out')), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err instanceof DialError ? err : new DialError('connect', err.message));
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16_384) fail(new DialError('proxy', 'CONNECT response head too large'));
        return;
      }
      const statusLine = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
      if (!m || !m[1]?.startsWith('2')) return fail(new DialError('proxy', `CONNECT answered "${statusLine}"`));
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      socket.on('error', () => undefined); // the TLS socket on top reports failures
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('connect', () =>
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: egress-witness-bench/1\r\n\r\n`),
    );
  });
}

/** TLS over `socket` (or a fresh TCP connection to `origin`), verified for `servername`. */
export function openTls(target: TargetSpec, socket: net.Socket | null, timeoutMs = 10_000): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const options: tls.ConnectionOptions = {
      secureContext: contextFor(target.caPem),
      servername: target.servername,
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: true,
    };
    const secure = socket
      ? tls.connect({ ...options, socket })
      : tls.connect({ ...options, host: target.origin.host, port: target.origin.port });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new DialError('tls', 'handshake timed out'));
    }, timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.off('error', onError);
      secure.setNoDelay(true);
      resolve(secure);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      secure.destroy();
      reject(new DialError('tls', err.message));
    };
    secure.once('error', onError);
  });
}

/** A verified TLS connection to the fake server, through the target's proxy if it has one. */
export async function dial(target: TargetSpec, authority = target.authority): Promise<tls.TLSSocket> {
  const raw = target.proxy ? await openTunnel(target.proxy, authority) : null;
  try {
    return await openTls(target, raw);
  } catch (err) {
    raw?.destroy();
    throw err;
  }
}
