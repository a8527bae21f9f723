/**
 * The telemetry wire contract between agents and the detector (and the
 * `telemetry.file` NDJSON sink, which carries the same records one per line).
 * Documented field by field in docs/telemetry.md.
 *
 * Compatibility rule: a change is either a compatible extension (new optional
 * fields; readers ignore unknown fields) or a new SCHEMA_VERSION. The detector
 * accepts the current and the previous version.
 */
import { z } from 'zod';

export const SCHEMA_VERSION = 1;
export const ACCEPTED_SCHEMA_VERSIONS: readonly number[] = [SCHEMA_VERSION, SCHEMA_VERSION - 1].filter((v) => v >= 1);

export const OBSERVATION_MODES = ['tunnel', 'inspect', 'http'] as const;
export type ObservationMode = (typeof OBSERVATION_MODES)[number];

/** How a connection reached the agent: a client's proxy request, or the kernel's redirect (transparent listener). */
export const CAPTURES = ['explicit', 'transparent'] as const;
export type Capture = (typeof CAPTURES)[number];

/** How a tunnel or request ended. Closed set: used as a metric label too. */
export const OUTCOMES = [
  'ok',
  'client_error',
  'upstream_error',
  'denied',
  'dns_error',
  'connect_error',
  'connect_timeout',
  'idle_timeout',
  'drained',
  'tls_intercept_failed',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const KEY_KINDS = ['temporary', 'long-term', 'bearer', 'context', 'unknown'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

const iso = z.iso.datetime({ offset: true });
/**
 * An access key ID as the wire carries it (AWS issues upper-case letters and
 * digits, 16-128 long). The agent attributes only keys of this shape, so a
 * client's odd Credential can never make a whole batch invalid.
 */
export const ACCESS_KEY_ID_PATTERN = /^[A-Z0-9]{16,128}$/;
const accessKeyId = z.string().regex(ACCESS_KEY_ID_PATTERN, 'not an access key id');
const statusClass = z.enum(['1xx', '2xx', '3xx', '4xx', '5xx']);

export const awsEndpointSchema = z.object({
  service: z.string().min(1).max(64),
  region: z.string().max(64).nullable(),
  partition: z.string().max(32),
});

export const observationSchema = z.object({
  type: z.literal('observation'),
  schema: z.number().int(),
  gatewayId: z.string().min(1).max(63),
  firstSeen: iso,
  lastSeen: iso,
  count: z.number().int().positive(),
  clientIp: z.string().min(2).max(45),
  network: z.string().max(63).nullable(),
  mode: z.enum(OBSERVATION_MODES),
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  resolvedIp: z.string().max(45).nullable().optional(),
  /**
   * How the connection reached the agent. A compatible extension of schema 1: agents before it
   * never send it (read as "explicit"), detectors before it drop it as an unknown field.
   */
  capture: z.enum(CAPTURES).optional(),
  /**
   * Redirected connections: the address the client dialled when it is not among the addresses
   * the SNI / Host name resolved to (the agent connected to those). Same compatibility as capture.
   */
  originalIp: z.string().max(45).nullable().optional(),
  aws: awsEndpointSchema.nullable(),
  accessKeyId: accessKeyId.nullable(),
  keyKind: z.enum(KEY_KINDS).nullable().optional(),
  accountId: z
    .string()
    .regex(/^\d{12}$/)
    .nullable()
    .optional(),
  sessionToken: z.boolean().nullable().optional(),
  signatureVersion: z.string().max(16).nullable().optional(),
  auth: z.enum(['header', 'query']).nullable().optional(),
  action: z.string().max(256).nullable(),
  bytesUp: z.number().int().nonnegative(),
  bytesDown: z.number().int().nonnegative(),
  durationMs: z.number().nonnegative().optional(),
  outcome: z.enum(OUTCOMES),
  /**
   * Why it failed: the X-Egress-Witness-Error reason, the interception failure cause, or how a
   * tunnel broke. A compatible extension of schema 1: agents before it never send it, detectors
   * before it drop it as an unknown field, and `outcome` keeps its closed set for both.
   */
  reason: z
    .string()
    .regex(/^[a-z0-9][a-z0-9:-]{0,63}$/, 'expected a lower-case reason such as "upstream-tls-verify-failed"')
    .nullable()
    .optional(),
  status: z.partialRecord(statusClass, z.number().int().nonnegative()).optional(),
});
export type Observation = z.infer<typeof observationSchema>;

export const heartbeatSchema = z.object({
  type: z.literal('heartbeat'),
  schema: z.number().int(),
  gatewayId: z.string().min(1).max(63),
  time: iso,
  agentVersion: z.string().max(64),
  startedAt: iso,
  uptimeSeconds: z.number().nonnegative(),
  /** Counts since the previous heartbeat. */
  counts: z.record(z.string().max(64), z.number().int().nonnegative()),
  spool: z.object({ batches: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() }),
  inspect: z.boolean().optional(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

export const recordSchema = z.discriminatedUnion('type', [observationSchema, heartbeatSchema]);
export type TelemetryRecord = z.infer<typeof recordSchema>;

export const batchSchema = z.object({
  schemaVersion: z.number().int(),
  batchId: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'batchId must be 8-64 of [A-Za-z0-9_-]'),
  gatewayId: z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,62})$/),
  agent: z.object({ version: z.string().max(64), startedAt: iso }),
  sequence: z.number().int().nonnegative(),
  egressCidrs: z.array(z.string().max(64)).max(1024),
  sentAt: iso,
  records: z.array(recordSchema).max(100_000),
});
export type TelemetryBatch = z.infer<typeof batchSchema>;

export type BatchValidation = { ok: true; batch: TelemetryBatch } | { ok: false; reason: string };

/** Validates a decoded batch; the reason names the first offending path. */
export function validateBatch(value: unknown): BatchValidation {
  const version = (value as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof version === 'number' && !ACCEPTED_SCHEMA_VERSIONS.includes(version)) {
    return { ok: false, reason: `schemaVersion ${version} is not supported (accepted: ${ACCEPTED_SCHEMA_VERSIONS.join(', ')})` };
  }
  const r = batchSchema.safeParse(value);
  if (r.success) return { ok: true, batch: r.data };
  const issue = r.error.issues[0];
  const path = issue
    ? issue.path
        .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
        .join('')
        .replace(/^\./, '')
    : '';
  return { ok: false, reason: `${path || '(batch)'}: ${issue?.message ?? 'invalid'}` };
}

/** Validates one NDJSON sink line's record (replay reads these). */
export function validateRecord(value: unknown): { ok: true; record: TelemetryRecord } | { ok: false; reason: string } {
  const r = recordSchema.safeParse(value);
  if (r.success) return { ok: true, record: r.data };
  const issue = r.error.issues[0];
  return { ok: false, reason: `${issue?.path.join('.') || '(record)'}: ${issue?.message ?? 'invalid'}` };
}
