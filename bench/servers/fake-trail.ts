/**
 * A loopback trail bucket and its notification queue: one HTTP server that
 * speaks SQS's JSON protocol (awsJson1_0, `X-Amz-Target: AmazonSQS.<Op>`, as
 * the current @aws-sdk/client-sqs sends) and S3's REST protocol, path style
 * (GetObject, ListObjectsV2), so the real SDK clients can be pointed at it
 * with AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL_S3.
 *
 * The queue behaves as SQS does where the detector depends on it: long
 * polling (WaitTimeSeconds), a visibility timeout per receive (the message
 * comes back when it expires), ChangeMessageVisibility, receipt handles that
 * change on every receive (an old handle cannot delete), MD5OfBody,
 * SentTimestamp and ApproximateReceiveCount, and a redrive policy: past
 * `maxReceiveCount` receives a message moves to the dead-letter list.
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

interface QueuedMessage {
  id: string;
  body: string;
  sentMs: number;
  receiveCount: number;
  visibleAtMs: number;
  handle: string | null;
}

export interface FakeTrail {
  /** http://127.0.0.1:PORT (both services). */
  readonly endpoint: string;
  readonly queueUrl: string;
  /** Messages moved out by the redrive policy. */
  readonly deadLetters: { id: string; body: string }[];
  /** Counts of calls by operation (SQS op names, GetObject, ListObjectsV2). */
  readonly calls: Map<string, number>;
  /** When each operation was first called (performance.now() of this process). */
  readonly firstCalled: Map<string, number>;
  /** Messages deleted, in order. */
  readonly deleted: string[];
  putObject(bucket: string, key: string, body: Buffer): void;
  /** Sends a message body to the queue; returns its id. */
  send(body: string): string;
  /** An S3 event notification for these keys, as a bucket sends it (keys form-encoded). */
  notify(bucket: string, keys: readonly string[]): string;
  /** The next `times` GetObject calls for this key answer 503 SlowDown. */
  failGet(key: string, times: number): void;
  /** Messages in the queue (visible or in flight). */
  depth(): number;
  close(): Promise<void>;
}

/** What points the AWS SDK at the fake (both services) with throwaway credentials and no instance metadata. */
export function fakeTrailEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_SQS: endpoint,
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

export interface FakeTrailOptions {
  /** Receives before a message moves to the dead-letter list (the redrive policy). */
  maxReceiveCount?: number;
}

