/**
 * Who signed a request (agent/aws/signature.ts): Authorization headers
 * (SigV4, SigV4A, SigV2) and presigned query strings (V4, V4A, V2) built as
 * SDKs write them, then damaged as text; plus whole requests through
 * describeRequest (attribution, action, endpoint, form-body sniffer).
 *
 * Properties: never throws; an undamaged request is attributed exactly as
 * built; an attributed key is always one the request carries (in the
 * Authorization header, or a decoded query value) and has the wire's key
 * shape; no signature or session token is ever copied into a result, and
 * redactTarget removes them from an undamaged URL.
 */
import fc from 'fast-check';
import { attributeRequest, redactTarget, type AttributionResult } from '../../../agent/aws/signature.js';
import { describeRequest, actionReader } from '../../../agent/aws/describe-request.js';
import { parseQuery, splitTarget } from '../../../agent/aws/http-request.js';
import { ACCESS_KEY_ID_PATTERN } from '../../../protocol/telemetry.js';
import {
  expectedAttribution,
  requestOf,
  signedSpec,
  type HeaderMap,
  type SignedRequestParts,
  type SignedSpec,
} from '../lib/aws-request.js';
import { applyTextMutations, insertText, textMutation } from '../lib/mutate.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

interface SignedCase {
  spec: SignedSpec;
  request: SignedRequestParts;
  mutated: boolean;
}

/** Where the key may legitimately come from: the Authorization header text and every decoded query value. */
function keySources(req: SignedRequestParts): string[] {
  const out: string[] = [];
  const auth = req.headers['authorization'];
  if (typeof auth === 'string') out.push(auth);
  else if (Array.isArray(auth)) out.push(...auth);
  for (const p of parseQuery(splitTarget(req.target).query)) if (p.value !== null) out.push(p.value);
  return out;
}

function checkAttribution(c: SignedCase, result: AttributionResult | undefined): asserts result is AttributionResult {
  ensure(result !== undefined, 'no answer');
  ensure(['attributed', 'unsigned', 'malformed'].includes(result.kind), () => `unexpected kind ${result.kind}`);
  const json = JSON.stringify(result);
  ensure(!json.includes(c.spec.signature), 'the signature was copied into the result');
  if (c.spec.sessionToken !== null) ensure(!json.includes(c.spec.sessionToken), 'the session token was copied into the result');
  if (result.kind === 'attributed') {
    const key = result.attribution.accessKeyId;
    ensure(ACCESS_KEY_ID_PATTERN.test(key), () => `attributed a key of the wrong shape: ${key}`);
    ensure(
      keySources(c.request).some((s) => s.includes(key)),
      () => `attributed ${key}, which the request does not carry`,
    );
  }
  if (!c.mutated) {
    const want = { kind: 'attributed', attribution: expectedAttribution(c.spec) };
    ensure(deepEqual(result, want), () => `read ${fc.stringify(result)}, expected ${fc.stringify(want)}`);
    const redacted = parseQuery(splitTarget(redactTarget(c.request.target)).query);
    for (const p of redacted) {
      ensure(p.value !== c.spec.signature, 'redactTarget kept the signature');
      ensure(p.value !== c.spec.sessionToken, 'redactTarget kept the session token');
    }
  }
}

// ── Authorization header ─────────────────────────────────────────────────────

const headerCase: fc.Arbitrary<SignedCase> = fc
  .tuple(
    signedSpec.map((s) => ({ ...s, auth: 'header' as const })),
    fc.array(textMutation, { maxLength: 4 }),
    fc.constantFrom('single', 'single', 'single', 'repeated', 'array-of-one', 'region-set-repeated'),
  )
  .map(([spec, ms, shape]) => {
    const request = requestOf(spec);
    const auth = request.headers['authorization'] as string;
    const text = applyTextMutations(auth, ms);
    const headers: HeaderMap = { ...request.headers };
    headers['authorization'] = shape === 'repeated' ? [text, auth] : shape === 'array-of-one' ? [text] : text;
    if (shape === 'region-set-repeated') headers['x-amz-region-set'] = ['us-east-1', 'eu-west-1'];
    const mutated = ms.length > 0 || shape === 'repeated' || (shape === 'region-set-repeated' && spec.version === 'v4a');
    return { spec, request: { ...request, headers }, mutated };
  });

export const authorizationHeaderTarget: FuzzTarget<SignedCase> = {
  name: 'authorization-header',
  title: 'SigV4 / SigV4A / SigV2 Authorization header',
  arbitrary: headerCase,
  check(c) {
    checkAttribution(
      c,
      callParser('attributeRequest', () => attributeRequest(c.request)),
    );
  },
};

// ── presigned query ──────────────────────────────────────────────────────────

