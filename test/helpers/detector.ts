/**
 * The detector in-process for integration tests: a DetectorApp built from a
 * config validated like the CLI does (validateConfig + preflight), listening
 * on 127.0.0.1:0, with its store, findings file and gateway secrets (mode
 * 0600) in a temp dir, and logs parsed by log-sink.
 *
 *   startDetector(opts) ─▶ temp dir: secrets/<gw>.key · store/detector.db · findings.jsonl · detector.yaml
 *                       ─▶ DetectorApp.start() ─▶ { ingest, admin } ports
 *   signedPost(batch)   ─▶ gzip(JSON) + HMAC(t.body) exactly like the agent's spool sink and shipper
 *   restart()           ─▶ stop, then a new DetectorApp on the same config and store
 *
 * Also: CloudTrail record / EventBridge builders around the fixtures, a
 * telemetry batch builder, a Prometheus text reader, and waitFor.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { formatProblem, validateConfig } from '../../common/config/load.js';
import { DetectorApp, type DetectorDeps } from '../../detector/app.js';
import { detectorConfigSchema, type DetectorConfig } from '../../detector/config/schema.js';
import { preflightDetector } from '../../detector/preflight.js';
import { openStore } from '../../detector/store/open-store.js';
import type { DetectorStore } from '../../detector/store/store.js';
import { BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER, signatureHeader } from '../../protocol/signature.js';
import { SCHEMA_VERSION, type TelemetryBatch, type TelemetryRecord } from '../../protocol/telemetry.js';
import { expect } from 'vitest';
import { logSink, type LogSink } from './log-sink.js';
import { metricValue } from '../../bench/lib/prom-text.js';

export { metricValue };
import type { TestSchema } from './postgres.js';

/**
 * The store every harness detector uses unless its test names one: SQLite by default, or PostgreSQL (a schema
 * of its own per detector, dropped at cleanup) when EW_TEST_STORE=postgres — the detector suite runs once per store.
 */
export const TEST_STORE: 'sqlite' | 'postgres' = process.env.EW_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

export interface GatewaySpec {
  id: string;
  egress_cidrs: string[];
  inspect?: boolean;
}

/**
 * gw1 inspecting 203.0.113.0/28 · gw2 tunnel-only 198.51.100.0/29 ·
 * gw3 inspecting 192.0.2.0/28 (tests keep it silent) · gw4 inspecting 203.0.113.64/28.
 * 198.51.100.200 is in no gateway and not in AWS_RANGES_FIXTURE: the "external" address.
 */
export const DEFAULT_GATEWAYS: readonly GatewaySpec[] = [
  { id: 'gw1', egress_cidrs: ['203.0.113.0/28'] },
  { id: 'gw2', egress_cidrs: ['198.51.100.0/29'], inspect: false },
  { id: 'gw3', egress_cidrs: ['192.0.2.0/28'] },
  { id: 'gw4', egress_cidrs: ['203.0.113.64/28'] },
];
export const GW1_IP = '203.0.113.10';
export const GW2_IP = '198.51.100.3';
export const GW3_IP = '192.0.2.5';
export const GW4_IP = '203.0.113.70';
export const EXTERNAL_IP = '198.51.100.200';

/** A small ip-ranges.json (AWS's format); 3.5.0.0/16 holds the "inside AWS" test address. */
export const AWS_RANGES_FIXTURE = {
  syncToken: '1714560000',
  createDate: '2024-05-01-12-00-00',
  prefixes: [
    { ip_prefix: '3.5.0.0/16', region: 'us-east-1', service: 'AMAZON', network_border_group: 'us-east-1' },
    { ip_prefix: '52.94.0.0/16', region: 'us-east-1', service: 'EC2', network_border_group: 'us-east-1' },
  ],
  ipv6_prefixes: [{ ipv6_prefix: '2600:1f00::/24', region: 'us-east-1', service: 'AMAZON', network_border_group: 'us-east-1' }],
};
export const INSIDE_AWS_IP = '3.5.140.2';

type Overrides = Record<string, unknown>;

/** A JSON document read back from the daemon (answers, findings, fixtures): fields are reached freely, the assertions are the type check. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type JsonDoc = Record<string, any>;

export interface StartDetectorOptions {
  gateways?: readonly GatewaySpec[];
  /** Deep-merged over the defaults; a function gets the temp dir (to point at files it writes there). */
  config?: Overrides | ((dir: string) => Overrides | Promise<Overrides>);
  deps?: Partial<DetectorDeps>;
  /** Runs on the detector's store (whichever the suite uses) before the detector first starts: state left by earlier runs. */
  seedStore?: (store: DetectorStore) => Promise<void>;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed; {} when it is not JSON. */
  json: JsonDoc;
}

