/**
 * Who signed a request, read from its Authorization header or presigned query:
 * access key ID, signature version and the credential scope. Never verifies a
 * signature (the proxy holds no secrets) and never copies a signature or a
 * session token into its result — only whether a token was present.
 *
 * Forms read:
 *   AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=…, Signature=…
 *   AWS4-ECDSA-P256-SHA256 Credential=AKID/DATE/SERVICE/aws4_request, …   (+ x-amz-region-set)
 *   AWS AKID:base64signature                                               (S3 SigV2)
 *   ?X-Amz-Algorithm=…&X-Amz-Credential=…&X-Amz-Signature=…                 (presigned V4 / V4A)
 *   ?AWSAccessKeyId=…&Signature=…&Expires=…                                 (presigned V2)
 *
 * A request that uses both a header and a query signature is malformed
 * ("bad-authorization"): AWS rejects it, so it cannot be attributed.
 */
import { ACCESS_KEY_ID_PATTERN } from '../../protocol/telemetry.js';
import { headerValue, paramsNamed, parseQuery, splitTarget } from './http-request.js';
import type { HeaderMap, QueryParam } from './http-request.js';

export type SignatureVersion = 'v4' | 'v4a' | 'v2';

export interface Attribution {
  accessKeyId: string;
  signatureVersion: SignatureVersion;
  auth: 'header' | 'query';
  /** YYYYMMDD from the credential scope; null for SigV2. */
  scopeDate: string | null;
  /** Scope region (SigV4), or the single region of a SigV4A region set; null otherwise. */
  region: string | null;
  /** SigV4A region set as sent ("*" and "us-*" wildcards kept); null for V4 and V2. */
  regionSet: string[] | null;
  /** Signing name from the scope; null for SigV2. */
  service: string | null;
  sessionToken: boolean;
}

export type MalformedReason = 'bad-authorization' | 'unknown-algorithm' | 'bad-credential' | 'bad-query';

export type AttributionResult =
  { kind: 'attributed'; attribution: Attribution } | { kind: 'unsigned' } | { kind: 'malformed'; reason: MalformedReason };

export interface SignedRequest {
  method: string;
  /** Request-target as on the request line: path plus optional "?query". */
  target: string;
  /** Lower-case header names. */
  headers: HeaderMap;
}

const SIGV4 = 'AWS4-HMAC-SHA256';
const SIGV4A = 'AWS4-ECDSA-P256-SHA256';
const SIGV2 = 'AWS';

/** The wire's access key ID shape (IAM issues upper-case letters and digits): anything else is bad-credential. */
const ACCESS_KEY_ID = ACCESS_KEY_ID_PATTERN;
const SCOPE_DATE = /^\d{8}$/;
const SCOPE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const REGION_SET_ENTRY = /^(?:\*|[a-z0-9][a-z0-9*-]{0,63})$/;
const SCOPE_TERMINATOR = 'aws4_request';

/** Query parameters whose values are secrets; compared case-insensitively. */
const SECRET_QUERY_PARAMS: ReadonlySet<string> = new Set(['x-amz-signature', 'signature', 'x-amz-security-token']);

type Malformed = Extract<AttributionResult, { kind: 'malformed' }>;
type Scope = Pick<Attribution, 'accessKeyId' | 'scopeDate' | 'region' | 'service'>;

const malformed = (reason: MalformedReason): Malformed => ({ kind: 'malformed', reason });

export function attributeRequest(req: SignedRequest): AttributionResult {
  const authorization = headerValue(req.headers, 'authorization');
  const params = parseQuery(splitTarget(req.target).query);
  const signedQuery = isQuerySigned(params);
  if (authorization.kind === 'repeated') return malformed('bad-authorization');
  if (authorization.kind === 'single' && signedQuery) return malformed('bad-authorization');
  const sessionToken = hasSessionToken(req.headers, params);
  if (authorization.kind === 'single') return fromAuthorizationHeader(authorization.value, req.headers, sessionToken);
  if (signedQuery) return fromQuery(params, req.headers, sessionToken);
  return { kind: 'unsigned' };
}

