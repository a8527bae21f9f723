/**
 * A loopback GuardDuty endpoint (HTTPS, certificate from test/helpers/pki.ts
 * for 127.0.0.1 and guardduty.us-east-1.amazonaws.com) speaking the
 * restJson1 wire protocol of the three calls the detector makes, so the real
 * @aws-sdk/client-guardduty can be pointed at it:
 *
 *   POST /detector/{detectorId}/findings          ListFindings     {findingCriteria:{criterion}, maxResults, nextToken} → {findingIds, nextToken}
 *   POST /detector/{detectorId}/findings/get      GetFindings      {findingIds}                                          → {findings}
 *   POST /detector/{detectorId}/findings/archive  ArchiveFindings  {findingIds}                                          → {}
 *
 * Bodies are camelCase JSON as on the wire; findings are stored and returned
 * in GuardDuty's wire shape. ListFindings applies `eq`/`equals` and
 * `neq`/`notEquals` criteria on dotted attribute paths (type,
 * service.archived…) and pages by min(maxResults, pageSize) with an opaque
 * nextToken; ArchiveFindings sets service.archived. Errors follow restJson1:
 * status, `x-amzn-errortype` header and `{__type, message}`. Every call is
 * recorded with its SigV4 Authorization header.
 */
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { JsonDoc } from './detector.js';
import { createTestCa } from './pki.js';

export type GuardDutyOperation = 'ListFindings' | 'GetFindings' | 'ArchiveFindings';

export interface FakeGuardDutyCall {
  op: GuardDutyOperation | 'unknown';
  method: string;
  path: string;
  detectorId: string | null;
  /** The JSON request body; {} when it was not JSON. */
  body: JsonDoc;
  authorization: string | undefined;
  status: number;
}

export interface FakeGuardDuty {
  readonly port: number;
  /** https://127.0.0.1:PORT */
  readonly endpoint: string;
  /** The CA that issued the server certificate (trust it as `extraCa` / `guardduty.ca_file`). */
  readonly caPem: string;
  readonly calls: FakeGuardDutyCall[];
  /** Caps every ListFindings page (besides the request's maxResults). */
  pageSize: number;
  /** Adds or replaces findings (wire shape) of the detector. */
  put(...findings: JsonDoc[]): void;
  finding(id: string): JsonDoc | undefined;
  /** Ids given to ArchiveFindings, in call order. */
  archivedIds(): string[];
  /** The next `times` calls of `op` fail with this status and error type. */
  failNext(op: GuardDutyOperation, status: number, errorType: string, times?: number): void;
  close(): Promise<void>;
}

export interface FakeGuardDutyOptions {
  detectorId: string;
  pageSize?: number;
}

const ROUTE = /^\/detector\/([^/]+)\/findings(\/get|\/archive)?$/;