export interface SignedPostOptions {
  /** X-Egress-Witness-Gateway (default: the batch's gatewayId). */
  gatewayId?: string;
  /** HMAC key (default: the configured secret of `gatewayId`). */
  secret?: Buffer;
  /** Signature timestamp in Unix seconds (default: now). */
  t?: number;
  /** 'signature': one hex digit of v1 changed; 'body': one body byte changed after signing. */
  tamper?: 'signature' | 'body';
  /** X-Egress-Witness-Batch (default: the batch's batchId; null: header left out). */
  batchHeader?: string | null;
  contentEncoding?: string;
}

export interface DetectorHarness {
  readonly app: DetectorApp;
  readonly logs: LogSink;
  readonly ports: { ingest: number; admin: number };
  readonly dir: string;
  readonly configPath: string;
  readonly config: DetectorConfig;
  readonly secrets: ReadonlyMap<string, Buffer>;
  readonly findingsFile: string;
  url(path: string): string;
  /** A batch as the agent's spool sink seals it (gatewayId, egressCidrs from the config). */
  batch(gatewayId: string, records: TelemetryRecord[], over?: Partial<TelemetryBatch>): TelemetryBatch;
  /** POST /v1/telemetry, gzip + HMAC like the agent; `{ raw }` sends those bytes as the (signed) body. */
  signedPost(payload: TelemetryBatch | { raw: Buffer }, opts?: SignedPostOptions): Promise<HttpAnswer>;
  /** Stores records for a gateway (one signed batch) and expects 200. */
  ingest(gatewayId: string, records: TelemetryRecord[]): Promise<void>;
  postJson(path: string, value: unknown, headers?: Record<string, string>): Promise<HttpAnswer>;
  metricsText(): Promise<string>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepMerge(base: Overrides, over: Overrides): Overrides {
  const out: Overrides = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

export function validDetectorConfig(raw: unknown): DetectorConfig {
  const v = validateConfig(raw, detectorConfigSchema);
  if (!v.ok) throw new Error(`test detector config is invalid:\n${v.problems.map(formatProblem).join('\n')}`);
  return v.value;
}

/** Writes a secret file the way an operator should: mode 0600. */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  await writeFile(path, `${content}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

/**
 * A config for driving the pipeline without a daemon: DEFAULT_GATEWAYS (secrets under `dir`, never
 * read), the AWS ranges fixture written into `dir`, a 5 m window, heartbeats stale after 2 m, no grace.
 */
export async function pipelineConfig(dir: string): Promise<DetectorConfig> {
  await writeFile(join(dir, 'ip-ranges.json'), JSON.stringify(AWS_RANGES_FIXTURE));
  return validDetectorConfig({
    gateways: DEFAULT_GATEWAYS.map((g) => ({ ...g, secret_file: join(dir, `${g.id}.key`) })),
    aws_ip_ranges: join(dir, 'ip-ranges.json'),
    correlation: { window: '5m', heartbeat_stale: '2m', grace: '0s' },
  });
}

/** A store of the suite's kind (TEST_STORE) for a test that drives the pipeline without a daemon; `close` also drops it. */
export async function openSuiteStore(dir: string): Promise<{ store: DetectorStore; close(): Promise<void> }> {
  if (TEST_STORE === 'sqlite') {
    const store = await openStore({ path: join(dir, 'store', 'detector.db') }, { createDirectory: true });
    return { store, close: () => store.close() };
  }
  const { createTestSchema } = await import('./postgres.js');
  const schema = await createTestSchema(expect.getState().testPath ?? 'detector');
  const store = await openStore({ path: '', postgres: schema.config() });
  return {
    store,
    close: async () => {
      await store.close();
      await schema.drop();
    },
  };
}

export async function startDetector(opts: StartDetectorOptions = {}): Promise<DetectorHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'ew-detector-'));
  await mkdir(join(dir, 'secrets'), { recursive: true });
  const gateways = opts.gateways ?? DEFAULT_GATEWAYS;
  const secrets = new Map<string, Buffer>();
  const gatewayConfig = [];
  for (const g of gateways) {
    const secret = `${g.id}-${randomBytes(24).toString('base64url')}`;
    const file = join(dir, 'secrets', `${g.id}.key`);
    await writeSecretFile(file, secret);
    secrets.set(g.id, Buffer.from(secret, 'utf8'));
    gatewayConfig.push({
      id: g.id,
      egress_cidrs: g.egress_cidrs,
      secret_file: file,
      ...(g.inspect !== undefined ? { inspect: g.inspect } : {}),
    });
  }
  const findingsFile = join(dir, 'findings.jsonl');
  const base: Overrides = {
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    store: { path: join(dir, 'store', 'detector.db') },
    gateways: gatewayConfig,
    findings: { file: findingsFile },
    log: { level: 'info' },
  };
  const over = typeof opts.config === 'function' ? await opts.config(dir) : (opts.config ?? {});
  // A test that names its own SQLite file keeps it; otherwise the suite's store.
  let schema: TestSchema | null = null;
  const overStore = (over as { store?: { path?: unknown; postgres?: unknown } }).store;
  if (TEST_STORE === 'postgres' && overStore?.path === undefined && overStore?.postgres === undefined) {
    const { createTestSchema } = await import('./postgres.js');
    schema = await createTestSchema(expect.getState().testPath ?? 'detector');
    base.store = { postgres: { url: schema.url } };
  }
  const raw = deepMerge(base, over);
  const config = validDetectorConfig(raw);
  const problems = await preflightDetector(config);
  if (problems.length > 0) throw new Error(`test detector preflight failed:\n${problems.map(formatProblem).join('\n')}`);
  const configPath = join(dir, 'detector.yaml');
  await writeFile(configPath, `${JSON.stringify(raw, null, 2)}\n`);
  if (opts.seedStore) {
    const store = await openStore(config.store, { createDirectory: true });
    try {
      await opts.seedStore(store);
    } finally {
      await store.close();
    }
  }

  let app!: DetectorApp;
  let logs!: LogSink;
  let ports = { ingest: 0, admin: 0 };
  let stopped = true;
  const boot = async (): Promise<void> => {
    logs = logSink('debug');
    app = new DetectorApp(config, { logger: logs.logger, version: '0.0.0-test', nodeVersion: process.versions.node, ...opts.deps });
    try {
      const a = await app.start();
      ports = { ingest: a.ingest.port, admin: a.admin.port };
      stopped = false;
    } catch (err) {
      await app.stop().catch(() => undefined);
      throw err;
    }
  };
  await boot();

  const url = (path: string): string => `http://127.0.0.1:${ports.ingest}${path}`;
  const h: DetectorHarness = {
    get app() {
      return app;
    },
    get logs() {
      return logs;
    },
    get ports() {
      return ports;
    },
    dir,
    configPath,
    config,
    secrets,
    findingsFile,
    url,
    batch(gatewayId, records, over = {}) {
      const gw = config.gateways.find((g) => g.id === gatewayId);
      return {
        schemaVersion: SCHEMA_VERSION,
        batchId: randomBytes(16).toString('base64url'),
        gatewayId,
        agent: { version: '0.1.0', startedAt: new Date(Date.now() - 3_600_000).toISOString() },
        sequence: 0,
        egressCidrs: gw ? [...gw.egress_cidrs] : [],
        sentAt: new Date().toISOString(),
        records,
        ...over,
      };
    },
    async signedPost(payload, o = {}) {
      const isRaw = 'raw' in payload && Buffer.isBuffer(payload.raw);
      const batch = isRaw ? null : (payload as TelemetryBatch);
      const gatewayId = o.gatewayId ?? batch?.gatewayId ?? 'gw1';
      const secret = o.secret ?? secrets.get(gatewayId) ?? Buffer.from('no-such-gateway-secret-000000', 'utf8');
      const body = isRaw ? Buffer.from(payload.raw) : gzipSync(JSON.stringify(batch));
      const t = o.t ?? Math.floor(Date.now() / 1000);
      let sig = signatureHeader(secret, t, body);
      if (o.tamper === 'signature') sig = sig.replace(/v1=(.)/, (_m, c: string) => `v1=${c === '0' ? '1' : '0'}`);
      if (o.tamper === 'body') body[body.length - 5] = (body[body.length - 5] ?? 0) ^ 0xff;
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-encoding': o.contentEncoding ?? 'gzip',
        [GATEWAY_HEADER]: gatewayId,
        [SIGNATURE_HEADER]: sig,
      };
      const batchHeader = o.batchHeader === undefined ? (batch?.batchId ?? null) : o.batchHeader;
      if (batchHeader !== null) headers[BATCH_HEADER] = batchHeader;
      return httpRequest(ports.ingest, 'POST', '/v1/telemetry', headers, body);
    },
    async ingest(gatewayId, records) {
      const a = await h.signedPost(h.batch(gatewayId, records));
      if (a.status !== 200) throw new Error(`ingest for ${gatewayId} answered ${a.status}: ${a.text}`);
    },
    postJson(path, value, headers = {}) {
      return httpRequest(
        ports.ingest,
        'POST',
        path,
        { 'content-type': 'application/json', ...headers },
        Buffer.from(JSON.stringify(value)),
      );
    },
    async metricsText() {
      return (await httpRequest(ports.admin, 'GET', '/metrics', {}, null)).text;
    },
    async metric(name, labels = {}) {
      return metricValue(await h.metricsText(), name, labels);
    },
    async restart() {
      if (!stopped) await app.stop();
      stopped = true;
      await boot();
    },
    async cleanup() {
      if (!stopped) await app.stop();
      stopped = true;
      await rm(dir, { recursive: true, force: true });
      await schema?.drop();
    },
  };
  return h;
}

/** One request on a fresh connection (no keep-alive), whole answer buffered. */
export function httpRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer | null,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: body ? { ...headers, 'content-length': String(body.length) } : headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

export function parseJson(text: string): JsonDoc {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? v : {};
  } catch {
    return {};
  }
}