function isQuerySigned(params: readonly QueryParam[]): boolean {
  return ['x-amz-algorithm', 'x-amz-credential', 'awsaccesskeyid'].some((n) => paramsNamed(params, n).length > 0);
}

function hasSessionToken(headers: HeaderMap, params: readonly QueryParam[]): boolean {
  return headerValue(headers, 'x-amz-security-token').kind !== 'absent' || paramsNamed(params, 'x-amz-security-token').length > 0;
}

function attributed(attribution: Attribution): AttributionResult {
  return { kind: 'attributed', attribution };
}

function fromAuthorizationHeader(value: string, headers: HeaderMap, sessionToken: boolean): AttributionResult {
  const trimmed = value.trim();
  const gap = trimmed.search(/\s/);
  const algorithm = gap === -1 ? trimmed : trimmed.slice(0, gap);
  const rest = gap === -1 ? '' : trimmed.slice(gap + 1);
  if (algorithm === '') return malformed('bad-authorization');
  if (algorithm === SIGV2) return fromSigV2Header(rest, sessionToken);
  if (algorithm !== SIGV4 && algorithm !== SIGV4A) return malformed('unknown-algorithm');

  const fields = parseAuthorizationFields(rest);
  if (fields === null) return malformed('bad-authorization');
  const { credential, signedHeaders, signature } = fields;
  if (credential === undefined || signedHeaders === undefined || signature === undefined) return malformed('bad-authorization');
  if (algorithm === SIGV4) {
    const scope = parseV4Credential(credential);
    if (scope === null) return malformed('bad-credential');
    return attributed({ ...scope, signatureVersion: 'v4', auth: 'header', regionSet: null, sessionToken });
  }
  const regionSetHeader = headerValue(headers, 'x-amz-region-set');
  if (regionSetHeader.kind === 'repeated') return malformed('bad-authorization');
  return fromV4a(credential, regionSetHeader.kind === 'single' ? regionSetHeader.value : undefined, 'header', sessionToken);
}

interface AuthorizationFields {
  credential?: string;
  signedHeaders?: string;
  signature?: string;
}

/**
 * `Credential=…, SignedHeaders=…, Signature=…` with any mix of commas and
 * spaces between fields (none of the values may contain either). Field names
 * are matched case-insensitively; a repeated field is malformed.
 */
function parseAuthorizationFields(text: string): AuthorizationFields | null {
  const fields: AuthorizationFields = {};
  const keys: Readonly<Record<string, keyof AuthorizationFields>> = {
    credential: 'credential',
    signedheaders: 'signedHeaders',
    signature: 'signature',
  };
  for (const token of text.split(/[\s,]+/)) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    if (eq <= 0) return null;
    const key = keys[token.slice(0, eq).toLowerCase()];
    const value = token.slice(eq + 1);
    if (key === undefined) continue;
    if (fields[key] !== undefined || value === '') return null;
    fields[key] = value;
  }
  return fields;
}

function parseV4Credential(credential: string): Scope | null {
  const parts = credential.split('/');
  if (parts.length !== 5) return null;
  const [accessKeyId = '', date = '', region = '', service = '', terminator = ''] = parts;
  if (!ACCESS_KEY_ID.test(accessKeyId) || !SCOPE_DATE.test(date) || terminator !== SCOPE_TERMINATOR) return null;
  if (!SCOPE_NAME.test(region) || !SCOPE_NAME.test(service)) return null;
  return { accessKeyId, scopeDate: date, region, service };
}

function parseV4aCredential(credential: string): Omit<Scope, 'region'> | null {
  const parts = credential.split('/');
  if (parts.length !== 4) return null;
  const [accessKeyId = '', date = '', service = '', terminator = ''] = parts;
  if (!ACCESS_KEY_ID.test(accessKeyId) || !SCOPE_DATE.test(date) || terminator !== SCOPE_TERMINATOR) return null;
  if (!SCOPE_NAME.test(service)) return null;
  return { accessKeyId, scopeDate: date, service };
}

