/**
 * The detector's configuration file. The gateway registry here is
 * authoritative: an agent cannot widen its egress CIDRs by declaring more.
 */
import { z } from 'zod';
import {
  cidr,
  duration,
  positiveDuration,
  listenAddress,
  logLevel,
  nullablePath,
  positiveInt,
  required,
  show,
  size,
  url,
} from '../../common/config/schema-helpers.js';
import { isLoopbackHost } from '../../common/cidr/ip.js';
import { MAX_TEXT_BYTES } from '../../common/json/text-limits.js';

const gateway = z.strictObject({
  id: z
    .string({ error: required('the gateway id the agent uses (gateway.id in its config)', 'a string') })
    .regex(/^[a-z0-9](?:[a-z0-9-]{0,62})$/, 'expected lower-case letters, digits and "-", e.g. "gw-dc1"'),
  egress_cidrs: z
    .array(cidr, { error: required('the public CIDRs AWS sees from this gateway', 'a list of CIDRs') })
    .min(1, 'at least one egress CIDR is required'),
  secret_file: z.string({ error: required("the HMAC key file shared with this gateway's agent", 'a string') }).min(1),
  /** false: the gateway runs tunnel-only and can attest endpoints, not keys. */
  inspect: z.boolean().default(true),
});

const tls = z.strictObject({ cert: nullablePath, key: nullablePath });
/** libpq's sslmode values the PostgreSQL store supports (prefer and allow would fall back to clear text). */
export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];
const DEFAULT_STORE_PATH = '/var/lib/egress-witness/detector.db';
/** `store.postgres`: a database several detectors share (store/postgres-connection.ts). */
const postgres = z
  .strictObject({
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'expected a URL such as postgres://detector@db.example.internal:5432/egress_witness')
      .nullable()
      .default(null),
    url_file: nullablePath,
    pool_size: positiveInt('pool_size')
      .refine((n) => n <= 1000, 'must be at most 1000')
      .default(10),
    statement_timeout: positiveDuration.default(30_000),
    sslmode: z
      .enum(SSL_MODES, { error: (i) => `expected one of ${SSL_MODES.join(', ')}; got ${show(i.input)}` })
      .nullable()
      .default(null),
    ca_file: nullablePath,
    /**
     * How often a detector that does not lead tries the leader lock, and the leader checks the
     * connection that holds it: another detector takes over within this of the leader's death.
     */
    leader_check: positiveDuration.default(5_000),
  })
  .superRefine((p, ctx) => {
    if (p.url !== null && p.url_file !== null)
      ctx.addIssue({ code: 'custom', path: ['url_file'], message: 'set store.postgres.url or store.postgres.url_file, not both' });
    if (p.ca_file !== null && p.sslmode === 'disable')
      ctx.addIssue({
        code: 'custom',
        path: ['ca_file'],
        message: 'ca_file is for TLS: set sslmode to verify-full (or verify-ca), or remove ca_file',
      });
  });
const store = z
  .strictObject({
    /** The SQLite file (the default store); not with store.postgres. */
    path: z.string().min(1).optional(),
    postgres: postgres.nullable().optional(),
    retention: positiveDuration.default(8 * 3_600_000),
  })
  .superRefine((s, ctx) => {
    if (s.path !== undefined && s.postgres != null)
      ctx.addIssue({
        code: 'custom',
        path: ['postgres'],
        message: 'set store.path (SQLite, one detector) or store.postgres (a shared database), not both',
      });
  })
  .transform((s) => ({ path: s.path ?? DEFAULT_STORE_PATH, postgres: s.postgres ?? null, retention: s.retention }));
const textBudget = (what: string) =>
  size.refine(
    (n) => n > 0 && n <= MAX_TEXT_BYTES,
    `must be more than 0 and at most ${MAX_TEXT_BYTES / 1024 / 1024}MiB: ${what} must fit one JavaScript string with room to parse it`,
  );
