/**
 * Signed AWS requests as SDKs write them — SigV4 and SigV4A Authorization
 * headers, S3 SigV2, presigned V4/V4A/V2 query strings — built from a spec
 * so the attribution every undamaged one must get is known.
 */
import fc from 'fast-check';
import type { Attribution } from '../../../agent/aws/signature.js';

export type HeaderMap = Record<string, string | string[] | undefined>;

export interface SignedSpec {
  version: 'v4' | 'v4a' | 'v2';
  auth: 'header' | 'query';
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  regionSet: string[] | null;
  signature: string;
  sessionToken: string | null;
  /** Header field layout: separator and field order. */
  separator: string;
  fieldOrder: number[];
  fieldCase: boolean;
  /** Query layout: which characters are percent-encoded, parameter-name case, order, unrelated parameters. */
  encodeSlashes: boolean;
  encodeAll: boolean;
  upperNames: boolean;
  extraParams: [string, string][];
  queryOrder: number[];
  path: string;
  absolute: boolean;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.split('');
const KEY_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split('');

export const accessKeyId: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('AKIA', 'ASIA', 'ABIA', 'ACCA'), fc.string({ unit: fc.constantFrom(...BASE32), minLength: 16, maxLength: 16 }))
      .map(([p, r]) => p + r),
  },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...KEY_CHARS), minLength: 16, maxLength: 128 }) },
);

const scopeName = fc.oneof(
  fc.constantFrom('us-east-1', 'eu-west-1', 'cn-north-1', 'us-gov-west-1', 's3', 'sts', 'execute-api', 'ec2'),
  fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/),
);
const regionSetEntry = fc.oneof(fc.constantFrom('*', 'us-*', 'us-east-1', 'eu-west-1'), fc.stringMatching(/^[a-z0-9][a-z0-9*-]{0,12}$/));
const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), minLength: n, maxLength: n });
const date = fc
  .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString().slice(0, 10).replace(/-/g, ''));
const paramName = fc.oneof(
  fc.constantFrom('prefix', 'list-type', 'Action', 'Version', 'uploads', 'x-id'),
  fc.stringMatching(/^[A-Za-z-]{1,10}$/),
);
const paramValue = fc.oneof(fc.constantFrom('', 'GetObject', '2', 'a b', 'ü'), fc.string({ maxLength: 12 }));

export const signedSpec: fc.Arbitrary<SignedSpec> = fc.record({
  version: fc.constantFrom('v4' as const, 'v4a' as const, 'v2' as const),
  auth: fc.constantFrom('header' as const, 'query' as const),
  accessKeyId,
  date,
  region: scopeName,
  service: scopeName,
  regionSet: fc.option(fc.array(regionSetEntry, { minLength: 1, maxLength: 3 }), { nil: null }),
  signature: fc.oneof(hex(64), hex(144), fc.base64String({ minLength: 28, maxLength: 28 })),
  sessionToken: fc.option(fc.base64String({ minLength: 40, maxLength: 120 }), { nil: null }),
  separator: fc.constantFrom(', ', ',', ' ', ' ,  ', ',\t'),
  fieldOrder: fc.constantFrom([0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1]),
  fieldCase: fc.boolean(),
  encodeSlashes: fc.boolean(),
  encodeAll: fc.boolean(),
  upperNames: fc.boolean(),
  extraParams: fc.array(fc.tuple(paramName, paramValue), { maxLength: 3 }),
  queryOrder: fc.array(fc.nat(), { maxLength: 8 }),
  path: fc.constantFrom('/', '/bucket/key.txt', '/2015-03-31/functions/f/invocations', '/a%20b/c'),
  absolute: fc.boolean(),
});

const V4_ALGORITHM = { v4: 'AWS4-HMAC-SHA256', v4a: 'AWS4-ECDSA-P256-SHA256' } as const;

function credentialOf(s: SignedSpec): string {
  return s.version === 'v4'
    ? `${s.accessKeyId}/${s.date}/${s.region}/${s.service}/aws4_request`
    : `${s.accessKeyId}/${s.date}/${s.service}/aws4_request`;
}

