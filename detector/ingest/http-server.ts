/**
 * The detector's ingest listener (HTTP, or HTTPS with tls.cert/key):
 *   POST /v1/telemetry   signed agent batches
 *   POST /v1/cloudtrail  EventBridge "AWS API Call via CloudTrail" events (one or an array)
 *   POST /v1/guardduty   EventBridge "GuardDuty Finding" events or bare findings (one or an array)
 *
 * Authentication comes before resources: everything that can be checked
 * without the body is checked before a request takes a concurrency slot or
 * has its body buffered, and every body has a deadline.
 *
 *   route, method ─▶ cheap checks (gateway + signature header shape + timestamp │ bearer token)
 *     ─▶ declared size ─▶ slot (per gateway and address │ events pool │ total) ─▶ body (limit, deadline) ─▶ route
 *
 * A request refused before its body was read (404, 405, 401, 413, 503) is
 * answered after the rest of its body has been read and dropped — up to
 * max(64 MiB, 2 × max_body_bytes) and the body deadline — and then closed, so
 * that clients which read only after sending (the agent's shipper among
 * them) see the status instead of a reset connection. A body that misses its
 * deadline gets 408 and the connection is closed.
 */
import http from 'node:http';
import https from 'node:https';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../../common/log/logger.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import { discardBody, readBody } from './read-body.js';
import { clientSource, Slots, type SlotPool } from './slots.js';
import { INGEST_REFUSAL_HEADER, ingestBatchLabel, type IngestFailure } from '../failures/detector-failures.js';
import { failureAnswer, type IngestAnswer, type TelemetryIngest } from './telemetry-ingest.js';

export interface IngestRoutes {
  telemetry: TelemetryIngest;
  cloudtrail: (value: unknown) => Promise<Record<string, number>>;
  guardduty: (values: unknown[]) => Promise<Record<string, number>>;
}

export interface IngestLimits {
  maxBodyBytes: number;
  maxConcurrent: number;
  maxConcurrentPerGateway: number;
  maxConcurrentEvents: number;
  bodyTimeoutMs: number;
}

export interface IngestServerOptions {
  routes: IngestRoutes;
  limits: () => IngestLimits;
  token: () => Buffer | null;
  tls: { cert: string; key: string } | null;
  metrics: DetectorMetrics;
  logger: Logger;
}

type Route = 'telemetry' | 'cloudtrail' | 'guardduty';

const MIN_DISCARD_BYTES = 64 * 1024 * 1024;

function bearerOk(req: http.IncomingMessage, token: Buffer | null): boolean {
  if (!token) return true;
  const h = req.headers.authorization ?? '';
  const given = Buffer.from(h.startsWith('Bearer ') ? h.slice(7).trim() : '', 'utf8');
  return given.length === token.length && timingSafeEqual(given, token);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [value];
}

function routeOf(path: string | undefined): Route | null {
  return path === '/v1/telemetry' ? 'telemetry' : path === '/v1/cloudtrail' ? 'cloudtrail' : path === '/v1/guardduty' ? 'guardduty' : null;
}

