// TLS inspection with real clients: the AWS SDK v3 through the agent (trusting the agent's CA) to a loopback
// "fake AWS" (trusted by the agent through upstream.ca_file). The fake must receive byte-identical requests,
// and each observation must name the key, its kind and account, the service, region and action.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import type http from 'node:http';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { S3Client, PutObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { EC2Client, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { KMSClient, EncryptCommand } from '@aws-sdk/client-kms';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createInspectionCa } from '../../../agent/tls/ca.js';
import { writeCaFiles } from '../../../agent/tls/ca-files.js';
import { createTestCa } from '../../helpers/pki.js';
import { startFakeAws, type FakeAws } from '../../helpers/fake-aws.js';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { TunnelAgent } from '../../helpers/tunnel-agent.js';
import { connectTunnel } from '../../helpers/raw.js';

const KEY = 'ASIAY34FZKBOKMUTVV7A';
const ACCOUNT = '609629065308';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENvalueThatMustNeverBeLogged0123456789';
const credentials = { accessKeyId: KEY, secretAccessKey: SECRET, sessionToken: TOKEN };

let dir: string;
let fake: FakeAws;
let agent: TestAgent;
let inspectionCaPem: string;
let upstreamCaPem: string;
let httpsAgent: TunnelAgent;

/** Headers as the SDK sent them (after signing), captured in the SDK's own middleware stack. */
const sent: Record<string, string>[] = [];
function capture<C extends { middlewareStack: { add(mw: unknown, opts: unknown): void } }>(client: C): C {
  client.middlewareStack.add(
    (next: (a: unknown) => Promise<unknown>) => async (args: { request: { headers: Record<string, string> } }) => {
      sent.push({ ...args.request.headers });
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'captureSignedHeaders' },
  );
  return client;
}