const SQS_QUEUE_URL = /^https?:\/\/[^/\s]+\/\d{12}\/[A-Za-z0-9_-]{1,80}(\.fifo)?$/;
/** `cloudtrail.sqs`: the trail's bucket read through S3 event notifications on an SQS queue. */
const cloudtrailSqs = z.strictObject({
  queue_url: z
    .string({
      error: required(
        'the URL of the queue the bucket notifies, e.g. https://sqs.us-east-1.amazonaws.com/123456789012/trail-events',
        'a string',
      ),
    })
    .regex(SQS_QUEUE_URL, 'expected a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/trail-events'),
  region: z
    .string({ error: required('the region of the queue, e.g. "us-east-1"', 'a string') })
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'expected an AWS region such as "us-east-1"'),
  /** Assumed (STS AssumeRole) for SQS and S3: a bucket and queue in another account. */
  role_arn: z
    .string()
    .regex(
      /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/,
      'expected a role ARN such as arn:aws:iam::123456789012:role/trail-reader',
    )
    .nullable()
    .default(null),
  max_messages: z.number().int().min(1, 'must be 1 to 10 (an SQS limit)').max(10, 'must be 1 to 10 (an SQS limit)').default(10),
  /** Long polling: how long one ReceiveMessage waits for a message. */
  wait_time: duration.refine((ms) => ms <= 20_000 && ms % 1000 === 0, 'must be whole seconds, at most 20s (an SQS limit)').default(20_000),
  /** How long a received message stays hidden from other readers; extended while its objects are read. */
  visibility_timeout: positiveDuration
    .refine((ms) => ms >= 2_000 && ms <= 12 * 3_600_000 && ms % 1000 === 0, 'must be whole seconds, from 2s to 12h')
    .default(300_000),
  /** Log files fetched and decided at once. */
  concurrency: positiveInt('concurrency')
    .refine((n) => n <= 64, 'must be at most 64')
    .default(4),
});

const cloudtrail = z.strictObject({
  sqs: cloudtrailSqs.nullable().default(null),
  watch_dir: nullablePath,
  poll_interval: positiveDuration.default(10_000),
  /** A log file larger than this, or that decompresses to more, is refused (marked failed) without being read whole. */
  max_file_bytes: textBudget('a log file').default(MAX_TEXT_BYTES),
});
const correlation = z.strictObject({
  window: positiveDuration.default(300_000),
  grace: duration.default(600_000),
  heartbeat_stale: positiveDuration.default(120_000),
  endpoint_attestation: z.enum(['accept', 'flag']).default('accept'),
});
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

/** `inventory.ec2`: DescribeInstances over these regions, in this account and through each role. */
const inventoryEc2 = z.strictObject({
  regions: z
    .array(z.string().regex(AWS_REGION, 'expected an AWS region such as "us-east-1"'), {
      error: required('the regions whose instances are listed, e.g. ["us-east-1"]', 'a list of regions'),
    })
    .min(1, 'at least one region is required'),
  /** Assumed (STS AssumeRole) one by one: the instances of other accounts. Empty: the detector's own credentials only. */
  role_arns: z.array(z.string().regex(ROLE_ARN, 'expected a role ARN such as arn:aws:iam::123456789012:role/inventory-reader')).default([]),
  /** How often every region is listed again. */
  refresh: positiveDuration.refine((ms) => ms >= 10_000, 'must be at least 10s').default(300_000),
  /** Endpoint override (VPC endpoints, tests); null = the SDK's own (AWS_ENDPOINT_URL_EC2, or AWS's for the region). */
  endpoint: url(['http', 'https']).nullable().default(null),
});