export function createIngestServer(opts: IngestServerOptions): http.Server {
  const slots = new Slots(() => {
    const l = opts.limits();
    return { total: l.maxConcurrent, perGateway: l.maxConcurrentPerGateway, events: l.maxConcurrentEvents };
  });

  const send = (res: http.ServerResponse, route: string, a: IngestAnswer, close = false): void => {
    opts.metrics.ingestResponses.inc({ route, status: String(a.status) });
    if (res.headersSent || res.destroyed) return;
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
    if (a.retryAfterSeconds !== undefined) headers['retry-after'] = String(a.retryAfterSeconds);
    if (a.refusal !== undefined) headers[INGEST_REFUSAL_HEADER] = a.refusal;
    if (close) headers.connection = 'close';
    res.writeHead(a.status, headers).end(`${JSON.stringify(a.body)}\n`);
  };

  /** Answers a request whose body was not (all) read: drop the rest within the bounds, then answer and close. */
  const refuse = (req: http.IncomingMessage, res: http.ServerResponse, route: string, a: IngestAnswer, deadlineAt: number): void => {
    const limit = Math.max(MIN_DISCARD_BYTES, 2 * opts.limits().maxBodyBytes);
    // Past the bounds (too much, too slow) the answer goes out all the same, then the connection closes.
    void discardBody(req, limit, deadlineAt).then((r) => (r === 'aborted' ? undefined : send(res, route, a, true)));
  };

  const timeoutAnswer = (): IngestAnswer => failureAnswer({ kind: 'body-timeout', timeoutMs: opts.limits().bodyTimeoutMs });

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const limits = opts.limits();
    const deadlineAt = Date.now() + limits.bodyTimeoutMs;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && req.method === 'GET') return send(res, 'healthz', { status: 200, body: { ok: true } });
    const route = routeOf(path);
    if (!route) return refuse(req, res, 'other', failureAnswer({ kind: 'not-found' }), deadlineAt);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return refuse(req, res, route, failureAnswer({ kind: 'method-not-allowed' }), deadlineAt);
    }

    let pool: SlotPool;
    if (route === 'telemetry') {
      const admitted = opts.routes.telemetry.admit(req.headers);
      if (!admitted.ok) return refuse(req, res, route, admitted.answer, deadlineAt);
      pool = { kind: 'gateway', id: admitted.gateway.id, source: clientSource(req.socket.remoteAddress ?? '') };
    } else {
      if (!bearerOk(req, opts.token())) return refuse(req, res, route, failureAnswer({ kind: 'bad-token' }), deadlineAt);
      pool = { kind: 'events' };
    }

    /** A refusal counted as a telemetry batch outcome when it is one. */
    const batchFailure = (f: IngestFailure): IngestAnswer => {
      const label = ingestBatchLabel(f);
      if (route === 'telemetry' && label !== null) opts.metrics.ingestBatches.inc({ outcome: label });
      return failureAnswer(f);
    };
    const tooLarge = (): IngestAnswer => batchFailure({ kind: 'too-large', limitBytes: limits.maxBodyBytes, decoded: false });
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limits.maxBodyBytes) return refuse(req, res, route, tooLarge(), deadlineAt);

    const release = slots.tryAcquire(pool);
    if (!release) {
      const which = pool.kind === 'gateway' ? `gateway ${pool.id} from ${pool.source}` : 'the event routes';
      return refuse(req, res, route, batchFailure({ kind: 'overloaded', pool: which }), deadlineAt);
    }
    void (async () => {
      try {
        const body = await readBody(req, limits.maxBodyBytes, deadlineAt);
        if (body.kind === 'too-large') {
          release();
          return refuse(req, res, route, tooLarge(), deadlineAt);
        }
        if (body.kind === 'timeout') return send(res, route, timeoutAnswer(), true);
        if (body.kind === 'aborted') return;
        if (route === 'telemetry') return send(res, route, await opts.routes.telemetry.handle(req.headers, body.body));
        let value: unknown;
        try {
          value = JSON.parse(body.body.toString('utf8'));
        } catch {
          return send(res, route, failureAnswer({ kind: 'malformed', reason: 'body is not valid JSON' }));
        }
        const counts = route === 'cloudtrail' ? await opts.routes.cloudtrail(value) : await opts.routes.guardduty(asArray(value));
        return send(res, route, { status: 200, body: { accepted: true, ...counts } });
      } catch (err) {
        opts.logger.error({ event: 'ingest_error', route, err }, 'ingest request failed');
        send(res, route, failureAnswer({ kind: 'internal-error' }));
      } finally {
        release();
      }
    })();
  };
  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : http.createServer(handler);
  server.keepAliveTimeout = 10_000;
  server.headersTimeout = 15_000;
  // A backstop only: each body has its own deadline (ingest.body_timeout, at most 60 s).
  server.requestTimeout = 90_000;
  return server;
}
