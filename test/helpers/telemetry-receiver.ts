/**
 * A loopback stand-in for the detector's ingest endpoint, written from the
 * wire format (protocol/signature.ts header comment, protocol/telemetry.ts):
 *
 *   POST <any path>
 *   Content-Encoding: gzip                      body = gzip(JSON batch)
 *   X-Egress-Witness-Gateway: <gateway id>      = batch.gatewayId
 *   X-Egress-Witness-Batch: <batch id>          = batch.batchId
 *   X-Egress-Witness-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, t + "." + body as sent)>
 *
 *   request ─▶ larger than maxBodyBytes? ───────────────────────── yes ─▶ 413
 *           ─▶ signature (verifySignature AND an independent HMAC) ─ bad ─▶ 401
 *           ─▶ gunzip + JSON + validateBatch + header match ──────── bad ─▶ 400
 *           ─▶ hang mode? ──────────────────────────────────────── yes ─▶ held until hang(false)
 *           ─▶ scripted answer left? ───────────────────────────── yes ─▶ that status (not stored)
 *           ─▶ store (first copy of a batchId) or count the duplicate ──▶ 200
 *
 * Every request is logged in `attempts` with its arrival time and answer, so
 * tests can assert on retry timing. `stop()`/`start()` keep the same port.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER, verifySignature } from '../../protocol/signature.js';
import { validateBatch, type Heartbeat, type Observation, type TelemetryBatch } from '../../protocol/telemetry.js';

/** The detector's replay window: timestamps further than this from now are refused. */
export const SIGNATURE_SKEW_SECONDS = 300;

export interface ScriptedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** How many requests get this answer before the next script entry (default 1). */
  times?: number;
}

export interface ReceiverAttempt {
  /** Date.now() at arrival. */
  at: number;
  batchId: string | null;
  /** The status answered; null while hanging. */
  status: number | null;
  outcome: 'stored' | 'duplicate' | 'scripted' | 'unauthorized' | 'invalid' | 'hanging' | 'too-large';
  reason?: string;
}

export interface ReceivedBatch {
  batch: TelemetryBatch;
  /** The decoded JSON exactly as sent (validateBatch's output drops unknown keys). */
  raw: { records: Record<string, unknown>[] } & Record<string, unknown>;
  signatureTimestamp: number;
  receivedAt: number;
}

export interface TelemetryReceiver {
  readonly port: number;
  readonly url: string;
  /** Batches stored, first copy of each batchId only, in arrival order. */
  readonly batches: ReceivedBatch[];
  /** Requests for a batchId already stored: answered 200, not stored again. */
  readonly duplicates: string[];
  readonly attempts: ReceiverAttempt[];
  /** Times the library check (verifySignature) and the independent HMAC disagreed. Must stay 0. */
  readonly verifierDisagreements: number;
  /** Queues answers given, in order, to valid requests before the receiver answers 200 again. */
  script(...answers: ScriptedAnswer[]): void;
  /**
   * While on, valid requests are read and held without an answer. Turning it
   * off processes the held ones as usual (stored, duplicate…) — even if their
   * client is gone, as a detector that stored a batch but could not answer
   * would. stop() drops them unprocessed.
   */
  hang(on: boolean): void;
  /** Every record of every stored batch, raw, in arrival order. */
  records(): Record<string, unknown>[];
  observations(): Observation[];
  heartbeats(): Heartbeat[];
  /** Closes the listener and every connection (hung ones included). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

export interface ReceiverOptions {
  secret: Buffer;
  /** Port to listen on; default 0 (any free port). */
  port?: number;
  /** Start listening right away (default true). With false, `start()` later; `port` must then be given. */
  listen?: boolean;
  now?: () => number;
  /** Bodies larger than this get 413 (read in full first, as the detector does), like ingest.max_body_bytes. */
  maxBodyBytes?: number;
}