export async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 10_000, intervalMs = 25): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** A fresh temporary (ASIA) access key id, 20 base32 characters. */
export function newAccessKeyId(): string {
  let s = 'ASIA';
  for (const b of randomBytes(16)) s += BASE32[b % 32];
  return s;
}

/** CloudTrail's eventTime format: UTC, second resolution. */
export function cloudTrailTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

const CLOUDTRAIL_FIXTURES = new URL('../fixtures/cloudtrail/', import.meta.url);

export function cloudTrailFixture(name: string): JsonDoc {
  return JSON.parse(readFileSync(new URL(`${name}.json`, CLOUDTRAIL_FIXTURES), 'utf8')) as JsonDoc;
}

export interface CloudTrailRecordSpec {
  key?: string;
  sourceIp?: string;
  /** Epoch ms (written at second resolution) or an ISO string as is. */
  time: number | string;
  eventId?: string;
  /** Default: the IMDSv2 STS GetCallerIdentity fixture (sts.us-east-1.amazonaws.com). */
  fixture?: string;
}

/** A CloudTrail record from a fixture with the key, source, time and eventID replaced. */
export function cloudTrailRecord(spec: CloudTrailRecordSpec): JsonDoc {
  const r = cloudTrailFixture(spec.fixture ?? 'instance-role-imdsv2-sts-getcalleridentity');
  if (spec.key !== undefined) r.userIdentity.accessKeyId = spec.key;
  if (spec.sourceIp !== undefined) r.sourceIPAddress = spec.sourceIp;
  r.eventTime = typeof spec.time === 'number' ? cloudTrailTime(spec.time) : spec.time;
  r.eventID = spec.eventId ?? randomUUID();
  r.requestID = randomUUID();
  return r;
}

