/**
 * A loopback HTTPS server that answers like the AWS services the tests call
 * (STS and EC2 query protocols, DynamoDB and KMS JSON, S3 REST-XML) and
 * records exactly what it received: raw headers in order and a hash of the
 * body, so tests can prove the proxy forwarded everything unchanged.
 */
import https from 'node:https';
import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';

export interface ReceivedRequest {
  method: string;
  url: string;
  host: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  bodyLength: number;
  bodySha256: string;
  /** Only kept for small bodies (≤ 64 KiB). */
  body: Buffer | null;
}

export interface FakeAws {
  port: number;
  requests: ReceivedRequest[];
  close(): Promise<void>;
}

function reply(req: http.IncomingMessage, body: Buffer): { status: number; type: string; text: string; headers?: Record<string, string> } {
  const host = (req.headers.host ?? '').split(':')[0] ?? '';
  const target = String(req.headers['x-amz-target'] ?? '');
  const text = body.toString('utf8');
  const url = req.url ?? '/';
  if (host.startsWith('sts.') || text.includes('Action=GetCallerIdentity') || url.includes('Action=GetCallerIdentity')) {
    return {
      status: 200,
      type: 'text/xml',
      text: '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/app-role/i-0a1b2c3d4e5f60718</Arn><UserId>AROAEXAMPLEROLEID0001:i-0a1b2c3d4e5f60718</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000001</RequestId></ResponseMetadata></GetCallerIdentityResponse>',
    };
  }
  if (host.startsWith('ec2.')) {
    return {
      status: 200,
      type: 'text/xml;charset=UTF-8',
      text: '<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>00000000-0000-0000-0000-000000000002</requestId><reservationSet/></DescribeInstancesResponse>',
    };
  }
  if (target.startsWith('DynamoDB_'))
    return { status: 200, type: 'application/x-amz-json-1.0', text: JSON.stringify({ Item: { pk: { S: 'k1' }, v: { N: '42' } } }) };
  if (target.startsWith('TrentService.')) {
    return {
      status: 200,
      type: 'application/x-amz-json-1.1',
      text: JSON.stringify({
        KeyId: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
        CiphertextBlob: Buffer.from('ciphertext').toString('base64'),
        EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      }),
    };
  }
  if (host.includes('.s3.') || host.startsWith('s3.')) {
    if (req.method === 'PUT')
      return { status: 200, type: '', text: '', headers: { etag: `"${createHash('md5').update(body).digest('hex')}"` } };
    if (req.method === 'GET')
      return {
        status: 200,
        type: 'application/octet-stream',
        text: 'hello from s3\n',
        headers: { etag: '"0123456789abcdef0123456789abcdef"' },
      };
    return { status: 200, type: 'application/xml', text: '' };
  }
  return { status: 200, type: 'application/json', text: '{}' };
}

export async function startFakeAws(tls: { certPem: string; keyPem: string }, opts: { keepBodies?: boolean } = {}): Promise<FakeAws> {
  const requests: ReceivedRequest[] = [];
  // Offers h2 at the TLS level too, so h2-only clients that are tunnelled (not intercepted) can handshake.
  const server = https.createServer({ cert: tls.certPem, key: tls.keyPem, ALPNProtocols: ['http/1.1', 'h2'] }, (req, res) => {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
      if (length <= 65_536 || opts.keepBodies) chunks.push(c);
    });
    req.on('end', () => {
      const body = length <= 65_536 || opts.keepBodies ? Buffer.concat(chunks) : Buffer.alloc(0);
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        host: req.headers.host ?? '',
        rawHeaders: [...req.rawHeaders],
        headers: req.headers,
        bodyLength: length,
        bodySha256: hash.digest('hex'),
        body: length <= 65_536 || opts.keepBodies ? body : null,
      });
      const r = reply(req, body);
      res.setHeader('x-amzn-requestid', randomUUID());
      for (const [k, v] of Object.entries(r.headers ?? {})) res.setHeader(k, v);
      if (r.type) res.setHeader('content-type', r.type);
      res.writeHead(r.status).end(r.text);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
