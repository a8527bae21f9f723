/**
 * The programs that run inside the namespaces of test/helpers/netns.ts for
 * the transparent end-to-end test, as child processes: a fake AWS host
 * (HTTPS on 443, plain HTTP on 80) that says who reached it, the AWS SDK for
 * JavaScript v3 with no proxy setting at all, and raw clients (a TLS hello
 * with a chosen SNI or none, garbage, half-open connections). Each prints
 * JSON lines on stdout. Run with the repository as the working directory, so
 * `@aws-sdk/*` resolve from its node_modules.
 */
import type { ChildProcess } from 'node:child_process';
import type { NsHost, RunResult } from './netns.js';

/** The fake AWS host: STS answers, S3 keeps objects in memory; one `request` line per request, with its peer. */
export const FAKE_AWS = `
import https from 'node:https';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
const [certFile, keyFile] = process.argv.slice(1);
const objects = new Map();
const STS = '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/app-role/i-0a1b2c3d4e5f60718</Arn><UserId>AROAEXAMPLEROLEID0001:i-0a1b2c3d4e5f60718</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000001</RequestId></ResponseMetadata></GetCallerIdentityResponse>';
function handle(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const host = (req.headers.host ?? '').replace(/:\\d+$/, '');
    console.log(JSON.stringify({ event: 'request', peer: req.socket.remoteAddress, host, method: req.method, url: req.url, bytes: body.length, tls: !!req.socket.encrypted }));
    res.setHeader('x-amzn-requestid', 'e2e-0001');
    if (host.startsWith('sts.')) return res.writeHead(200, { 'content-type': 'text/xml' }).end(STS);
    if (host.includes('.s3.')) {
      const key = host + (req.url ?? '/').split('?')[0];
      const etag = (b) => '"' + createHash('md5').update(b).digest('hex') + '"';
      if (req.method === 'PUT') {
        objects.set(key, body);
        return res.writeHead(200, { etag: etag(body) }).end();
      }
      const stored = objects.get(key);
      if (req.method === 'GET' && stored) return res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': stored.length, etag: etag(stored) }).end(stored);
      if (req.method === 'GET' && req.socket.encrypted === undefined) return res.writeHead(200, { 'content-type': 'text/plain' }).end('plain hello\\n');
      return res.writeHead(404, { 'content-type': 'application/xml' }).end('<Error><Code>NoSuchKey</Code></Error>');
    }
    res.writeHead(400).end();
  });
}
let up = 0;
const ready = () => { if (++up === 2) console.log(JSON.stringify({ event: 'listening' })); };
https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), ALPNProtocols: ['http/1.1'] }, handle).listen({ host: '::', port: 443 }, ready);
http.createServer(handle).listen({ host: '::', port: 80 }, ready);
`;

/**
 * The AWS SDK v3 as an application on a routed host would use it: no proxy,
 * no endpoint, no custom handler; it trusts NODE_EXTRA_CA_CERTS. `sts`: one
 * GetCallerIdentity; `all`: that, then a 32 MiB PutObject and GetObject.
 */
export const SDK_CLIENT = `
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { S3Client, PutObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
const what = process.argv[1];
const credentials = { accessKeyId: 'ASIAY34FZKBOKMUTVV7A', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLEe2e' };
const sha = (b) => createHash('sha256').update(b).digest('hex');
const out = {};
const sts = new STSClient({ region: 'us-east-1', credentials, maxAttempts: 1 });
out.account = (await sts.send(new GetCallerIdentityCommand({}))).Account;
if (what === 'all') {
  const s3 = new S3Client({ region: 'us-east-1', credentials, maxAttempts: 1 });
  const body = randomBytes(32 * 1024 * 1024);
  await s3.send(new PutObjectCommand({ Bucket: 'e2e-bucket', Key: 'blob.bin', Body: body }));
  const got = await s3.send(new GetObjectCommand({ Bucket: 'e2e-bucket', Key: 'blob.bin' }));
  const bytes = await got.Body.transformToByteArray();
  Object.assign(out, { sent: sha(body), received: sha(bytes), length: bytes.length });
  s3.destroy();
}
sts.destroy();
console.log(JSON.stringify(out));
`;

