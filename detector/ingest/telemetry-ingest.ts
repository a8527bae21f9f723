/**
 * POST /v1/telemetry: authenticate (HMAC over timestamp and body, within the
 * clock-skew window), decode, validate, store durably, then acknowledge.
 * The gateway registry is the detector's own config; what a batch declares
 * about itself (egress CIDRs, record gateway ids) is never trusted.
 */
import { BoundedReadError, gunzipBounded } from '../../common/io/bounded-read.js';
import type { Logger } from '../../common/log/logger.js';
import type { CidrSet } from '../../common/cidr/cidr-set.js';
import { parseSignatureHeader, verifySignature, GATEWAY_HEADER, SIGNATURE_HEADER, BATCH_HEADER } from '../../protocol/signature.js';
import { validateBatch } from '../../protocol/telemetry.js';
import { screenRecords } from '../../protocol/time-bounds.js';
import type { TelemetryRefusal } from '../../protocol/telemetry-status.js';
import { ingestAnswer, ingestBatchLabel, type IngestFailure } from '../failures/detector-failures.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore } from '../store/store.js';

export interface GatewayKey {
  id: string;
  secret: Buffer;
  egressCidrs: CidrSet;
  /** What the detector's config says; heartbeats say what the agent actually runs. */
  inspect: boolean;
}

export interface IngestAnswer {
  status: number;
  body: Record<string, unknown>;
  retryAfterSeconds?: number;
  /** Sent as X-Egress-Witness-Error (protocol/telemetry-status.ts): what the client should make of a refusal. */
  refusal?: TelemetryRefusal;
}

/** The HTTP answer to an ingest failure: status, refusal header, Retry-After and `error` from the one table. */
export function failureAnswer(f: IngestFailure, extraBody: Record<string, unknown> = {}): IngestAnswer {
  const a = ingestAnswer(f);
  const answer: IngestAnswer = { status: a.status, body: { ...extraBody, error: a.error } };
  if (a.refusal !== null) {
    answer.refusal = a.refusal;
    answer.body.refusal = a.refusal;
  }
  if (a.retryAfterSeconds !== undefined) answer.retryAfterSeconds = a.retryAfterSeconds;
  return answer;
}

export interface TelemetryIngestOptions {
  gateways: () => ReadonlyMap<string, GatewayKey>;
  store: DetectorStore;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
  clockSkewMs: () => number;
  maxObservationSpanMs: () => number;
  maxDecodedBytes: () => number;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function signatureFailure(reason: 'missing' | 'malformed' | 'stale' | 'mismatch'): IngestFailure {
  return reason === 'stale' ? { kind: 'stale-signature' } : { kind: 'bad-signature', why: reason };
}

export class TelemetryIngest {
  /** Gateways already warned about an inspect-mode mismatch (once per run each). */
  private readonly modeWarned = new Set<string>();

  constructor(private readonly opts: TelemetryIngestOptions) {}

  private refuse(headers: Record<string, string | string[] | undefined>, failure: IngestFailure): IngestAnswer {
    const answer = failureAnswer(failure, { accepted: false });
    const outcome = ingestBatchLabel(failure);
    if (outcome !== null) this.opts.metrics.ingestBatches.inc({ outcome });
    const reason = answer.body.error as string;
    this.opts.logger.warn(
      {
        event: 'telemetry_rejected',
        outcome,
        reason,
        gateway_id: header(headers, GATEWAY_HEADER)?.slice(0, 63) ?? null,
        batch_id: header(headers, BATCH_HEADER)?.slice(0, 64) ?? null,
        refusal: answer.refusal,
      },
      `telemetry batch rejected: ${reason}`,
    );
    return answer;
  }

  /**
   * The checks that need no body, made before the request may take a slot or
   * have its body read: a configured gateway, a signature header of the right
   * shape, and its timestamp within the clock-skew window. The HMAC itself
   * covers the body and is checked by `handle`.
   */
  admit(headers: Record<string, string | string[] | undefined>): { ok: true; gateway: GatewayKey } | { ok: false; answer: IngestAnswer } {
    const gatewayId = header(headers, GATEWAY_HEADER);
    const gw = gatewayId ? this.opts.gateways().get(gatewayId) : undefined;
    if (!gw) {
      const failure: IngestFailure = gatewayId ? { kind: 'unknown-gateway', gatewayId } : { kind: 'missing-gateway' };
      return { ok: false, answer: this.refuse(headers, failure) };
    }
    const signature = header(headers, SIGNATURE_HEADER);
    const parsed = parseSignatureHeader(signature);
    const skew = Math.floor(this.opts.clockSkewMs() / 1000);
    const problem = !signature
      ? 'missing'
      : !parsed
        ? 'malformed'
        : Math.abs(Math.floor(this.opts.now() / 1000) - parsed.t) > skew
          ? 'stale'
          : null;
    if (problem !== null) return { ok: false, answer: this.refuse(headers, signatureFailure(problem)) };
    return { ok: true, gateway: gw };
  }