/** An EventBridge "AWS API Call via CloudTrail" envelope around a record. */
export function cloudTrailEventBridge(record: JsonDoc): Record<string, unknown> {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS API Call via CloudTrail',
    source: `aws.${String(record.eventSource).replace(/\.amazonaws\.com$/, '')}`,
    account: record.recipientAccountId ?? '111122223333',
    time: record.eventTime,
    region: record.awsRegion,
    resources: [],
    detail: record,
  };
}

/** An EventBridge "GuardDuty Finding" envelope around a finding. */
export function guardDutyEventBridge(finding: JsonDoc): Record<string, unknown> {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'GuardDuty Finding',
    source: 'aws.guardduty',
    account: finding.accountId ?? '111122223333',
    time: finding.updatedAt ?? new Date().toISOString(),
    region: finding.region ?? 'us-east-1',
    resources: [],
    detail: finding,
  };
}

/** The latest line per finding id of a findings JSONL file (a last line still being appended, without its newline, is left out). */
export function latestFindings(text: string): Map<string, JsonDoc> {
  const out = new Map<string, JsonDoc>();
  for (const line of text.split('\n').slice(0, -1)) {
    if (!line.trim()) continue;
    const f = JSON.parse(line) as JsonDoc;
    out.set(f.id as string, f);
  }
  return out;
}