/**
 * One raw connection: `hello SNI|-` (a real TLS handshake with that SNI, or
 * none; then an HTTPS GET /), `bytes HEX`, or `http HOST` (a plain GET /).
 * Prints how it ended: `refused` (closed before the handshake completed,
 * with the TLS alert's error code when one came), or the first response line.
 */
export const RAW_CLIENT = `
import net from 'node:net';
import tls from 'node:tls';
const [host, port, kind, arg] = process.argv.slice(1);
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
setTimeout(() => done({ result: 'timeout' }), 8000).unref();
if (kind === 'hello') {
  const s = tls.connect({ host, port: Number(port), ...(arg === '-' ? {} : { servername: arg }), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  let secured = false;
  s.on('secureConnect', () => {
    secured = true;
    s.write('GET / HTTP/1.1\\r\\nHost: ' + arg + '\\r\\nConnection: close\\r\\n\\r\\n');
  });
  let text = '';
  s.on('data', (c) => (text += c));
  // Closed or failed before the handshake completed: refused (with the TLS alert's code when one came).
  s.on('end', () => done(secured ? { result: 'answered', status: text.split('\\r\\n')[0], body: text.split('\\r\\n\\r\\n')[1] ?? '' } : { result: 'refused', code: 'closed' }));
  s.on('error', (e) => done(secured ? { result: 'error', code: e.code ?? e.message } : { result: 'refused', code: e.code ?? e.message }));
} else {
  const s = net.connect({ host, port: Number(port) });
  let text = '';
  s.on('connect', () => s.write(kind === 'http' ? 'GET /object HTTP/1.1\\r\\nHost: ' + arg + '\\r\\nConnection: close\\r\\n\\r\\n' : Buffer.from(arg, 'hex')));
  s.on('data', (c) => (text += c));
  s.on('close', () => done({ result: 'closed', received: text.split('\\r\\n')[0] }));
  s.on('error', () => undefined);
}
`;

/** Opens N connections that never send a byte, in waves; prints `opened`, then `closed` once the far end closed them all. */
export const HALF_OPEN = `
import net from 'node:net';
const [host, port, n] = process.argv.slice(1);
const total = Number(n);
let closed = 0;
for (let wave = 0; wave < total; wave += 250) {
  await Promise.all(Array.from({ length: Math.min(250, total - wave) }, () => new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(port) });
    s.on('connect', resolve);
    s.on('error', reject);
    s.on('close', () => { if (++closed === total) console.log(JSON.stringify({ event: 'closed', closed })); });
  })));
}
console.log(JSON.stringify({ event: 'opened', opened: total }));
`;

/** Counts the connections that reach ip:port (a destination the agent must never dial). */
export const COUNTING_LISTENER = `
import net from 'node:net';
const [host, port] = process.argv.slice(1);
let n = 0;
net.createServer((s) => { n++; console.log(JSON.stringify({ event: 'connection', n, peer: s.remoteAddress })); s.destroy(); })
  .listen({ host, port: Number(port) }, () => console.log(JSON.stringify({ event: 'listening' })));
`;

export function nodeScript(h: NsHost, script: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
  return h.spawn(process.execPath, ['--input-type=module', '-e', script, ...args], env ? { env } : undefined);
}

export async function runScript(h: NsHost, script: string, args: readonly string[], timeoutMs = 20_000): Promise<RunResult> {
  return h.run(process.execPath, ['--input-type=module', '-e', script, ...args], { timeoutMs });
}

/** The JSON lines a child printed so far, kept up to date. */
export function jsonLines(child: ChildProcess): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout?.on('data', (c: Buffer) => {
    partial += c.toString();
    let i: number;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a JSON line (a warning): ignored
      }
    }
  });
  return lines;
}