  async handle(headers: Record<string, string | string[] | undefined>, body: Buffer): Promise<IngestAnswer> {
    const { metrics, logger } = this.opts;
    const refuse = (failure: IngestFailure): IngestAnswer => this.refuse(headers, failure);
    const malformed = (reason: string): IngestAnswer => refuse({ kind: 'malformed', reason });
    const admitted = this.admit(headers);
    if (!admitted.ok) return admitted.answer;
    const gw = admitted.gateway;
    const check = verifySignature(
      gw.secret,
      header(headers, SIGNATURE_HEADER),
      body,
      Math.floor(this.opts.now() / 1000),
      Math.floor(this.opts.clockSkewMs() / 1000),
    );
    if (!check.ok) return refuse(signatureFailure(check.reason));
    let text: Buffer = body;
    const encoding = (header(headers, 'content-encoding') ?? 'identity').toLowerCase();
    if (encoding === 'gzip') {
      // Inflated as a stream off the event loop, stopped the moment it passes the budget.
      try {
        text = await gunzipBounded(body, this.opts.maxDecodedBytes());
      } catch (err) {
        const tooBig = err instanceof BoundedReadError && err.failure.kind === 'too-large';
        return tooBig
          ? refuse({ kind: 'too-large', limitBytes: this.opts.maxDecodedBytes(), decoded: true })
          : malformed('body is not valid gzip');
      }
    } else if (encoding !== 'identity') {
      return malformed(`unsupported content-encoding "${encoding.slice(0, 20)}"`);
    }
    const v = parseBatch(text);
    if (v === null) return malformed('body is not valid JSON');
    if (!v.ok) return malformed(v.reason);
    const batch = v.batch;
    if (batch.gatewayId !== gw.id) return malformed(`batch gatewayId "${batch.gatewayId}" does not match the signing gateway "${gw.id}"`);
    const headerBatch = header(headers, BATCH_HEADER);
    if (headerBatch !== undefined && headerBatch !== batch.batchId) return malformed('X-Egress-Witness-Batch does not match batchId');
    const widened = batch.egressCidrs.filter((c) => !gw.egressCidrs.coversCidr(c));
    if (widened.length > 0) {
      metrics.declaredCidrsIgnored.inc({ gateway: gw.id });
      logger.warn(
        { event: 'declared_cidrs_ignored', gateway_id: gw.id, declared: widened.slice(0, 10) },
        `gateway ${gw.id} declares egress CIDRs outside its configured ones; they are ignored (the detector's config is authoritative)`,
      );
    }
    const hb = batch.records.find((r) => r.type === 'heartbeat');
    if (hb && hb.type === 'heartbeat' && typeof hb.inspect === 'boolean' && hb.inspect !== gw.inspect && !this.modeWarned.has(gw.id)) {
      this.modeWarned.add(gw.id);
      logger.warn(
        { event: 'gateway_mode_mismatch', gateway_id: gw.id, configured_inspect: gw.inspect, agent_inspect: hb.inspect },
        gw.inspect
          ? `gateway ${gw.id} runs tunnel-only but the detector expects key attestation (gateways[].inspect: true): its calls will become gateway-unattested findings; set inspect: false or enable inspection on the agent`
          : `gateway ${gw.id} inspects TLS but is configured tunnel-only here (gateways[].inspect: false): key attestation is available; set inspect: true`,
      );
    }
    // Records with unbelievable times are rejected one by one; the rest of the batch is stored.
    const screened = screenRecords(batch.records, {
      nowMs: this.opts.now(),
      clockSkewMs: this.opts.clockSkewMs(),
      maxSpanMs: this.opts.maxObservationSpanMs(),
    });
    const records = screened.accepted;
    let result;
    try {
      result = await this.opts.store.ingestBatch(gw.id, { ...batch, records }, this.opts.now());
    } catch (err) {
      const failure: IngestFailure = { kind: 'store-unavailable' };
      metrics.ingestBatches.inc({ outcome: ingestBatchLabel(failure)! });
      logger.error({ event: 'store_failed', err, gateway_id: gw.id }, 'could not store a telemetry batch; the agent will retry');
      return failureAnswer(failure, { accepted: false });
    }
    if (result.kind === 'duplicate') {
      metrics.ingestBatches.inc({ outcome: 'duplicate' });
      return { status: 200, body: { accepted: true, duplicate: true, batchId: batch.batchId } };
    }
    metrics.ingestBatches.inc({ outcome: 'stored' });
    let observations = 0;
    for (const r of records) if (r.type === 'observation') observations++;
    if (observations) metrics.ingestRecords.inc({ type: 'observation' }, observations);
    if (records.length - observations) metrics.ingestRecords.inc({ type: 'heartbeat' }, records.length - observations);
    const answer = { accepted: true, duplicate: false, batchId: batch.batchId, records: result.records };
    if (screened.rejectedCount === 0) return { status: 200, body: answer };
    for (const [reason, n] of Object.entries(screened.rejected)) metrics.rejectedRecords.inc({ reason }, n);
    logger.warn(
      { event: 'telemetry_records_rejected', gateway_id: gw.id, batch_id: batch.batchId, rejected: screened.rejected },
      `gateway ${gw.id}: ${screened.rejectedCount} of ${batch.records.length} records rejected for their times (check the agent's clock); the rest was stored`,
    );
    return { status: 200, body: { ...answer, rejected: screened.rejected } };
  }
}

/**
 * The batch in `text`, validated; null when it is not JSON. The parsed value (unknown fields and
 * all) stays in here, so it is not held over the store's await by the caller's frame.
 */
function parseBatch(text: Buffer): ReturnType<typeof validateBatch> | null {
  let value: unknown;
  try {
    value = JSON.parse(text.toString('utf8'));
  } catch {
    return null;
  }
  return validateBatch(value);
}