function md5(text: string): string {
  return createHash('md5').update(text, 'utf8').digest('hex');
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** S3 notifications encode keys as in a form. */
function formEncode(key: string): string {
  return encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/');
}

export async function startFakeTrail(opts: FakeTrailOptions = {}): Promise<FakeTrail> {
  const maxReceiveCount = opts.maxReceiveCount ?? 1_000_000;
  const objects = new Map<string, Buffer>();
  const queue: QueuedMessage[] = [];
  const deadLetters: { id: string; body: string }[] = [];
  const deleted: string[] = [];
  const calls = new Map<string, number>();
  const getFailures = new Map<string, number>();
  const waiters = new Set<() => void>();
  const firstCalled = new Map<string, number>();
  const count = (op: string): void => {
    if (!calls.has(op)) firstCalled.set(op, performance.now());
    calls.set(op, (calls.get(op) ?? 0) + 1);
  };
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };

  function visible(now: number): QueuedMessage[] {
    return queue.filter((m) => m.visibleAtMs <= now);
  }

  function take(max: number, visibilityS: number): QueuedMessage[] {
    const now = Date.now();
    const out: QueuedMessage[] = [];
    for (const m of visible(now)) {
      if (out.length >= max) break;
      if (m.receiveCount >= maxReceiveCount) {
        queue.splice(queue.indexOf(m), 1);
        deadLetters.push({ id: m.id, body: m.body });
        continue;
      }
      m.receiveCount++;
      m.visibleAtMs = now + visibilityS * 1000;
      m.handle = randomUUID();
      out.push(m);
    }
    return out;
  }

  async function sqs(op: string, input: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
    switch (op) {
      case 'ReceiveMessage': {
        const max = Number(input['MaxNumberOfMessages'] ?? 1);
        const wait = Number(input['WaitTimeSeconds'] ?? 0);
        const visibility = Number(input['VisibilityTimeout'] ?? 30);
        const deadline = Date.now() + wait * 1000;
        let got = take(max, visibility);
        while (got.length === 0 && Date.now() < deadline) {
          // Woken by a send, or at the earliest time an in-flight message becomes visible again.
          const nextVisible = Math.min(deadline, ...queue.map((m) => m.visibleAtMs));
          await new Promise<void>((resolve) => {
            const t = setTimeout(done, Math.max(5, Math.min(deadline, nextVisible) - Date.now()));
            function done(): void {
              clearTimeout(t);
              waiters.delete(done);
              resolve();
            }
            waiters.add(done);
          });
          got = take(max, visibility);
        }
        return {
          status: 200,
          body: {
            Messages: got.map((m) => ({
              MessageId: m.id,
              ReceiptHandle: m.handle,
              MD5OfBody: md5(m.body),
              Body: m.body,
              Attributes: { SentTimestamp: String(m.sentMs), ApproximateReceiveCount: String(m.receiveCount) },
            })),
          },
        };
      }
      case 'DeleteMessage':
      case 'ChangeMessageVisibility': {
        const m = queue.find((q) => q.handle === input['ReceiptHandle']);
        if (!m)
          return { status: 400, body: { __type: 'com.amazonaws.sqs#ReceiptHandleIsInvalid', message: 'The receipt handle is not valid.' } };
        if (op === 'DeleteMessage') {
          queue.splice(queue.indexOf(m), 1);
          deleted.push(m.id);
        } else m.visibleAtMs = Date.now() + Number(input['VisibilityTimeout'] ?? 0) * 1000;
        return { status: 200, body: {} };
      }
      default:
        return { status: 400, body: { __type: 'com.amazonaws.sqs#UnsupportedOperation', message: `${op} is not supported here` } };
    }
  }

  function s3(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    if (url.searchParams.get('list-type') === '2') {
      count('ListObjectsV2');
      const prefix = url.searchParams.get('prefix') ?? '';
      const delimiter = url.searchParams.get('delimiter');
      const start = url.searchParams.get('continuation-token') ?? '';
      const pageSize = Math.min(Number(url.searchParams.get('max-keys') ?? 1000), 1000);
      const entries = new Map<string, { key: string; size: number } | { folder: string }>();
      for (const [k, body] of [...objects].sort(([a], [b]) => a.localeCompare(b))) {
        const [b, ...kp] = k.split('/');
        const objectKey = kp.join('/');
        if (b !== bucket || !objectKey.startsWith(prefix)) continue;
        const cut = delimiter ? objectKey.indexOf(delimiter, prefix.length) : -1;
        if (cut >= 0) {
          const folder = objectKey.slice(0, cut + (delimiter ?? '').length);
          entries.set(folder, { folder });
        } else entries.set(objectKey, { key: objectKey, size: body.length });
      }
      const sorted = [...entries.entries()].sort(([a], [b]) => a.localeCompare(b)).filter(([name]) => name > start);
      const page = sorted.slice(0, pageSize);
      const truncated = sorted.length > page.length;
      const contents = page.flatMap(([, e]) =>
        'key' in e ? [`<Contents><Key>${xmlEscape(e.key)}</Key><Size>${e.size}</Size></Contents>`] : [],
      );
      const folders = page.flatMap(([, e]) =>
        'folder' in e ? [`<CommonPrefixes><Prefix>${xmlEscape(e.folder)}</Prefix></CommonPrefixes>`] : [],
      );
      const xml =
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
        `<Name>${xmlEscape(bucket)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${pageSize}</MaxKeys>` +
        `<IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextContinuationToken>${xmlEscape(page[page.length - 1]![0])}</NextContinuationToken>` : ''}` +
        `${contents.join('')}${folders.join('')}</ListBucketResult>`;
      res.writeHead(200, { 'content-type': 'application/xml' }).end(xml);
      return;
    }
    count('GetObject');
    const failures = getFailures.get(key) ?? 0;
    if (failures > 0) {
      getFailures.set(key, failures - 1);
      res
        .writeHead(503, { 'content-type': 'application/xml' })
        .end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
        );
      return;
    }
    const body = objects.get(`${bucket}/${key}`);
    if (!body) {
      res
        .writeHead(404, { 'content-type': 'application/xml' })
        .end(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>${xmlEscape(key)}</Key></Error>`,
        );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  }

  const server = http.createServer((req, res) => {
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string' && target.startsWith('AmazonSQS.')) {
      const op = target.slice('AmazonSQS.'.length);
      count(op);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let input: Record<string, unknown> = {};
        try {
          input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
        } catch {
          /* answered below as an empty request */
        }
        void sqs(op, input).then(({ status, body }) => {
          if (res.destroyed) return;
          res.writeHead(status, {
            'content-type': 'application/x-amz-json-1.0',
            ...(status >= 400 ? { 'x-amzn-query-error': 'AWS.SimpleQueueService.Error;Sender' } : {}),
          });
          res.end(JSON.stringify(body));
        });
      });
      return;
    }
    req.resume();
    req.on('end', () => s3(req, res));
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const queueUrl = `${endpoint}/123456789012/trail-notifications`;

  const send = (body: string): string => {
    const id = randomUUID();
    queue.push({ id, body, sentMs: Date.now(), receiveCount: 0, visibleAtMs: 0, handle: null });
    wake();
    return id;
  };
  return {
    endpoint,
    queueUrl,
    deadLetters,
    calls,
    firstCalled,
    deleted,
    putObject: (bucket, key, body) => void objects.set(`${bucket}/${key}`, body),
    send,
    notify: (bucket, keys) =>
      send(
        JSON.stringify({
          Records: keys.map((key) => ({
            eventVersion: '2.1',
            eventSource: 'aws:s3',
            awsRegion: 'us-east-1',
            eventTime: new Date().toISOString(),
            eventName: 'ObjectCreated:Put',
            s3: {
              s3SchemaVersion: '1.0',
              bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
              object: { key: formEncode(key), size: objects.get(`${bucket}/${key}`)?.length ?? 0 },
            },
          })),
        }),
      ),
    failGet: (key, times) => void getFailures.set(key, times),
    depth: () => queue.length,
    async close() {
      for (const w of [...waiters]) w();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