/** Which private addresses belong to which instance: instance binding (docs/detection.md#instance-binding). */
const inventory = z.strictObject({
  /** describe-instances JSON or lists of {instanceId, privateIps}; read again when they change and on SIGHUP. */
  files: z.array(z.string().min(1, 'expected a file path')).default([]),
  ec2: inventoryEc2.nullable().default(null),
  /** Agent network names (networks[].name) whose clients are NAT-ed before the gateway: no binding is checked for them. */
  translated_networks: z.array(z.string().min(1, 'expected a network name')).default([]),
});
/** arn:PARTITION:securityhub:REGION:ACCOUNT?:product/COMPANY/PRODUCT (AWS's own products have no account). */
const PRODUCT_ARN = /^arn:(aws|aws-cn|aws-us-gov):securityhub:([a-z0-9-]+):(\d{12})?:product\/[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/;

/** Where our findings are imported as ASFF (BatchImportFindings); see docs/findings.md. */
const securityHub = z
  .strictObject({
    region: z
      .string({ error: required('the region of the Security Hub that receives the findings, e.g. "us-east-1"', 'a string') })
      .regex(AWS_REGION, 'expected an AWS region such as "us-east-1"'),
    /** The account that calls BatchImportFindings; every finding is imported as this account's (AwsAccountId). */
    account_id: z
      .union([z.string(), z.number()], {
        error: required("the 12-digit account that imports the findings (the credentials' account)", 'a 12-digit account id'),
      })
      // Unquoted, YAML reads the id as a number: fine with 12 digits, but a leading 0 would be gone.
      .transform((v) => (typeof v === 'number' ? String(v) : v))
      .pipe(z.string().regex(/^\d{12}$/, 'expected a 12-digit AWS account id in quotes, e.g. "012345678901"')),
    /** null: the account's default product, arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default. */
    product_arn: z
      .string()
      .regex(
        PRODUCT_ARN,
        'expected a Security Hub product ARN, e.g. "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default"',
      )
      .nullable()
      .default(null),
    /** Endpoint override (FIPS, VPC endpoints, tests); null = the SDK's default for the region. */
    endpoint: url(['http', 'https']).nullable().default(null),
    /** Extra CA bundle trusted for the Security Hub endpoint (besides the system roots). */
    ca_file: nullablePath,
  })
  .superRefine((h, ctx) => {
    const m = h.product_arn === null ? null : PRODUCT_ARN.exec(h.product_arn);
    if (m && m[2] !== h.region)
      ctx.addIssue({
        code: 'custom',
        path: ['product_arn'],
        message: `names region ${m[2]}, but findings.security_hub.region is ${h.region}: BatchImportFindings takes a product of its own region`,
      });
  });

const findings = z.strictObject({
  file: nullablePath,
  webhook: url(['http', 'https']).nullable().default(null),
  /** null: no Security Hub export. */
  security_hub: securityHub.nullable().default(null),
});
const guardduty = z
  .strictObject({
    /** report: decide and record only; archive: call ArchiveFindings for the findings the gateways attest. */
    mode: z.enum(['report', 'archive']).default('report'),
    /** The detector (and its region) whose findings are polled, read back and archived; never one a finding names. */
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'expected an AWS region such as "us-east-1"')
      .nullable()
      .default(null),
    detector_id: z
      .string()
      .regex(/^[a-z0-9]{1,300}$/, 'expected a GuardDuty detector id (lower-case hex)')
      .nullable()
      .default(null),
    /** Endpoint override (FIPS endpoints, tests); null = the SDK's default for the region. */
    endpoint: url(['http', 'https']).nullable().default(null),
    /** Extra CA bundle trusted for the GuardDuty endpoint (besides the system roots). */
    ca_file: nullablePath,
    /** Poll ListFindings/GetFindings this often; null = no polling (EventBridge input only). */
    poll_interval: positiveDuration.nullable().default(null),
    /** Post kept findings, enriched with the evidence, to findings.webhook. */
    webhook_kept: z.boolean().default(false),
  })
  .superRefine((g, ctx) => {
    if (g.poll_interval !== null && (g.region === null || g.detector_id === null)) {
      ctx.addIssue({ code: 'custom', path: ['poll_interval'], message: 'polling needs guardduty.region and guardduty.detector_id' });
    }
    if (g.mode === 'archive' && (g.region === null || g.detector_id === null)) {
      ctx.addIssue({
        code: 'custom',
        path: ['mode'],
        message:
          'archive mode needs guardduty.region and guardduty.detector_id: each finding is read back from that detector before it is archived',
      });
    }
  });
