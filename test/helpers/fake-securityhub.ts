/**
 * A loopback Security Hub (HTTPS, certificate from test/helpers/pki.ts for
 * 127.0.0.1 and securityhub.us-east-1.amazonaws.com) speaking the restJson1
 * protocol of BatchImportFindings, so the real @aws-sdk/client-securityhub can
 * be pointed at it:
 *
 *   POST /findings/import  {"Findings":[ASFF…]}  →  200 {"SuccessCount","FailedCount","FailedFindings":[{Id,ErrorCode,ErrorMessage}]}
 *
 * It judges a request the way Security Hub does:
 *   - SigV4 for service securityhub in the fake's region, else 403;
 *   - body JSON with 1 to 100 findings, else 400 InvalidInputException (the whole call);
 *   - each finding: the required ASFF attributes (SchemaVersion 2018-10-08, Id, ProductArn, GeneratorId,
 *     AwsAccountId, Types, CreatedAt, UpdatedAt, Severity, Title, Description, Resources), their limits
 *     (Types paths in a known namespace, Title ≤ 256, Description ≤ 1024, Note.Text ≤ 512, ProductFields
 *     ≤ 50 of ≤ 128/2,048 characters outside aws/, RecordState ACTIVE|ARCHIVED) → else FailedFindings InvalidInput;
 *     AwsAccountId and the product (default product of the caller's account, in the fake's region) → else InvalidAccess;
 *   - create or update by (ProductArn, Id): an update whose UpdatedAt is not later than the stored one is
 *     ignored (still counted a success, as Security Hub does); Note, Workflow, UserDefinedFields and
 *     VerificationState are the customer's after creation and are not changed by an update.
 *
 * Scripted trouble: the next calls answer an error (status, error type, Retry-After), or 200 with a body
 * that is not a BatchImportFindings answer; given findings fail with an error code; down() closes the
 * listener (connection refused) until up() reopens it on the same port. Every call is recorded.
 */
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { JsonDoc } from './detector.js';
import { createTestCa } from './pki.js';

export interface FakeSecurityHubCall {
  path: string;
  status: number;
  /** The Ids of the findings sent, in order ([] when the body was not a list of findings). */
  ids: string[];
  authorization: string | undefined;
}

/** A finding as the fake keeps it, with every update it applied. */
export interface StoredFinding {
  current: JsonDoc;
  /** Each applied import of this finding (creation first), as sent. */
  versions: JsonDoc[];
  /** Imports ignored because their UpdatedAt was not later. */
  ignored: number;
}