/** A port that was free a moment ago: bind port 0 and close it. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The signature check done by hand with node:crypto, independent of protocol/signature.ts. */
export function independentSignatureCheck(
  secret: Buffer,
  header: string | undefined,
  body: Buffer,
  nowSeconds: number,
): { ok: true; t: number } | { ok: false } {
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return { ok: false };
  const t = Number(m[1]);
  if (Math.abs(nowSeconds - t) > SIGNATURE_SKEW_SECONDS) return { ok: false };
  const mac = createHmac('sha256', secret);
  mac.update(Buffer.from(`${m[1]}.`, 'utf8'));
  mac.update(body);
  const expected = mac.digest();
  const given = Buffer.from(m[2]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? { ok: true, t } : { ok: false };
}

export async function startTelemetryReceiver(opts: ReceiverOptions): Promise<TelemetryReceiver> {
  const now = opts.now ?? Date.now;
  const batches: ReceivedBatch[] = [];
  const stored = new Set<string>();
  const duplicates: string[] = [];
  const attempts: ReceiverAttempt[] = [];
  const queue: ScriptedAnswer[] = [];
  const sockets = new Set<net.Socket>();
  let held: (() => void)[] = [];
  let disagreements = 0;
  let hanging = false;
  let port = opts.port ?? 0;
  let server: http.Server | null = null;

  const handle = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void => {
    const at = now();
    const headerBatchId = firstHeader(req.headers[BATCH_HEADER]);
    const attempt: ReceiverAttempt = { at, batchId: headerBatchId ?? null, status: null, outcome: 'invalid' };
    attempts.push(attempt);
    const answer = (
      status: number,
      outcome: ReceiverAttempt['outcome'],
      reason?: string,
      headers: Record<string, string> = {},
      text?: string,
    ): void => {
      attempt.status = status;
      attempt.outcome = outcome;
      if (reason !== undefined) attempt.reason = reason;
      res
        .writeHead(status, { 'content-type': 'application/json', ...headers })
        .end(text ?? JSON.stringify(reason === undefined ? { ok: status < 300 } : { error: reason }));
    };

    if (req.method !== 'POST') return answer(405, 'invalid', 'method');
    if (opts.maxBodyBytes !== undefined && body.length > opts.maxBodyBytes) return answer(413, 'too-large', 'body exceeds maxBodyBytes');
    const signature = firstHeader(req.headers[SIGNATURE_HEADER]);
    const nowSeconds = Math.floor(at / 1000);
    const library = verifySignature(opts.secret, signature, body, nowSeconds, SIGNATURE_SKEW_SECONDS);
    const manual = independentSignatureCheck(opts.secret, signature, body, nowSeconds);
    if (library.ok !== manual.ok) disagreements++;
    if (!library.ok || !manual.ok) return answer(401, 'unauthorized', library.ok ? 'independent-check-failed' : library.reason);

    if (firstHeader(req.headers['content-encoding']) !== 'gzip') return answer(400, 'invalid', 'content-encoding must be gzip');
    let raw: unknown;
    try {
      raw = JSON.parse(gunzipSync(body).toString('utf8'));
    } catch (err) {
      return answer(400, 'invalid', `undecodable body: ${(err as Error).message}`);
    }
    const v = validateBatch(raw);
    if (!v.ok) return answer(400, 'invalid', v.reason);
    attempt.batchId = v.batch.batchId;
    if (headerBatchId !== v.batch.batchId) return answer(400, 'invalid', 'batch header does not match batchId');
    if (firstHeader(req.headers[GATEWAY_HEADER]) !== v.batch.gatewayId)
      return answer(400, 'invalid', 'gateway header does not match gatewayId');

    const batch = v.batch;
    const deliver = (): void => {
      const scripted = queue[0];
      if (scripted !== undefined) {
        scripted.times = (scripted.times ?? 1) - 1;
        if (scripted.times <= 0) queue.shift();
        return answer(scripted.status, 'scripted', undefined, scripted.headers, scripted.body ?? `{"scripted":${scripted.status}}`);
      }
      if (stored.has(batch.batchId)) {
        duplicates.push(batch.batchId);
        return answer(200, 'duplicate');
      }
      stored.add(batch.batchId);
      batches.push({ batch, raw: raw as ReceivedBatch['raw'], signatureTimestamp: library.timestamp, receivedAt: at });
      answer(200, 'stored');
    };
    if (hanging) {
      attempt.outcome = 'hanging';
      held.push(deliver); // answered by hang(false), dropped by stop()
      return;
    }
    deliver();
  };

  const start = async (): Promise<void> => {
    if (server !== null) return;
    const s = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => handle(req, res, Buffer.concat(chunks)));
    });
    s.requestTimeout = 0; // a hanging answer must not be cut short by the server itself
    s.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
        s.off('error', reject);
        resolve();
      });
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };

  const stop = async (): Promise<void> => {
    const s = server;
    server = null;
    held = []; // requests held by hang(true) die with their connections, unprocessed
    if (s === null) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  if (opts.listen ?? true) await start();
  else if (port === 0) throw new Error('startTelemetryReceiver: listen: false needs a port');

  const allRecords = (): Record<string, unknown>[] => batches.flatMap((b) => b.raw.records);
  return {
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}/v1/telemetry`;
    },
    batches,
    duplicates,
    attempts,
    get verifierDisagreements() {
      return disagreements;
    },
    script: (...answers) => queue.push(...answers.map((a) => ({ ...a }))),
    hang: (on) => {
      hanging = on;
      if (on) return;
      const release = held;
      held = [];
      for (const deliver of release) deliver();
    },
    records: allRecords,
    observations: () => batches.flatMap((b) => b.batch.records.filter((r): r is Observation => r.type === 'observation')),
    heartbeats: () => batches.flatMap((b) => b.batch.records.filter((r): r is Heartbeat => r.type === 'heartbeat')),
    stop,
    start,
  };
}

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