function clientConfig() {
  return { region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ew-inspect-'));
  const upstreamCa = await createTestCa('fake AWS CA');
  upstreamCaPem = upstreamCa.certPem;
  writeFileSync(join(dir, 'upstream-ca.pem'), upstreamCa.certPem);
  fake = await startFakeAws(
    await upstreamCa.issue({
      dns: ['*.us-east-1.amazonaws.com', '*.s3.us-east-1.amazonaws.com', 'sts.amazonaws.com', 'passthrough.us-east-1.amazonaws.com'],
    }),
  );
  const ca = await createInspectionCa({ permittedDomains: ['amazonaws.com', 'api.aws'] });
  inspectionCaPem = ca.certPem;
  const paths = await writeCaFiles(join(dir, 'ca'), ca);
  agent = await startAgent({
    proxy: { allow_destination_cidrs: ['127.0.0.1/32'] },
    inspect: {
      ca_cert: paths.certPath,
      ca_key: paths.keyPath,
      hosts: ['*.amazonaws.com'],
      passthrough: ['passthrough.us-east-1.amazonaws.com'],
    },
    upstream: { ca_file: join(dir, 'upstream-ca.pem'), resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}` } },
  });
  httpsAgent = new TunnelAgent({ host: '127.0.0.1', port: agent.proxyPort }, { ca: inspectionCaPem });
}, 30_000);

afterAll(async () => {
  httpsAgent?.destroy();
  await agent?.stop();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The last request the fake received for `host`, checked header-for-header against what the SDK sent. */
function expectForwardedUnchanged(host: string): (typeof fake.requests)[number] {
  const got = [...fake.requests].reverse().find((r) => r.host === host);
  expect(got, `fake AWS received a request for ${host}`).toBeDefined();
  const mine = sent.at(-1)!;
  const hop = new Set(['connection', 'expect', 'transfer-encoding', 'keep-alive']);
  for (const [name, value] of Object.entries(mine)) {
    if (hop.has(name.toLowerCase())) continue;
    expect(got!.headers[name.toLowerCase()], `header ${name}`).toBe(value);
  }
  return got!;
}

async function observation(predicate: (o: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  await new Promise((r) => setTimeout(r, 30));
  await agent.flush();
  const o = agent.observations().filter(predicate).at(-1);
  expect(o, 'an observation was written').toBeDefined();
  return o!;
}

const attributed = {
  mode: 'inspect',
  accessKeyId: KEY,
  keyKind: 'temporary',
  accountId: ACCOUNT,
  sessionToken: true,
  auth: 'header',
  network: 'lab',
  clientIp: '127.0.0.1',
};

describe('inspect mode with the AWS SDK', () => {
  it('STS GetCallerIdentity (query protocol)', async () => {
    const sts = capture(new STSClient(clientConfig()));
    expect((await sts.send(new GetCallerIdentityCommand({}))).Account).toBe('123456789012');
    const got = expectForwardedUnchanged('sts.us-east-1.amazonaws.com');
    expect(got.body?.toString()).toBe('Action=GetCallerIdentity&Version=2011-06-15');
    expect(await observation((o) => o.action === 'GetCallerIdentity')).toMatchObject({
      ...attributed,
      signatureVersion: 'v4',
      aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
      host: 'sts.us-east-1.amazonaws.com',
      status: { '2xx': 1 },
    });
  });

  it('DynamoDB GetItem (JSON, X-Amz-Target)', async () => {
    const ddb = capture(new DynamoDBClient(clientConfig()));
    const out = await ddb.send(new GetItemCommand({ TableName: 'orders', Key: { pk: { S: 'k1' } } }));
    expect(out.Item?.v?.N).toBe('42');
    const got = expectForwardedUnchanged('dynamodb.us-east-1.amazonaws.com');
    expect(got.bodySha256).toBe(
      createHash('sha256')
        .update(JSON.stringify({ TableName: 'orders', Key: { pk: { S: 'k1' } } }))
        .digest('hex'),
    );
    expect(await observation((o) => o.action === 'GetItem')).toMatchObject({
      ...attributed,
      aws: { service: 'dynamodb', region: 'us-east-1' },
    });
  });

  it('EC2 DescribeInstances (ec2Query, action in the form body)', async () => {
    const ec2 = capture(new EC2Client(clientConfig()));
    await ec2.send(new DescribeInstancesCommand({}));
    expectForwardedUnchanged('ec2.us-east-1.amazonaws.com');
    expect(await observation((o) => o.action === 'DescribeInstances')).toMatchObject({
      ...attributed,
      aws: { service: 'ec2', region: 'us-east-1' },
    });
  });

  it('KMS Encrypt (JSON 1.1)', async () => {
    const kms = capture(new KMSClient(clientConfig()));
    const out = await kms.send(new EncryptCommand({ KeyId: 'alias/app', Plaintext: Buffer.from('attack at dawn') }));
    expect(out.KeyId).toContain('arn:aws:kms');
    expectForwardedUnchanged('kms.us-east-1.amazonaws.com');
    expect(await observation((o) => o.action === 'Encrypt')).toMatchObject({ ...attributed, aws: { service: 'kms', region: 'us-east-1' } });
  });

  it('S3 PutObject of a 50 MiB stream passes byte-for-byte (streaming, chunked signing)', async () => {
    const size = 50 * 1024 * 1024;
    const block = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
    const expected = createHash('sha256');
    for (let i = 0; i < 50; i++) expected.update(block);
    const s3 = capture(new S3Client(clientConfig()));
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 50; i++) yield block;
      })(),
    );
    const rssBefore = process.memoryUsage().rss;
    await s3.send(new PutObjectCommand({ Bucket: 'data-bucket', Key: 'big/object.bin', Body: body, ContentLength: size }));
    const got = expectForwardedUnchanged('data-bucket.s3.us-east-1.amazonaws.com');
    const chunked = /aws-chunked/.test(String(got.headers['content-encoding'] ?? ''));
    // The fake hashes the raw body; for aws-chunked bodies compare the decoded length and the announced one.
    if (!chunked) expect(got.bodySha256).toBe(expected.digest('hex'));
    else expect(Number(got.headers['x-amz-decoded-content-length'])).toBe(size);
    expect(got.bodyLength).toBe(Number(got.headers['content-length'] ?? got.bodyLength));
    expect(got.bodyLength).toBeGreaterThanOrEqual(size);
    // constant memory: the agent did not buffer the body (generous bound: the test process holds client + agent)
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
    expect(await observation((o) => o.action === 'PutObject')).toMatchObject({
      ...attributed,
      aws: { service: 's3', region: 'us-east-1' },
    });
    const put = agent
      .observations()
      .filter((o) => o.action === 'PutObject')
      .at(-1)!;
    expect(put.bytesUp as number).toBeGreaterThanOrEqual(size);
  });

  it('S3 presigned GET (query auth)', async () => {
    const s3 = new S3Client({ region: 'us-east-1', credentials });
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'data-bucket', Key: 'report.csv' }), { expiresIn: 300 });
    const text = await new Promise<string>((resolve, reject) => {
      https
        .get(url, { agent: httpsAgent }, (res) => {
          let t = '';
          res.on('data', (c: Buffer) => (t += c.toString()));
          res.on('end', () => resolve(t));
        })
        .on('error', reject);
    });
    expect(text).toBe('hello from s3\n');
    const got = [...fake.requests].reverse().find((r) => r.url.startsWith('/report.csv'))!;
    expect(got.url).toBe(new URL(url).pathname + new URL(url).search);
    expect(await observation((o) => o.action === 'GetObject' && o.auth === 'query')).toMatchObject({
      ...attributed,
      auth: 'query',
      aws: { service: 's3', region: 'us-east-1' },
    });
  });
});

function rawHttps(host: string, headers: Record<string, string>, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: 443, path, method: 'GET', agent: httpsAgent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('attribution of hand-made requests', () => {
  it('parses an S3 SigV2 header', async () => {
    expect(
      await rawHttps(
        'legacy.s3.us-east-1.amazonaws.com',
        { authorization: 'AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=' },
        '/photos/puppy.jpg',
      ),
    ).toBe(200);
    expect(await observation((o) => o.host === 'legacy.s3.us-east-1.amazonaws.com')).toMatchObject({
      accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
      keyKind: 'long-term',
      signatureVersion: 'v2',
      sessionToken: false,
      action: 'GetObject',
    });
  });

  it('parses a SigV4A header with its region set', async () => {
    const auth = `AWS4-ECDSA-P256-SHA256 Credential=${KEY}/20261125/s3/aws4_request, SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=3045022100${'ab'.repeat(32)}`;
    expect(
      await rawHttps('mrap.s3.us-east-1.amazonaws.com', {
        authorization: auth,
        'x-amz-region-set': 'us-east-1',
        'x-amz-date': '20261125T120000Z',
        'x-amz-security-token': TOKEN,
      }),
    ).toBe(200);
    expect(await observation((o) => o.host === 'mrap.s3.us-east-1.amazonaws.com')).toMatchObject({
      accessKeyId: KEY,
      signatureVersion: 'v4a',
      sessionToken: true,
      aws: { service: 's3', region: 'us-east-1' },
    });
  });

  it('forwards a malformed Authorization anyway and counts it as unattributed', async () => {
    const before =
      (await agent.app.registry.getSingleMetricAsString('egress_witness_unattributed_requests_total')).match(
        /reason="bad-authorization"} (\d+)/,
      )?.[1] ?? '0';
    expect(
      await rawHttps(
        'sts.us-east-1.amazonaws.com',
        { authorization: 'AWS4-HMAC-SHA256 Credential=short/x, Signature=zz' },
        '/?Action=GetCallerIdentity',
      ),
    ).toBe(200);
    const after = (await agent.app.registry.getSingleMetricAsString('egress_witness_unattributed_requests_total')).match(
      /reason="bad-authorization"} (\d+)/,
    )?.[1];
    expect(Number(after)).toBe(Number(before) + 1);
    const got = fake.requests.at(-1)!;
    expect(got.headers.authorization).toBe('AWS4-HMAC-SHA256 Credential=short/x, Signature=zz');
  });
});

describe('request heads the agent could not record truthfully', () => {
  /** A request through the inspecting tunnel to `host` with `headers` as given (arrays: repeated lines). */
  function headersThrough(host: string, headers: http.OutgoingHttpHeaders): Promise<{ status: number; reason: unknown }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        // servername: Node takes the TLS name from a Host header otherwise.
        { host, servername: host, port: 443, path: '/?Action=GetCallerIdentity', method: 'GET', agent: httpsAgent, headers },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.headers['x-egress-witness-error'] }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }
  const signed = (key: string) =>
    `AWS4-HMAC-SHA256 Credential=${key}/20261125/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'ab'.repeat(32)}`;

  it.each([
    [
      'a second Authorization (the first key would be credited, both sent)',
      { authorization: [signed('ASIADECOYDECOYDECOY1'), signed(KEY)] } as unknown as http.OutgoingHttpHeaders,
      'repeated-authorization',
    ],
    ['a Host naming another host than the tunnel', { host: 'other.us-east-1.amazonaws.com' }, 'host-mismatch'],
    ['a Host with another port', { host: 'sts.us-east-1.amazonaws.com:8443' }, 'host-mismatch'],
  ])('%s: 400 with the reason, recorded, never forwarded', async (_name, headers, reason) => {
    const forwarded = fake.requests.length;
    expect(await headersThrough('sts.us-east-1.amazonaws.com', headers)).toEqual({ status: 400, reason });
    expect(fake.requests.length).toBe(forwarded);
    expect(await observation((o) => o.reason === reason)).toMatchObject({
      host: 'sts.us-east-1.amazonaws.com',
      outcome: 'client_error',
      status: { '4xx': 1 },
    });
    const line = agent.logs.lines.filter((l) => l.event === 'refused').at(-1);
    expect(line).toMatchObject({ msg: 'inspected request refused', kind: 'invalid', mode: 'inspect', reason });
  });

  it('the same host in another case, with a trailing dot or its port, is the same host', async () => {
    for (const host of ['STS.us-east-1.amazonaws.com.', 'sts.us-east-1.amazonaws.com:443'])
      expect(await headersThrough('sts.us-east-1.amazonaws.com', { host })).toEqual({ status: 200, reason: undefined });
  });
});

describe('what is never intercepted', () => {
  function tlsThrough(host: string, ca: string): Promise<{ ok: boolean; issuer?: string; error?: string }> {
    return new Promise((resolve) => {
      void connectTunnel(agent.proxyPort, `${host}:443`).then((t) => {
        const s = tls.connect({ socket: t.socket, servername: host, ca, ALPNProtocols: ['http/1.1'] });
        s.once('secureConnect', () => {
          const issuer = String(s.getPeerCertificate().issuer?.CN);
          s.destroy();
          resolve({ ok: true, issuer });
        });
        s.once('error', (err) => {
          t.socket.destroy(); // as real clients do: hang up the connection
          resolve({ ok: false, error: err.message });
        });
      });
    });
  }

  it('passthrough hosts reach the real certificate', async () => {
    expect(await tlsThrough('passthrough.us-east-1.amazonaws.com', upstreamCaPem)).toEqual({ ok: true, issuer: 'fake AWS CA' });
  });

  it('a client that rejects the agent certificate is recorded, and the host is tunnelled on the next attempt', async () => {
    const host = 'pinned.us-east-1.amazonaws.com';
    const first = await tlsThrough(host, upstreamCaPem); // trusts only the real CA: rejects the agent's leaf
    expect(first.ok).toBe(false);
    for (let i = 0; i < 100 && agent.logs.find('tls_intercept_failed').every((l) => l.host !== host); i++)
      await new Promise((r) => setTimeout(r, 20));
    const metrics = await agent.app.registry.getSingleMetricAsString('egress_witness_tls_intercept_failures_total');
    expect(metrics).toMatch(/cause="cert-rejected"} 1/);
    expect(agent.logs.find('tls_intercept_failed').at(-1)).toMatchObject({ cause: 'cert-rejected', host, passthrough_next: true });
    const second = await tlsThrough(host, upstreamCaPem);
    expect(second).toMatchObject({ ok: true, issuer: 'fake AWS CA' });
  });

  it('h2-only clients are tunnelled without interception', async () => {
    const host = 'h2only.us-east-1.amazonaws.com';
    const r = await new Promise<{ ok: boolean; issuer?: string }>((resolve) => {
      void connectTunnel(agent.proxyPort, `${host}:443`).then((t) => {
        const s = tls.connect({ socket: t.socket, servername: host, ca: upstreamCaPem, ALPNProtocols: ['h2'] });
        s.once('secureConnect', () => {
          resolve({ ok: true, issuer: String(s.getPeerCertificate().issuer?.CN) });
          s.destroy();
        });
        s.once('error', (e) => {
          t.socket.destroy();
          resolve({ ok: false, error: e.message } as never);
        });
      });
    });
    expect(r).toEqual({ ok: true, issuer: 'fake AWS CA' });
    expect(await agent.app.registry.getSingleMetricAsString('egress_witness_tls_intercept_failures_total')).toMatch(/cause="h2-only"} 1/);
  });
});

describe('secrets', () => {
  it('never appear in logs or telemetry: no secret key, no session token, no signature', async () => {
    await agent.flush();
    const logs = agent.logs.raw.join('\n');
    const telemetry = readFileSync(join(agent.dir, 'observations.ndjson'), 'utf8');
    for (const text of [logs, telemetry]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(TOKEN);
      expect(text).not.toMatch(/Signature=[0-9a-f]{64}/);
      expect(text).not.toMatch(/X-Amz-Signature/i);
      expect(text).not.toContain('frJIUN8DYpKDtOLCwo');
    }
    for (const h of sent) {
      const sig = /Signature=([0-9a-f]{64})/.exec(h.authorization ?? '')?.[1];
      if (sig) {
        expect(logs).not.toContain(sig);
        expect(telemetry).not.toContain(sig);
      }
    }
    // keys are masked in logs, present in telemetry (that is the attestation)
    expect(telemetry).toContain(KEY);
    expect(logs).not.toContain(KEY);
  });
});