export interface FakeSecurityHub {
  readonly port: number;
  readonly endpoint: string;
  readonly caPem: string;
  readonly calls: FakeSecurityHubCall[];
  finding(id: string): StoredFinding | undefined;
  findings(): StoredFinding[];
  /** The next `times` calls answer this error. */
  failNext(status: number, errorType: string, times?: number, retryAfter?: string): void;
  /** The next `times` calls answer 200 with this body (default: not JSON). */
  malformedNext(times?: number, body?: string): void;
  /** These findings fail with `code` in the next `times` calls that carry them. */
  failFindings(ids: readonly string[], code: string, times?: number): void;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export interface FakeSecurityHubOptions {
  region: string;
  /** The caller's account (the credentials'). */
  accountId: string;
}

const NAMESPACES = ['Software and Configuration Checks', 'TTPs', 'Effects', 'Unusual Behaviors', 'Sensitive Data Identifications'];
const REQUIRED = [
  'SchemaVersion',
  'Id',
  'ProductArn',
  'GeneratorId',
  'AwsAccountId',
  'Types',
  'CreatedAt',
  'UpdatedAt',
  'Severity',
  'Title',
  'Description',
  'Resources',
];
const SEVERITY_LABELS = ['INFORMATIONAL', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'];
/** Attributes a finding provider cannot change once the finding exists. */
const CUSTOMER_OWNED = ['Note', 'Workflow', 'UserDefinedFields', 'VerificationState'];

/** Why Security Hub would refuse this finding (InvalidInput), or null. */
export function asffProblem(f: JsonDoc): string | null {
  for (const k of REQUIRED) if (f[k] === undefined || f[k] === null || f[k] === '') return `${k} is required`;
  if (f.SchemaVersion !== '2018-10-08') return `SchemaVersion must be 2018-10-08`;
  for (const k of ['Id', 'GeneratorId'])
    if (typeof f[k] !== 'string' || f[k].length > 512) return `${k} must be a string of at most 512 characters`;
  if (!/^\d{12}$/.test(String(f.AwsAccountId))) return 'AwsAccountId must be 12 digits';
  if (!Array.isArray(f.Types) || f.Types.length === 0 || f.Types.length > 50) return 'Types must list 1 to 50 types';
  for (const t of f.Types as unknown[]) {
    const parts = typeof t === 'string' ? t.split('/') : [];
    if (parts.length < 1 || parts.length > 3 || !NAMESPACES.includes(parts[0]!) || parts.some((p) => p === ''))
      return `Types: ${JSON.stringify(t)} is not namespace/category/classifier in a known namespace`;
  }
  for (const k of ['CreatedAt', 'UpdatedAt', 'FirstObservedAt', 'LastObservedAt'])
    if (f[k] !== undefined && !(typeof f[k] === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(f[k]) && Number.isFinite(Date.parse(f[k]))))
      return `${k} must be an ISO 8601 time`;
  const sev = f.Severity as JsonDoc;
  if (typeof sev !== 'object' || (sev.Label === undefined && sev.Normalized === undefined)) return 'Severity needs Label or Normalized';
  if (sev.Label !== undefined && !SEVERITY_LABELS.includes(sev.Label)) return `Severity.Label ${JSON.stringify(sev.Label)} is not a label`;
  if (typeof f.Title !== 'string' || f.Title.length > 256) return 'Title must be at most 256 characters';
  if (typeof f.Description !== 'string' || f.Description.length > 1024) return 'Description must be at most 1024 characters';
  if (!Array.isArray(f.Resources) || f.Resources.length === 0 || f.Resources.length > 32) return 'Resources must list 1 to 32 resources';
  for (const r of f.Resources as JsonDoc[])
    if (typeof r.Type !== 'string' || typeof r.Id !== 'string' || !r.Type || !r.Id) return 'each resource needs Type and Id';
  if (f.Note !== undefined && (typeof f.Note.Text !== 'string' || f.Note.Text.length > 512 || typeof f.Note.UpdatedBy !== 'string'))
    return 'Note needs Text (at most 512 characters) and UpdatedBy';
  if (f.ProductFields !== undefined) {
    const entries = Object.entries(f.ProductFields as Record<string, unknown>);
    if (entries.length > 50) return 'ProductFields holds at most 50 fields';
    for (const [k, v] of entries) {
      if (k.length > 128 || k.startsWith('aws/')) return `ProductFields key ${JSON.stringify(k)} is too long or reserved`;
      if (typeof v !== 'string' || v.length > 2048) return `ProductFields value of ${k} must be a string of at most 2048 characters`;
    }
  }
  if (f.RecordState !== undefined && f.RecordState !== 'ACTIVE' && f.RecordState !== 'ARCHIVED')
    return 'RecordState must be ACTIVE or ARCHIVED';
  return null;
}

export async function startFakeSecurityHub(opts: FakeSecurityHubOptions): Promise<FakeSecurityHub> {
  const ca = await createTestCa('fake Security Hub CA');
  const leaf = await ca.issue({ dns: [`securityhub.${opts.region}.amazonaws.com`], ips: ['127.0.0.1'] });
  const store = new Map<string, StoredFinding>();
  const calls: FakeSecurityHubCall[] = [];
  const callFailures: { status: number; type: string; times: number; retryAfter?: string }[] = [];
  const malformed: { body: string; times: number }[] = [];
  const findingFailures = new Map<string, { code: string; times: number }>();
  const sockets = new Set<Socket>();
  const defaultProduct = `arn:aws:securityhub:${opts.region}:${opts.accountId}:product/${opts.accountId}/default`;

  const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        parsed = undefined;
      }
      const list = (parsed as JsonDoc | undefined)?.Findings as unknown;
      const findings = (Array.isArray(list) ? list : []) as JsonDoc[];
      const call: FakeSecurityHubCall = {
        path,
        status: 0,
        ids: findings.map((f) => String(f?.Id)),
        authorization: req.headers.authorization,
      };
      calls.push(call);
      const answer = (status: number, body: string, headers: Record<string, string> = {}): void => {
        call.status = status;
        res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-requestid': `req-${calls.length}`, ...headers }).end(body);
      };
      const error = (status: number, type: string, message: string, headers: Record<string, string> = {}): void =>
        answer(status, JSON.stringify({ __type: type, Code: type, Message: message }), { 'x-amzn-errortype': type, ...headers });

      if (req.method !== 'POST' || path !== '/findings/import')
        return error(404, 'ResourceNotFoundException', `no route for ${req.method} ${path}`);
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(req.headers.authorization ?? '');
      if (!req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 ') || scope?.[1] !== opts.region || scope[2] !== 'securityhub')
        return error(403, 'AccessDeniedException', 'missing or wrong SigV4 authorization for securityhub in this region');
      const failure = callFailures[0];
      if (failure) {
        if (--failure.times <= 0) callFailures.shift();
        return error(failure.status, failure.type, 'scripted failure', failure.retryAfter ? { 'retry-after': failure.retryAfter } : {});
      }
      const bad = malformed[0];
      if (bad) {
        if (--bad.times <= 0) malformed.shift();
        return answer(200, bad.body);
      }
      if (!Array.isArray(list)) return error(400, 'InvalidInputException', 'Findings is required');
      if (findings.length < 1 || findings.length > 100)
        return error(400, 'InvalidInputException', `Findings must hold 1 to 100 findings, not ${findings.length}`);

      const failed: { Id: string; ErrorCode: string; ErrorMessage: string }[] = [];
      for (const f of findings) {
        const id = String(f?.Id);
        const scripted = findingFailures.get(id);
        if (scripted) {
          if (--scripted.times <= 0) findingFailures.delete(id);
          failed.push({ Id: id, ErrorCode: scripted.code, ErrorMessage: 'scripted failure' });
          continue;
        }
        const problem = typeof f === 'object' && f !== null ? asffProblem(f) : 'not an object';
        if (problem) {
          failed.push({ Id: id, ErrorCode: 'InvalidInput', ErrorMessage: problem });
          continue;
        }
        if (f.AwsAccountId !== opts.accountId || f.ProductArn !== defaultProduct) {
          failed.push({ Id: id, ErrorCode: 'InvalidAccess', ErrorMessage: 'the account or product is not the caller’s in this region' });
          continue;
        }
        const key = `${f.ProductArn}|${id}`;
        const existing = store.get(key);
        if (!existing) {
          store.set(key, { current: { RecordState: 'ACTIVE', Workflow: { Status: 'NEW' }, ...f }, versions: [f], ignored: 0 });
        } else if (Date.parse(f.UpdatedAt) > Date.parse(existing.current.UpdatedAt)) {
          const kept = Object.fromEntries(
            CUSTOMER_OWNED.filter((k) => existing.current[k] !== undefined).map((k) => [k, existing.current[k]]),
          );
          existing.current = { RecordState: existing.current.RecordState, ...f, ...kept };
          existing.versions.push(f);
        } else existing.ignored++;
      }
      answer(200, JSON.stringify({ SuccessCount: findings.length - failed.length, FailedCount: failed.length, FailedFindings: failed }));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const listen = (port: number): Promise<void> =>
    new Promise((ok, fail) => server.once('error', fail).listen(port, '127.0.0.1', () => ok()));
  const shut = (): Promise<void> =>
    new Promise((ok) => {
      server.close(() => ok());
      for (const s of sockets) s.destroy();
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    endpoint: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    calls,
    finding: (id) => [...store.values()].find((s) => s.current.Id === id),
    findings: () => [...store.values()],
    failNext(status, errorType, times = 1, retryAfter) {
      callFailures.push({ status, type: errorType, times, ...(retryAfter !== undefined ? { retryAfter } : {}) });
    },
    malformedNext(times = 1, body = '<html>not a BatchImportFindings answer</html>') {
      malformed.push({ body, times });
    },
    failFindings(ids, code, times = 1) {
      for (const id of ids) findingFailures.set(id, { code, times });
    },
    down: shut,
    up: () => listen(port),
    async close() {
      if (server.listening) await shut();
    },
  };
}
