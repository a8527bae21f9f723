/**
 * A stand-in detector for telemetry: accepts every POST (gzip JSON batches
 * with `X-Egress-Witness-Signature`), verifies nothing, answers 200, counts
 * batches and bytes. It sends {port} over IPC when listening and answers
 * {kind:'stats'} with its counters.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

let batches = 0;
let bytes = 0;
let signed = 0;

const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  let n = 0;
  req.on('data', (c: Buffer) => (n += c.length));
  req.on('end', () => {
    if (req.method === 'POST') {
      batches++;
      bytes += n;
      if (req.headers['x-egress-witness-signature']) signed++;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"accepted":true}');
  });
});

process.on('message', (m: { kind: string }) => {
  if (m.kind === 'stats') process.send?.({ kind: 'stats', batches, bytes, signed });
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => process.send?.({ kind: 'ready', port: (server.address() as AddressInfo).port }));
