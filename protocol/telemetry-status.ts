/**
 * The HTTP status contract of POST /v1/telemetry: what the detector answers,
 * and what each answer means to the agent that sent the batch. The detector
 * builds its answers from TELEMETRY_REFUSALS and the agent's shipper reads
 * them with classifyTelemetryAnswer, so the two sides share one table.
 *
 * Every refusal carries its name in the X-Egress-Witness-Error header (and
 * in the JSON body's `refusal`). An answer without the header — an older
 * detector, a reverse proxy in the way — is read by its status alone.
 *
 *   status  refusal              agent action
 *   2xx     (stored, duplicate)  delivered    remove the batch from the spool
 *   400     malformed            drop-batch   the batch's own content: dead-letter it
 *   413     too-large            drop-batch   split in two and send the halves (one record: dead-letter)
 *   401     bad-signature        permanent    telemetry.secret_file ≠ the detector's key: keep, retry slowly
 *   401     stale-signature      permanent    clocks apart: keep, retry slowly
 *   401     unknown-gateway      permanent    gateway.id not in the detector's gateways: keep, bounded backoff
 *   401     missing-gateway      permanent    no gateway header: keep, bounded backoff
 *   404     not-found            permanent    telemetry.detector_url lacks /v1/telemetry: keep, bounded backoff
 *   405     method-not-allowed   permanent    keep, bounded backoff
 *   408     body-timeout         retry        backoff
 *   503     overloaded           retry        Retry-After (1 s)
 *   503     store-unavailable    retry        Retry-After (5 s)
 *   500     internal-error       retry        backoff
 *   429, other 5xx, anything else          retry (Retry-After honoured)
 *
 * "permanent" is about the configuration, not the batch: every batch would
 * get the same answer until an operator fixes a config key, so nothing is
 * dropped and the agent keeps trying at a bounded pace (slowly for
 * credentials), which also picks up a fix made by reloading the detector.
 * Only "drop-batch" gives a batch up, and only when the detector blames its
 * content. Pure: no imports, no I/O.
 */

/** Names the refusal on every non-2xx answer (the agent's proxy uses the same header for its own refusals). */
export const REFUSAL_HEADER = 'x-egress-witness-error';

export type TelemetryAction =
  /** Stored, or stored before (a duplicate): the batch leaves the spool. */
  | 'delivered'
  /** Transient: the same batch is sent again after a backoff, Retry-After honoured. */
  | 'retry'
  /** The configuration is wrong: every batch is refused alike until it is fixed; batches are kept. */
  | 'permanent'
  /** This batch is refused for its content: it is given up on (split first when too large). */
  | 'drop-batch';

/** How long a permanent refusal waits before the next try. */
export type PermanentWait =
  /** Credentials: fixed by a person or a key rotation, not by hammering (minutes). */
  | 'slow'
  /** Configuration fixed by an edit and a reload: the normal exponential backoff, capped. */
  | 'backoff';

export interface RefusalSpec {
  status: number;
  action: TelemetryAction;
  wait?: PermanentWait;
  retryAfterSeconds?: number;
  /** The config key that fixes it (agent side unless it says detector). */
  fix?: string;
}

export const TELEMETRY_REFUSALS = {
  malformed: { status: 400, action: 'drop-batch' },
  'too-large': { status: 413, action: 'drop-batch', fix: 'ingest.max_body_bytes (detector)' },
  'bad-signature': { status: 401, action: 'permanent', wait: 'slow', fix: 'telemetry.secret_file' },
  'stale-signature': { status: 401, action: 'permanent', wait: 'slow', fix: 'the clocks (NTP) or ingest.clock_skew (detector)' },
  'unknown-gateway': { status: 401, action: 'permanent', wait: 'backoff', fix: 'gateway.id, or the detector’s gateways list' },
  'missing-gateway': { status: 401, action: 'permanent', wait: 'backoff', fix: 'gateway.id' },
  'not-found': { status: 404, action: 'permanent', wait: 'backoff', fix: 'telemetry.detector_url' },
  'method-not-allowed': { status: 405, action: 'permanent', wait: 'backoff', fix: 'telemetry.detector_url' },
  'body-timeout': { status: 408, action: 'retry' },
  overloaded: { status: 503, action: 'retry', retryAfterSeconds: 1 },
  'store-unavailable': { status: 503, action: 'retry', retryAfterSeconds: 5 },
  'internal-error': { status: 500, action: 'retry' },
} as const satisfies Record<string, RefusalSpec>;

export type TelemetryRefusal = keyof typeof TELEMETRY_REFUSALS;

export const TELEMETRY_REFUSAL_NAMES = Object.keys(TELEMETRY_REFUSALS) as TelemetryRefusal[];

export function isTelemetryRefusal(value: unknown): value is TelemetryRefusal {
  return typeof value === 'string' && Object.hasOwn(TELEMETRY_REFUSALS, value);
}

export function refusalSpec(refusal: TelemetryRefusal): RefusalSpec {
  return TELEMETRY_REFUSALS[refusal];
}

/** The body path the detector serves telemetry at; `telemetry.detector_url` must end with it. */
export const TELEMETRY_PATH = '/v1/telemetry';

export type TelemetryVerdict =
  | { action: 'delivered'; status: number }
  | { action: 'retry'; status: number; refusal: TelemetryRefusal | null }
  | { action: 'permanent'; status: number; refusal: TelemetryRefusal | null; wait: PermanentWait }
  | { action: 'drop-batch'; status: number; refusal: TelemetryRefusal | null; split: boolean };

/**
 * What an answer means to the sender. `refusalHeader` is the X-Egress-Witness-Error value:
 * it decides when it names a refusal of this very status; otherwise the status alone does.
 */
export function classifyTelemetryAnswer(status: number, refusalHeader: string | undefined): TelemetryVerdict {
  if (!Number.isInteger(status) || status < 100 || status > 599) return { action: 'retry', status, refusal: null };
  if (status >= 200 && status <= 299) return { action: 'delivered', status };
  const named = refusalHeader?.trim().toLowerCase();
  if (isTelemetryRefusal(named) && TELEMETRY_REFUSALS[named].status === status) {
    const spec: RefusalSpec = TELEMETRY_REFUSALS[named];
    switch (spec.action) {
      case 'permanent':
        return { action: 'permanent', status, refusal: named, wait: spec.wait ?? 'backoff' };
      case 'drop-batch':
        return { action: 'drop-batch', status, refusal: named, split: status === 413 };
      default:
        return { action: 'retry', status, refusal: named };
    }
  }
  // By status alone (no header, or one this agent does not know).
  if (status === 401 || status === 403) return { action: 'permanent', status, refusal: null, wait: 'slow' };
  if (status === 404 || status === 405) return { action: 'permanent', status, refusal: null, wait: 'backoff' };
  if (status === 400 || status === 422) return { action: 'drop-batch', status, refusal: null, split: false };
  if (status === 413) return { action: 'drop-batch', status, refusal: null, split: true };
  return { action: 'retry', status, refusal: null };
}
