/**
 * Reads the client's first bytes — without consuming them — until the TLS
 * ClientHello can be parsed, so the agent can decide between interception
 * and a plain tunnel before any TLS starts. Bounded in bytes and time.
 */
import type net from 'node:net';
import { parseClientHello, MAX_CLIENT_HELLO_BYTES, type ClientHelloResult } from '../tls/client-hello.js';

export type PeekResult = { hello: ClientHelloResult; bytes: Buffer } | { hello: null; bytes: Buffer; cause: 'timeout' | 'closed' };

export function peekClientHello(socket: net.Socket, head: Buffer, timeoutMs: number): Promise<PeekResult> {
  return new Promise((resolve) => {
    let buf = head;
    let settled = false;
    const finish = (r: PeekResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('end', onClose);
      socket.pause();
      resolve(r);
    };
    const check = (): void => {
      const hello = parseClientHello(buf);
      if (hello.kind !== 'incomplete' || buf.length >= MAX_CLIENT_HELLO_BYTES) finish({ hello, bytes: buf });
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      check();
    };
    const onClose = (): void => finish({ hello: null, bytes: buf, cause: 'closed' });
    const timer = setTimeout(() => finish({ hello: null, bytes: buf, cause: 'timeout' }), timeoutMs);
    if (buf.length > 0) check();
    if (settled) return;
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('end', onClose);
    socket.resume();
  });
}
