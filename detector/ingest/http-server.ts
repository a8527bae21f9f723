/**
 * The detector's ingest listener (HTTP, or HTTPS with tls.cert/key):
 *   POST /v1/telemetry   signed agent batches
 *   POST /v1/cloudtrail  EventBridge "AWS API Call via CloudTrail" events (one or an array)
 *   POST /v1/guardduty   EventBridge "GuardDuty Finding" events or bare findings (one or an array)
 * Overload answers 503 with Retry-After; bodies over the limit get 413.
 */
import http from 'node:http';
import https from 'node:https';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../../common/log/logger.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import { readBody } from './read-body.js';
import type { TelemetryIngest } from './telemetry-ingest.js';

export interface IngestRoutes {
  telemetry: TelemetryIngest;
  cloudtrail: (value: unknown) => Record<string, number>;
  guardduty: (values: unknown[]) => Promise<Record<string, number>>;
}

export interface IngestServerOptions {
  routes: IngestRoutes;
  maxBodyBytes: () => number;
  maxConcurrent: () => number;
  token: () => Buffer | null;
  tls: { cert: string; key: string } | null;
  metrics: DetectorMetrics;
  logger: Logger;
}

function send(res: http.ServerResponse, status: number, body: unknown, retryAfter?: number): void {
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  res.writeHead(status, headers).end(`${JSON.stringify(body)}\n`);
}

function bearerOk(req: http.IncomingMessage, token: Buffer | null): boolean {
  if (!token) return true;
  const h = req.headers.authorization ?? '';
  const given = Buffer.from(h.startsWith('Bearer ') ? h.slice(7).trim() : '', 'utf8');
  return given.length === token.length && timingSafeEqual(given, token);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [value];
}

export function createIngestServer(opts: IngestServerOptions): http.Server {
  let active = 0;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && req.method === 'GET') return send(res, 200, { ok: true });
    const route =
      path === '/v1/telemetry' ? 'telemetry' : path === '/v1/cloudtrail' ? 'cloudtrail' : path === '/v1/guardduty' ? 'guardduty' : null;
    if (!route) return send(res, 404, { error: 'not found: POST /v1/telemetry, /v1/cloudtrail or /v1/guardduty' });
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return send(res, 405, { error: 'method not allowed' });
    }
    if (active >= opts.maxConcurrent()) {
      if (route === 'telemetry') opts.metrics.ingestBatches.inc({ outcome: 'overloaded' });
      req.resume();
      return send(res, 503, { error: 'overloaded, retry later' }, 1);
    }
    if (route !== 'telemetry' && !bearerOk(req, opts.token())) {
      req.resume();
      return send(res, 401, { error: 'missing or wrong bearer token (ingest.token_file)' });
    }
    active++;
    void (async () => {
      try {
        const body = await readBody(req, opts.maxBodyBytes());
        if (body.kind === 'too-large') {
          if (route === 'telemetry') opts.metrics.ingestBatches.inc({ outcome: 'too_large' });
          res.setHeader('connection', 'close');
          return send(res, 413, { error: `body exceeds ${opts.maxBodyBytes()} bytes (ingest.max_body_bytes)` });
        }
        if (body.kind === 'aborted') return;
        if (route === 'telemetry') {
          const a = opts.routes.telemetry.handle(req.headers, body.body);
          return send(res, a.status, a.body, a.retryAfterSeconds);
        }
        let value: unknown;
        try {
          value = JSON.parse(body.body.toString('utf8'));
        } catch {
          return send(res, 400, { error: 'body is not valid JSON' });
        }
        const counts = route === 'cloudtrail' ? opts.routes.cloudtrail(value) : await opts.routes.guardduty(asArray(value));
        return send(res, 200, { accepted: true, ...counts });
      } catch (err) {
        opts.logger.error({ event: 'ingest_error', route, err }, 'ingest request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
      } finally {
        active--;
      }
    })();
  };
  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : http.createServer(handler);
  server.keepAliveTimeout = 10_000;
  server.headersTimeout = 15_000;
  server.requestTimeout = 60_000;
  return server;
}