function encode(s: SignedSpec, value: string): string {
  if (s.encodeAll) return [...Buffer.from(value, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  const e = encodeURIComponent(value);
  return s.encodeSlashes ? e : e.replace(/%2F/g, '/');
}

export function authorizationOf(s: SignedSpec): string {
  if (s.version === 'v2') return `AWS ${s.accessKeyId}:${s.signature}`;
  const names = s.fieldCase ? ['credential', 'SIGNEDHEADERS', 'Signature'] : ['Credential', 'SignedHeaders', 'Signature'];
  const values = [credentialOf(s), 'host;x-amz-date', s.signature];
  const fields = s.fieldOrder.map((i) => `${names[i]}=${values[i]}`);
  return `${V4_ALGORITHM[s.version]} ${fields.join(s.separator)}`;
}

export function queryParamsOf(s: SignedSpec): [string, string][] {
  const name = (n: string) => (s.upperNames ? n.toUpperCase() : n);
  const params: [string, string][] =
    s.version === 'v2'
      ? [
          [name('AWSAccessKeyId'), s.accessKeyId],
          [name('Expires'), '1700000000'],
          [name('Signature'), s.signature],
        ]
      : [
          [name('X-Amz-Algorithm'), V4_ALGORITHM[s.version]],
          [name('X-Amz-Credential'), credentialOf(s)],
          [name('X-Amz-Date'), `${s.date}T000000Z`],
          [name('X-Amz-Expires'), '300'],
          [name('X-Amz-SignedHeaders'), 'host'],
          [name('X-Amz-Signature'), s.signature],
        ];
  if (s.version === 'v4a' && s.regionSet) params.push([name('X-Amz-Region-Set'), s.regionSet.join(',')]);
  if (s.sessionToken !== null) params.push([name('X-Amz-Security-Token'), s.sessionToken]);
  const reserved = new Set([
    'awsaccesskeyid',
    'signature',
    'x-amz-algorithm',
    'x-amz-credential',
    'x-amz-signature',
    'x-amz-security-token',
    'x-amz-region-set',
  ]);
  for (const p of s.extraParams) if (!reserved.has(p[0].toLowerCase())) params.push(p);
  for (let i = 0; i < s.queryOrder.length && params.length > 1; i++) {
    const a = i % params.length;
    const b = (s.queryOrder[i] as number) % params.length;
    [params[a], params[b]] = [params[b] as [string, string], params[a] as [string, string]];
  }
  return params;
}

export function queryOf(s: SignedSpec): string {
  return queryParamsOf(s)
    .map(([k, v]) => `${encode(s, k)}=${encode(s, v)}`)
    .join('&');
}

export interface SignedRequestParts {
  method: string;
  target: string;
  headers: HeaderMap;
}

export function requestOf(s: SignedSpec): SignedRequestParts {
  const headers: HeaderMap = { host: 'bucket.s3.us-east-1.amazonaws.com', 'x-amz-date': `${s.date}T000000Z` };
  const prefix = s.absolute ? 'http://bucket.s3.us-east-1.amazonaws.com' : '';
  if (s.auth === 'header') {
    headers.authorization = authorizationOf(s);
    if (s.sessionToken !== null) headers['x-amz-security-token'] = s.sessionToken;
    if (s.version === 'v4a' && s.regionSet) headers['x-amz-region-set'] = s.regionSet.join(',');
    const extra = s.extraParams.filter(([k]) => !/^(x-amz-|awsaccesskeyid$|signature$)/i.test(k));
    const query = extra.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    return { method: 'GET', target: `${prefix}${s.path}${query ? `?${query}` : ''}`, headers };
  }
  return { method: 'GET', target: `${prefix}${s.path}?${queryOf(s)}`, headers };
}

/** The attribution an undamaged request of `s` must get. */
export function expectedAttribution(s: SignedSpec): Attribution {
  const regionSet = s.version === 'v4a' && s.regionSet ? s.regionSet.map((r) => r.trim().toLowerCase()) : null;
  const only = regionSet?.length === 1 ? regionSet[0] : undefined;
  return {
    accessKeyId: s.accessKeyId,
    signatureVersion: s.version,
    auth: s.auth,
    scopeDate: s.version === 'v2' ? null : s.date,
    region: s.version === 'v4' ? s.region : s.version === 'v4a' && only !== undefined && !only.includes('*') ? only : null,
    regionSet,
    service: s.version === 'v2' ? null : s.service,
    sessionToken: s.sessionToken !== null,
  };
}