/** A missing region set still attributes the key; a garbled one is a bad credential. */
function fromV4a(
  credential: string,
  regionSetText: string | undefined,
  auth: 'header' | 'query',
  sessionToken: boolean,
): AttributionResult {
  const scope = parseV4aCredential(credential);
  if (scope === null) return malformed('bad-credential');
  let regionSet: string[] | null = null;
  if (regionSetText !== undefined) {
    regionSet = regionSetText.split(',').map((r) => r.trim().toLowerCase());
    if (!regionSet.every((r) => REGION_SET_ENTRY.test(r))) return malformed('bad-credential');
  }
  const only = regionSet?.length === 1 ? regionSet[0] : undefined;
  const region = only !== undefined && !only.includes('*') ? only : null;
  return attributed({ ...scope, region, regionSet, signatureVersion: 'v4a', auth, sessionToken });
}

function sigV2(accessKeyId: string, auth: 'header' | 'query', sessionToken: boolean): AttributionResult {
  return attributed({
    accessKeyId,
    signatureVersion: 'v2',
    auth,
    scopeDate: null,
    region: null,
    regionSet: null,
    service: null,
    sessionToken,
  });
}

function fromSigV2Header(rest: string, sessionToken: boolean): AttributionResult {
  const text = rest.trim();
  const colon = text.indexOf(':');
  if (colon === -1 || colon === text.length - 1 || /\s/.test(text)) return malformed('bad-authorization');
  const accessKeyId = text.slice(0, colon);
  if (!ACCESS_KEY_ID.test(accessKeyId)) return malformed('bad-credential');
  return sigV2(accessKeyId, 'header', sessionToken);
}

/** The one decoded value of a parameter; undefined when absent, null when repeated or undecodable. */
function oneParam(params: readonly QueryParam[], name: string): string | null | undefined {
  const found = paramsNamed(params, name);
  if (found.length === 0) return undefined;
  if (found.length > 1) return null;
  return found[0]?.value ?? null;
}

function fromQuery(params: readonly QueryParam[], headers: HeaderMap, sessionToken: boolean): AttributionResult {
  const v2Key = oneParam(params, 'awsaccesskeyid');
  const algorithm = oneParam(params, 'x-amz-algorithm');
  const credential = oneParam(params, 'x-amz-credential');
  if (v2Key !== undefined) {
    if (algorithm !== undefined || credential !== undefined) return malformed('bad-query');
    const signature = oneParam(params, 'signature');
    if (v2Key === null || !signature) return malformed('bad-query');
    if (!ACCESS_KEY_ID.test(v2Key)) return malformed('bad-credential');
    return sigV2(v2Key, 'query', sessionToken);
  }
  if (algorithm === null || algorithm === undefined || credential === null || credential === undefined) return malformed('bad-query');
  if (!oneParam(params, 'x-amz-signature')) return malformed('bad-query');
  if (algorithm === SIGV4) {
    const scope = parseV4Credential(credential);
    if (scope === null) return malformed('bad-credential');
    return attributed({ ...scope, signatureVersion: 'v4', auth: 'query', regionSet: null, sessionToken });
  }
  if (algorithm !== SIGV4A) return malformed('unknown-algorithm');
  const fromQueryParam = oneParam(params, 'x-amz-region-set');
  if (fromQueryParam === null) return malformed('bad-query');
  const header = headerValue(headers, 'x-amz-region-set');
  const regionSetText = fromQueryParam ?? (header.kind === 'single' ? header.value : undefined);
  return fromV4a(credential, regionSetText, 'query', sessionToken);
}

/**
 * The request-target with the values of signature and session-token query
 * parameters replaced by "REDACTED", for logging a URL. X-Amz-Credential is
 * kept: it holds only the key ID and scope.
 */
export function redactTarget(target: string): string {
  const q = target.indexOf('?');
  if (q === -1) return target;
  const redacted = target
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq === -1) return part;
      const rawName = part.slice(0, eq);
      const name = safeDecode(rawName).toLowerCase();
      return SECRET_QUERY_PARAMS.has(name) ? `${rawName}=REDACTED` : part;
    });
  return `${target.slice(0, q)}?${redacted.join('&')}`;
}

function safeDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
