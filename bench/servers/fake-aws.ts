/**
 * The "AWS" endpoint every proxy forwards to, a process of its own on
 * loopback: HTTPS with the bench's fake CA, plus a plain TCP "hold" port for
 * idle tunnels. It verifies nothing.
 *
 *   POST /            → 200, 1 KiB XML (GetCallerIdentity-shaped), request body drained
 *   GET  /bulk?bytes=N → 200, N bytes streamed with backpressure
 *   PUT  /bulk         → 200 once the body is drained
 *   hold port          → accepts and keeps every connection, silently
 *   plain HTTP port    → the same answers without TLS (absolute-form plain-HTTP rows)
 *
 * argv: <cert.pem> <key.pem>; it sends {httpsPort, holdPort, httpPort} over IPC when listening.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) throw new Error('usage: fake-aws.js CERT KEY');

const answer = Buffer.from(
  `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/bench/i-0123456789abcdef0</Arn><UserId>AROAEXAMPLE:i-0123456789abcdef0</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata></GetCallerIdentityResponse>`.padEnd(
    1024,
    ' ',
  ),
);
const chunk = Buffer.alloc(256 * 1024, 0x61);
let requests = 0;
let tlsConnections = 0;

const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  requests++;
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/bulk')) {
    const total = Number(/bytes=(\d+)/.exec(url)?.[1] ?? 0);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total, 'x-amz-request-id': 'bench' });
    let left = total;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
    req.resume();
    return;
  }
  let received = 0;
  req.on('data', (c: Buffer) => (received += c.length));
  req.on('end', () => {
    if (url.startsWith('/bulk')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(received).length }).end(String(received));
      return;
    }
    res
      .writeHead(200, {
        'content-type': 'text/xml',
        'content-length': answer.length,
        'x-amzn-requestid': '00000000-0000-0000-0000-000000000000',
      })
      .end(answer);
  });
};
const serverOptions = { keepAliveTimeout: 120_000, headersTimeout: 60_000, requestTimeout: 0, noDelay: true };
const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), ...serverOptions }, handler);
const plain = http.createServer(serverOptions, handler);
plain.on('clientError', (_err, socket) => socket.destroy());
server.on('clientError', (_err, socket) => socket.destroy());
server.on('tlsClientError', () => undefined);
server.on('secureConnection', () => tlsConnections++);

const held = new Set<net.Socket>();
const hold = net.createServer((s) => {
  held.add(s);
  s.on('error', () => undefined);
  s.once('close', () => held.delete(s));
  s.resume();
});

process.on('message', (m: { kind: string }) => {
  if (m.kind === 'stats') process.send?.({ kind: 'stats', held: held.size, requests, tlsConnections });
  if (m.kind === 'close-held') {
    for (const s of held) s.destroy();
    process.send?.({ kind: 'closed-held' });
  }
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  hold.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    plain.listen(0, '127.0.0.1', () => {
      process.send?.({
        kind: 'ready',
        httpsPort: (server.address() as AddressInfo).port,
        holdPort: (hold.address() as AddressInfo).port,
        httpPort: (plain.address() as AddressInfo).port,
      });
    });
  });
});