const queryCase: fc.Arbitrary<SignedCase> = fc
  .tuple(
    signedSpec.map((s) => ({ ...s, auth: 'query' as const })),
    fc.array(textMutation, { maxLength: 4 }),
    fc.option(fc.tuple(fc.nat(), insertText), { nil: null }),
  )
  .map(([spec, ms, headerNoise]) => {
    const request = requestOf(spec);
    const q = request.target.indexOf('?');
    const target = request.target.slice(0, q + 1) + applyTextMutations(request.target.slice(q + 1), ms);
    const headers: HeaderMap = { ...request.headers };
    // Sometimes a header signature as well (AWS refuses both), or a stray region-set header.
    if (headerNoise !== null) {
      if (headerNoise[0] % 2 === 0) headers['authorization'] = `AWS4-HMAC-SHA256 ${headerNoise[1]}`;
      else headers['x-amz-region-set'] = headerNoise[1];
    }
    const mutated = ms.length > 0 || (headerNoise !== null && (headerNoise[0] % 2 === 0 || spec.version === 'v4a'));
    return { spec, request: { ...request, target, headers }, mutated };
  });

export const presignedQueryTarget: FuzzTarget<SignedCase> = {
  name: 'presigned-query',
  title: 'presigned URL query (X-Amz-Credential, AWSAccessKeyId)',
  arbitrary: queryCase,
  check(c) {
    checkAttribution(
      c,
      callParser('attributeRequest', () => attributeRequest(c.request)),
    );
    callParser('redactTarget', () => redactTarget(c.request.target));
  },
};

// ── a whole request: describeRequest and the form-body sniffer ───────────────

interface DescribeCase {
  request: SignedRequestParts;
  host: string;
  body: Uint8Array[];
}

const HOSTS = [
  'sts.us-east-1.amazonaws.com',
  'bucket.s3.us-east-1.amazonaws.com',
  's3.amazonaws.com',
  'ec2.eu-west-1.amazonaws.com',
  'dynamodb.us-east-1.amazonaws.com',
  'lambda.us-east-1.amazonaws.com',
  'bucket.s3-accesspoint.us-east-1.amazonaws.com',
  'monitoring.cn-north-1.amazonaws.com.cn',
  'example.com',
  'x.api.aws',
];

const actionHeaders = fc.record(
  {
    'x-amz-target': fc.oneof(fc.constantFrom('DynamoDB_20120810.GetItem', 'AWSKMS.Decrypt', '.', ''), fc.string({ maxLength: 30 })),
    'content-type': fc.constantFrom('application/x-www-form-urlencoded; charset=utf-8', 'application/x-amz-json-1.0', 'text/plain'),
    'smithy-protocol': fc.constantFrom('rpc-v2-cbor', 'RPC-V2-CBOR ', 'other'),
  },
  { requiredKeys: [] },
);

const formBody = fc
  .tuple(
    fc.array(fc.tuple(fc.constantFrom('Action', 'Act%69on', 'Version', 'action', 'A', 'Action+'), paramValue()), { maxLength: 5 }),
    fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 6 }),
    fc.array(textMutation, { maxLength: 3 }),
  )
  .map(([pairs, cuts, ms]) => {
    const text = applyTextMutations(pairs.map(([k, v]) => `${k}=${v}`).join('&'), ms);
    const bytes = Buffer.from(text, 'utf8');
    const chunks: Uint8Array[] = [];
    let at = 0;
    for (const c of cuts) {
      chunks.push(bytes.subarray(at, at + c));
      at += c;
    }
    chunks.push(bytes.subarray(at));
    return chunks;
  });

function paramValue(): fc.Arbitrary<string> {
  return fc.oneof(fc.constantFrom('GetCallerIdentity', 'DescribeInstances', '%47et', ' Get ', '1abc', ''), fc.string({ maxLength: 20 }));
}

const describeCase: fc.Arbitrary<DescribeCase> = fc
  .tuple(
    signedSpec,
    fc.array(textMutation, { maxLength: 3 }),
    actionHeaders,
    fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'get', 'M-SEARCH', ''),
    fc.oneof(fc.constantFrom(...HOSTS), fc.string({ maxLength: 40 })),
    formBody,
  )
  .map(([spec, ms, extra, method, host, body]) => {
    const r = requestOf(spec);
    return {
      request: { method, target: applyTextMutations(r.target, ms), headers: { ...r.headers, ...extra, host } },
      host,
      body,
    };
  });

export const describeRequestTarget: FuzzTarget<DescribeCase> = {
  name: 'describe-request',
  title: 'request description (key, action, endpoint) and form-body action sniffer',
  arbitrary: describeCase,
  check({ request, host, body }) {
    const d = callParser('describeRequest', () => describeRequest({ ...request, host }));
    ensure(d !== undefined, 'no description');
    if (d.key) {
      const key = d.key.accessKeyId;
      ensure(
        keySources(request).some((s) => s.includes(key)),
        () => `attributed ${key}, which the request does not carry`,
      );
      ensure(d.key.accountId === null || /^\d{12}$/.test(d.key.accountId), () => `account ${d.key?.accountId} is not 12 digits`);
      ensure(d.unattributed === null, 'both a key and an unattributed reason');
    } else ensure(d.unattributed !== null, 'neither a key nor an unattributed reason');
    ensure(d.action === null || d.action.length <= 128, () => `action longer than 128: ${d.action}`);
    const reader = actionReader(d);
    for (const chunk of body) callParser('actionReader.peek', () => reader.peek?.(chunk));
    const action = callParser('actionReader.action', () => reader.action());
    ensure(action === null || (typeof action === 'string' && action.length <= 128), () => `bad action ${fc.stringify(action)}`);
  },
};