function valueAt(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const p of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function matches(finding: JsonDoc, criterion: JsonDoc): boolean {
  for (const [attr, cond] of Object.entries(criterion)) {
    const v = valueAt(finding, attr);
    const text = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
    const eq = (cond.equals ?? cond.eq) as string[] | undefined;
    const neq = (cond.notEquals ?? cond.neq) as string[] | undefined;
    if (eq && !eq.includes(text)) return false;
    if (neq && neq.includes(text)) return false;
  }
  return true;
}

export async function startFakeGuardDuty(opts: FakeGuardDutyOptions): Promise<FakeGuardDuty> {
  const ca = await createTestCa('fake GuardDuty CA');
  const leaf = await ca.issue({ dns: ['guardduty.us-east-1.amazonaws.com'], ips: ['127.0.0.1'] });
  const findings = new Map<string, JsonDoc>();
  const calls: FakeGuardDutyCall[] = [];
  const failures: { op: GuardDutyOperation; status: number; type: string; times: number }[] = [];
  const sockets = new Set<Socket>();

  const fake = {
    pageSize: opts.pageSize ?? 50,
  };

  const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const m = ROUTE.exec(path);
      const op: FakeGuardDutyCall['op'] =
        m && req.method === 'POST'
          ? m[2] === '/get'
            ? 'GetFindings'
            : m[2] === '/archive'
              ? 'ArchiveFindings'
              : 'ListFindings'
          : 'unknown';
      let parsed: unknown;
      try {
        parsed = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      } catch {
        parsed = null;
      }
      const body = (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed : {}) as JsonDoc;
      const call: FakeGuardDutyCall = {
        op,
        method: req.method ?? '',
        path,
        detectorId: m?.[1] ? decodeURIComponent(m[1]) : null,
        body,
        authorization: req.headers.authorization,
        status: 0,
      };
      calls.push(call);
      const answer = (status: number, value: unknown, errorType?: string): void => {
        call.status = status;
        const headers: Record<string, string> = { 'content-type': 'application/json', 'x-amzn-requestid': `req-${calls.length}` };
        if (errorType) headers['x-amzn-errortype'] = errorType;
        res.writeHead(status, headers).end(JSON.stringify(value));
      };
      const error = (status: number, type: string, message: string): void => answer(status, { __type: type, message }, type);

      if (op === 'unknown') return error(404, 'NotFoundException', `no route for ${req.method} ${path}`);
      if (parsed === null) return error(400, 'BadRequestException', 'The request body is not valid JSON.');
      if (!req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 '))
        return error(403, 'AccessDeniedException', 'Missing Authentication Token');
      if (call.detectorId !== opts.detectorId)
        return error(
          400,
          'BadRequestException',
          'The request is rejected because the input detectorId is not owned by the current account.',
        );
      const failure = failures.find((f) => f.op === op);
      if (failure) {
        if (--failure.times <= 0) failures.splice(failures.indexOf(failure), 1);
        return error(failure.status, failure.type, 'scripted failure');
      }

      if (op === 'ListFindings') {
        const criterion = (body.findingCriteria?.criterion ?? {}) as JsonDoc;
        const ids = [...findings.values()].filter((f) => matches(f, criterion)).map((f) => f.id as string);
        const max = typeof body.maxResults === 'number' ? body.maxResults : 50;
        if (max < 1 || max > 50) return error(400, 'BadRequestException', 'maxResults must be between 1 and 50');
        let offset = 0;
        if (typeof body.nextToken === 'string' && body.nextToken !== '') {
          const decoded = /^offset:(\d+)$/.exec(Buffer.from(body.nextToken, 'base64').toString('utf8'));
          if (!decoded) return error(400, 'BadRequestException', 'The nextToken is invalid.');
          offset = Number(decoded[1]);
        }
        const size = Math.min(max, fake.pageSize);
        const page = ids.slice(offset, offset + size);
        const next = offset + size < ids.length ? Buffer.from(`offset:${offset + size}`).toString('base64') : '';
        return answer(200, { findingIds: page, nextToken: next });
      }
      const ids = body.findingIds as unknown;
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > 50 || !ids.every((i) => typeof i === 'string')) {
        return error(400, 'BadRequestException', 'findingIds must hold 1 to 50 finding ids');
      }
      if (op === 'GetFindings') return answer(200, { findings: ids.map((i) => findings.get(i)).filter((f) => f !== undefined) });
      for (const id of ids) {
        const f = findings.get(id);
        if (f) f.service = { ...f.service, archived: true };
      }
      return answer(200, {});
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return Object.assign(fake, {
    port,
    endpoint: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    calls,
    put(...fs: JsonDoc[]) {
      for (const f of fs) findings.set(f.id as string, structuredClone(f));
    },
    finding: (id: string) => findings.get(id),
    archivedIds: () => calls.filter((c) => c.op === 'ArchiveFindings' && c.status === 200).flatMap((c) => c.body.findingIds as string[]),
    failNext(op: GuardDutyOperation, status: number, type: string, times = 1) {
      failures.push({ op, status, type, times });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}