const ingest = z.strictObject({
  max_body_bytes: textBudget('a body').default(8 * 1024 * 1024),
  /** Requests in progress, all routes together. */
  max_concurrent: positiveInt('max_concurrent').default(32),
  /** Of those, per gateway on /v1/telemetry (taken only once the gateway and signature header check out). */
  max_concurrent_per_gateway: positiveInt('max_concurrent_per_gateway').default(4),
  /** Of those, /v1/cloudtrail and /v1/guardduty together. */
  max_concurrent_events: positiveInt('max_concurrent_events').default(4),
  /** The whole body must arrive within this, counted from the end of the headers. */
  body_timeout: positiveDuration.refine((ms) => ms <= 60_000, 'must be at most 60s').default(10_000),
  clock_skew: positiveDuration.default(300_000),
  /** The longest span (lastSeen − firstSeen) of an observation believed: the agent's flush interval plus its longest tunnel or request. */
  max_observation_span: positiveDuration.default(600_000),
  /** Bearer token required on /v1/cloudtrail and /v1/guardduty, read from this file; null = no auth (loopback only, unless allowed below). */
  token_file: nullablePath,
  /** true: a listener that is not loopback may take /v1/cloudtrail and /v1/guardduty without a token (warned at every start). */
  allow_unauthenticated: z.boolean().default(false),
});
const admin = z.strictObject({ listen: listenAddress.default({ host: '127.0.0.1', port: 9465, text: '127.0.0.1:9465' }) });
const log = z.strictObject({ level: logLevel.default('info') });

export const detectorConfigSchema = z
  .strictObject({
    listen: listenAddress.default({ host: '127.0.0.1', port: 8443, text: '127.0.0.1:8443' }),
    tls: tls.default(() => tls.parse({})),
    admin: admin.default(() => admin.parse({})),
    store: store.default(() => store.parse({})),
    gateways: z.array(gateway).default([]),
    cloudtrail: cloudtrail.default(() => cloudtrail.parse({})),
    aws_ip_ranges: nullablePath,
    correlation: correlation.default(() => correlation.parse({})),
    inventory: inventory.default(() => inventory.parse({})),
    findings: findings.default(() => findings.parse({})),
    guardduty: guardduty.default(() => guardduty.parse({})),
    ingest: ingest.default(() => ingest.parse({})),
    log: log.default(() => log.parse({})),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.gateways.forEach((g, i) => {
      if (seen.has(g.id)) ctx.addIssue({ code: 'custom', path: ['gateways', i, 'id'], message: `duplicate gateway id "${g.id}"` });
      seen.add(g.id);
    });
    if ((c.tls.cert === null) !== (c.tls.key === null)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'set both tls.cert and tls.key, or neither' });
    }
    if (unauthenticatedEventRoutes(c) && !c.ingest.allow_unauthenticated) {
      ctx.addIssue({
        code: 'custom',
        path: ['listen'],
        message:
          `${c.listen.text} is reachable from other hosts and ingest.token_file is not set: anyone who reaches it could post ` +
          'CloudTrail events and GuardDuty findings; set ingest.token_file (with tls), listen on 127.0.0.1, or accept the risk ' +
          'with ingest.allow_unauthenticated: true',
      });
    }
  });

/**
 * Whether /v1/cloudtrail and /v1/guardduty take requests from other hosts without a token. TLS
 * does not count: it hides the traffic but does not say who sent it.
 */
export function unauthenticatedEventRoutes(c: { listen: { host: string }; ingest: { token_file: string | null } }): boolean {
  return c.ingest.token_file === null && !isLoopbackHost(c.listen.host);
}

export type DetectorConfig = z.output<typeof detectorConfigSchema>;
export type GatewayConfig = DetectorConfig['gateways'][number];
export type SecurityHubConfig = NonNullable<DetectorConfig['findings']['security_hub']>;

export const DETECTOR_MARKER_KEYS = ['gateways', 'cloudtrail', 'correlation', 'store', 'findings', 'guardduty'] as const;
