import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { attributeRequest, redactTarget } from '../../../../agent/aws/signature.js';
import type { Attribution, AttributionResult } from '../../../../agent/aws/signature.js';
import { capture, capturingHandler, TEST_CREDENTIALS } from './sdk-capture.js';
import { ACCESS_KEY_ID_PATTERN } from '../../../../protocol/telemetry.js';

type Headers = Record<string, string | string[] | undefined>;

const attribute = (headers: Headers, target = '/'): AttributionResult => attributeRequest({ method: 'GET', target, headers });

const attributed = (result: AttributionResult): Attribution => {
  if (result.kind !== 'attributed') throw new Error(`expected attributed, got ${JSON.stringify(result)}`);
  return result.attribution;
};

const AKID = 'AKIAIOSFODNN7EXAMPLE';
const SIG64 = 'fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024';
/** The S3 documentation's GET example, as an SDK writes it. */
const S3_DOC_HEADER = `AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=${SIG64}`;

describe('attributeRequest: real SDK output', () => {
  it('attributes an STS call signed by the SDK with a session token', async () => {
    const client = new STSClient({ region: 'eu-west-1', credentials: TEST_CREDENTIALS, requestHandler: capturingHandler });
    const req = await capture(client, new GetCallerIdentityCommand({}));
    const result = attributeRequest(req);
    expect(attributed(result)).toEqual({
      accessKeyId: TEST_CREDENTIALS.accessKeyId,
      signatureVersion: 'v4',
      auth: 'header',
      scopeDate: req.headers['x-amz-date']?.slice(0, 8),
      region: 'eu-west-1',
      regionSet: null,
      service: 'sts',
      sessionToken: true,
    });
    expect(JSON.stringify(result)).not.toContain(TEST_CREDENTIALS.sessionToken);
  });

  it('attributes a URL presigned by the SDK', async () => {
    const client = new S3Client({ region: 'us-east-1', credentials: TEST_CREDENTIALS });
    const url = new URL(await getSignedUrl(client, new GetObjectCommand({ Bucket: 'reports', Key: 'q3.csv' }), { expiresIn: 60 }));
    const result = attribute({ host: url.host }, url.pathname + url.search);
    expect(attributed(result)).toMatchObject({
      accessKeyId: TEST_CREDENTIALS.accessKeyId,
      signatureVersion: 'v4',
      auth: 'query',
      region: 'us-east-1',
      service: 's3',
      sessionToken: true,
    });
    const signature = url.searchParams.get('X-Amz-Signature') ?? '';
    expect(signature).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(result)).not.toContain(signature);
    expect(redactTarget(url.pathname + url.search)).not.toContain(signature);
    expect(redactTarget(url.pathname + url.search)).not.toContain(encodeURIComponent(TEST_CREDENTIALS.sessionToken));
  });
});

describe('attributeRequest: header forms', () => {
  it.each<[string, Headers, Partial<Attribution>]>([
    [
      'SigV4 as in the S3 docs',
      { authorization: S3_DOC_HEADER },
      {
        accessKeyId: AKID,
        signatureVersion: 'v4',
        auth: 'header',
        scopeDate: '20130524',
        region: 'us-east-1',
        service: 's3',
        sessionToken: false,
        regionSet: null,
      },
    ],
    ['SigV4 without spaces after commas', { authorization: S3_DOC_HEADER.replace(/, /g, ',') }, { region: 'us-east-1', service: 's3' }],
    [
      'SigV4 with extra spaces and tabs',
      {
        authorization: `  AWS4-HMAC-SHA256   Credential=${AKID}/20130524/eu-west-2/ec2/aws4_request ,\tSignedHeaders=host , Signature=${SIG64}  `,
      },
      { region: 'eu-west-2', service: 'ec2' },
    ],
    [
      'SigV4 with fields separated by spaces only',
      { authorization: `AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/iam/aws4_request SignedHeaders=host Signature=${SIG64}` },
      { service: 'iam' },
    ],
    [
      'SigV4 with fields in another order',
      { authorization: `AWS4-HMAC-SHA256 Signature=${SIG64}, SignedHeaders=host, Credential=${AKID}/20130524/us-east-1/kms/aws4_request` },
      { service: 'kms' },
    ],
    [
      'SigV4 with a session token header',
      { authorization: S3_DOC_HEADER, 'x-amz-security-token': 'FwoGZXIvYXdzEXAMPLE' },
      { sessionToken: true },
    ],
    ['SigV4 single-element header array', { authorization: [S3_DOC_HEADER] }, { accessKeyId: AKID }],
    [
      'SigV4A with one region',
      {
        authorization: `AWS4-ECDSA-P256-SHA256 Credential=${AKID}/20240101/s3/aws4_request, SignedHeaders=host;x-amz-region-set, Signature=3045022100abcdef`,
        'x-amz-region-set': 'us-west-2',
      },
      { signatureVersion: 'v4a', region: 'us-west-2', regionSet: ['us-west-2'], service: 's3', scopeDate: '20240101' },
    ],
    [
      'SigV4A with several regions',
      {
        authorization: `AWS4-ECDSA-P256-SHA256 Credential=${AKID}/20240101/s3/aws4_request, SignedHeaders=host, Signature=3045022100abcdef`,
        'x-amz-region-set': 'us-east-1, eu-west-1',
      },
      { signatureVersion: 'v4a', region: null, regionSet: ['us-east-1', 'eu-west-1'] },
    ],
    [
      'SigV4A with a wildcard region set',
      {
        authorization: `AWS4-ECDSA-P256-SHA256 Credential=${AKID}/20240101/s3/aws4_request, SignedHeaders=host, Signature=3045022100abcdef`,
        'x-amz-region-set': '*',
      },
      { region: null, regionSet: ['*'] },
    ],
    [
      'SigV4A without a region set header',
      {
        authorization: `AWS4-ECDSA-P256-SHA256 Credential=${AKID}/20240101/s3/aws4_request, SignedHeaders=host, Signature=3045022100abcdef`,
      },
      { region: null, regionSet: null },
    ],
    [
      'S3 SigV2',
      { authorization: `AWS ${AKID}:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=` },
      { signatureVersion: 'v2', auth: 'header', scopeDate: null, region: null, service: null, regionSet: null, sessionToken: false },
    ],
    [
      'S3 SigV2 with a session token',
      { authorization: `AWS ${AKID}:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=`, 'x-amz-security-token': 'tok' },
      { signatureVersion: 'v2', sessionToken: true },
    ],
  ])('%s', (_name, headers, expected) => {
    expect(attributed(attribute(headers))).toMatchObject(expected);
  });
});

describe('attributeRequest: presigned query forms', () => {
  const docsPresigned = `/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${AKID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404`;

  it.each<[string, string, Headers, Partial<Attribution>]>([
    [
      'SigV4 (S3 docs example)',
      docsPresigned,
      {},
      {
        accessKeyId: AKID,
        signatureVersion: 'v4',
        auth: 'query',
        scopeDate: '20130524',
        region: 'us-east-1',
        service: 's3',
        sessionToken: false,
      },
    ],
    ['SigV4 with a token', `${docsPresigned}&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2Fabc%3D`, {}, { sessionToken: true }],
    [
      'SigV4 with lower-case parameter names',
      docsPresigned.toLowerCase().replace(AKID.toLowerCase(), AKID).replace('aws4-hmac-sha256', 'AWS4-HMAC-SHA256'),
      {},
      { accessKeyId: AKID, region: 'us-east-1' },
    ],
    ['SigV4 in absolute form', `https://examplebucket.s3.amazonaws.com${docsPresigned}`, {}, { accessKeyId: AKID }],
    [
      'SigV4A with region set in the query',
      `/k?X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256&X-Amz-Credential=${AKID}%2F20240101%2Fs3%2Faws4_request&X-Amz-Region-Set=eu-central-1&X-Amz-Signature=3045abcd&X-Amz-SignedHeaders=host`,
      {},
      { signatureVersion: 'v4a', auth: 'query', region: 'eu-central-1', regionSet: ['eu-central-1'], service: 's3' },
    ],
    [
      'SigV4A with region set in a header',
      `/k?X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256&X-Amz-Credential=${AKID}%2F20240101%2Fs3%2Faws4_request&X-Amz-Signature=3045abcd`,
      { 'x-amz-region-set': 'us-east-1,us-east-2' },
      { regionSet: ['us-east-1', 'us-east-2'], region: null },
    ],
    [
      'SigV2',
      `/photos/puppy.jpg?AWSAccessKeyId=${AKID}&Expires=1141889120&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D`,
      {},
      { signatureVersion: 'v2', auth: 'query', region: null, service: null, sessionToken: false },
    ],
    [
      'SigV2 with a token',
      `/p?AWSAccessKeyId=${AKID}&Expires=1141889120&Signature=vjby%3D&x-amz-security-token=FwoG%2Babc`,
      {},
      { signatureVersion: 'v2', sessionToken: true },
    ],
  ])('%s', (_name, target, headers, expected) => {
    expect(attributed(attribute(headers, target))).toMatchObject(expected);
  });
});

describe('attributeRequest: unsigned and malformed', () => {
  it.each<[string, Headers, string, AttributionResult]>([
    ['no authorization at all', {}, '/', { kind: 'unsigned' }],
    ['an empty header array', { authorization: [] }, '/', { kind: 'unsigned' }],
    ['a token but no signature', { 'x-amz-security-token': 'tok' }, '/?X-Amz-Security-Token=abc', { kind: 'unsigned' }],
    ['an unrelated query', {}, '/?Action=GetCallerIdentity&Version=2011-06-15', { kind: 'unsigned' }],
    [
      'a duplicated authorization header',
      { authorization: [S3_DOC_HEADER, S3_DOC_HEADER] },
      '/',
      { kind: 'malformed', reason: 'bad-authorization' },
    ],
    ['an empty authorization header', { authorization: '' }, '/', { kind: 'malformed', reason: 'bad-authorization' }],
    ['a bearer token', { authorization: 'Bearer ABSKexample' }, '/', { kind: 'malformed', reason: 'unknown-algorithm' }],
    ['basic auth', { authorization: 'Basic dXNlcjpwYXNz' }, '/', { kind: 'malformed', reason: 'unknown-algorithm' }],
    [
      'lower-case algorithm',
      { authorization: S3_DOC_HEADER.replace('AWS4-HMAC-SHA256', 'aws4-hmac-sha256') },
      '/',
      { kind: 'malformed', reason: 'unknown-algorithm' },
    ],
    ['algorithm alone', { authorization: 'AWS4-HMAC-SHA256' }, '/', { kind: 'malformed', reason: 'bad-authorization' }],
    [
      'no signature field',
      { authorization: `AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host` },
      '/',
      { kind: 'malformed', reason: 'bad-authorization' },
    ],
    [
      'a repeated credential field',
      { authorization: `${S3_DOC_HEADER}, Credential=${AKID}/20130524/us-east-1/s3/aws4_request` },
      '/',
      { kind: 'malformed', reason: 'bad-authorization' },
    ],
    [
      'a field without "="',
      { authorization: `AWS4-HMAC-SHA256 Credential ${AKID}` },
      '/',
      { kind: 'malformed', reason: 'bad-authorization' },
    ],
    [
      'a scope with four parts',
      { authorization: S3_DOC_HEADER.replace('/us-east-1/s3/', '/us-east-1/') },
      '/',
      { kind: 'malformed', reason: 'bad-credential' },
    ],
    ['a short key ID', { authorization: S3_DOC_HEADER.replace(AKID, 'AKIDEXAMPLE') }, '/', { kind: 'malformed', reason: 'bad-credential' }],
    [
      'a bad scope date',
      { authorization: S3_DOC_HEADER.replace('20130524', '2013-05-24') },
      '/',
      { kind: 'malformed', reason: 'bad-credential' },
    ],
    [
      'a bad terminator',
      { authorization: S3_DOC_HEADER.replace('aws4_request', 'aws4_reqest') },
      '/',
      { kind: 'malformed', reason: 'bad-credential' },
    ],
    [
      'a region with odd characters',
      { authorization: S3_DOC_HEADER.replace('us-east-1', 'us_east<1>') },
      '/',
      { kind: 'malformed', reason: 'bad-credential' },
    ],
    [
      'SigV4A scope with a region in it',
      { authorization: `AWS4-ECDSA-P256-SHA256 Credential=${AKID}/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=30` },
      '/',
      { kind: 'malformed', reason: 'bad-credential' },
    ],
    [
      'SigV4A garbled region set',
      {
        authorization: `AWS4-ECDSA-P256-SHA256 Credential=${AKID}/20240101/s3/aws4_request, SignedHeaders=host, Signature=30`,
        'x-amz-region-set': 'us-east-1,<script>',
      },
      '/',
      { kind: 'malformed', reason: 'bad-credential' },
    ],
    [
      'SigV4A repeated region set header',
      {
        authorization: `AWS4-ECDSA-P256-SHA256 Credential=${AKID}/20240101/s3/aws4_request, SignedHeaders=host, Signature=30`,
        'x-amz-region-set': ['us-east-1', 'us-west-2'],
      },
      '/',
      { kind: 'malformed', reason: 'bad-authorization' },
    ],
    ['SigV2 without a colon', { authorization: `AWS ${AKID}` }, '/', { kind: 'malformed', reason: 'bad-authorization' }],
    ['SigV2 without a signature', { authorization: `AWS ${AKID}:` }, '/', { kind: 'malformed', reason: 'bad-authorization' }],
    ['SigV2 with a bad key', { authorization: 'AWS AK-ID:sig=' }, '/', { kind: 'malformed', reason: 'bad-credential' }],
    [
      'header and query signatures together',
      { authorization: S3_DOC_HEADER },
      `/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${AKID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab`,
      { kind: 'malformed', reason: 'bad-authorization' },
    ],
    [
      'presigned without a signature',
      {},
      `/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${AKID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request`,
      { kind: 'malformed', reason: 'bad-query' },
    ],
    [
      'presigned without an algorithm',
      {},
      `/k?X-Amz-Credential=${AKID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab`,
      { kind: 'malformed', reason: 'bad-query' },
    ],
    [
      'presigned with an unknown algorithm',
      {},
      `/k?X-Amz-Algorithm=AWS4-HMAC-SHA512&X-Amz-Credential=${AKID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab`,
      { kind: 'malformed', reason: 'unknown-algorithm' },
    ],
    [
      'presigned with a repeated credential',
      {},
      `/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${AKID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Credential=x&X-Amz-Signature=ab`,
      { kind: 'malformed', reason: 'bad-query' },
    ],
    [
      'presigned with broken percent-encoding',
      {},
      `/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${AKID}%2G20130524&X-Amz-Signature=ab`,
      { kind: 'malformed', reason: 'bad-query' },
    ],
    [
      'presigned with a bad scope',
      {},
      `/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${AKID}%2F20130524&X-Amz-Signature=ab`,
      { kind: 'malformed', reason: 'bad-credential' },
    ],
    ['SigV2 query without a signature', {}, `/k?AWSAccessKeyId=${AKID}&Expires=1`, { kind: 'malformed', reason: 'bad-query' }],
    ['SigV2 query with a bad key', {}, `/k?AWSAccessKeyId=short&Signature=x`, { kind: 'malformed', reason: 'bad-credential' }],
    [
      'SigV2 and SigV4 query parameters together',
      {},
      `/k?AWSAccessKeyId=${AKID}&Signature=x&X-Amz-Algorithm=AWS4-HMAC-SHA256`,
      { kind: 'malformed', reason: 'bad-query' },
    ],
  ])('%s', (_name, headers, target, expected) => {
    expect(attribute(headers, target)).toEqual(expected);
  });
});

describe('attributeRequest: properties', () => {
  const base32Key = fc.tuple(fc.constantFrom('AKIA', 'ASIA'), fc.stringMatching(/^[A-Z2-7]{16}$/)).map(([p, s]) => p + s);
  const date = fc
    .date({ min: new Date('2010-01-01'), max: new Date('2099-12-31'), noInvalidDate: true })
    .map((d) => d.toISOString().slice(0, 10).replace(/-/g, ''));
  const region = fc.stringMatching(/^[a-z]{2}(-[a-z]{3,9}){1,2}-[1-9]$/);
  const service = fc.stringMatching(/^[a-z][a-z0-9-]{1,20}$/);
  const signature = fc.stringMatching(/^[0-9a-f]{64}$/);
  const token = fc.stringMatching(/^[A-Za-z0-9+/]{40,200}={0,2}$/);
  const separator = fc.constantFrom(', ', ',', ' ', ' ,  ', ',\t');

  it('never throws on arbitrary headers and targets', () => {
    const headers = fc.dictionary(
      fc.constantFrom('authorization', 'x-amz-security-token', 'x-amz-region-set', 'x-amz-date', 'host', 'x-other'),
      fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 }), fc.constant(undefined)),
    );
    const authorization = fc.oneof(
      fc.string(),
      fc.tuple(fc.constantFrom('AWS4-HMAC-SHA256 ', 'AWS4-ECDSA-P256-SHA256 ', 'AWS ', ''), fc.string()).map(([a, b]) => a + b),
    );
    const target = fc.oneof(
      fc.string(),
      fc.webUrl({ withQueryParameters: true }),
      fc.string().map((s) => `/?${s}`),
    );
    fc.assert(
      fc.property(headers, authorization, target, fc.boolean(), (h, auth, t, useAuth) => {
        const result = attributeRequest({ method: 'GET', target: t, headers: useAuth ? { ...h, authorization: auth } : h });
        expect(['attributed', 'unsigned', 'malformed']).toContain(result.kind);
      }),
      { numRuns: 1000 },
    );
  });

  it('round-trips key, date, region and service through a SigV4 header and never echoes secrets', () => {
    fc.assert(
      fc.property(base32Key, date, region, service, signature, token, separator, fc.boolean(), (key, d, r, s, sig, tok, sep, withToken) => {
        const authorization = `AWS4-HMAC-SHA256 Credential=${key}/${d}/${r}/${s}/aws4_request${sep}SignedHeaders=host;x-amz-date${sep}Signature=${sig}`;
        const headers: Headers = withToken ? { authorization, 'x-amz-security-token': tok } : { authorization };
        const result = attributeRequest({ method: 'POST', target: '/', headers });
        expect(attributed(result)).toEqual({
          accessKeyId: key,
          signatureVersion: 'v4',
          auth: 'header',
          scopeDate: d,
          region: r,
          regionSet: null,
          service: s,
          sessionToken: withToken,
        });
        const json = JSON.stringify(result);
        expect(json).not.toContain(sig);
        expect(json).not.toContain(tok);
      }),
    );
  });

  it('round-trips a presigned SigV4 query and never echoes secrets', () => {
    fc.assert(
      fc.property(base32Key, date, region, service, signature, token, (key, d, r, s, sig, tok) => {
        const credential = encodeURIComponent(`${key}/${d}/${r}/${s}/aws4_request`);
        const target =
          `/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${credential}&X-Amz-Date=${d}T000000Z` +
          `&X-Amz-Expires=300&X-Amz-Security-Token=${encodeURIComponent(tok)}&X-Amz-Signature=${sig}&X-Amz-SignedHeaders=host`;
        const result = attributeRequest({ method: 'GET', target, headers: {} });
        expect(attributed(result)).toMatchObject({
          accessKeyId: key,
          scopeDate: d,
          region: r,
          service: s,
          auth: 'query',
          sessionToken: true,
        });
        const json = JSON.stringify(result);
        expect(json).not.toContain(sig);
        expect(json).not.toContain(tok);
        const redacted = redactTarget(target);
        expect(redacted).not.toContain(sig);
        expect(redacted).not.toContain(encodeURIComponent(tok));
        expect(redacted).toContain(credential);
      }),
    );
  });

  it('round-trips SigV4A and SigV2 keys and never echoes secrets', () => {
    fc.assert(
      fc.property(
        base32Key,
        date,
        fc.array(region, { minLength: 1, maxLength: 4 }),
        service,
        signature,
        token,
        (key, d, regions, s, sig, tok) => {
          const v4a = attributeRequest({
            method: 'GET',
            target: '/',
            headers: {
              authorization: `AWS4-ECDSA-P256-SHA256 Credential=${key}/${d}/${s}/aws4_request, SignedHeaders=host, Signature=${sig}`,
              'x-amz-region-set': regions.join(','),
              'x-amz-security-token': tok,
            },
          });
          expect(attributed(v4a)).toMatchObject({
            accessKeyId: key,
            service: s,
            regionSet: regions,
            region: regions.length === 1 ? regions[0] : null,
          });
          const v2 = attributeRequest({ method: 'GET', target: '/', headers: { authorization: `AWS ${key}:${tok}` } });
          expect(attributed(v2).accessKeyId).toBe(key);
          for (const result of [v4a, v2]) {
            expect(JSON.stringify(result)).not.toContain(sig);
            expect(JSON.stringify(result)).not.toContain(tok);
          }
        },
      ),
    );
  });
});

describe('redactTarget', () => {
  it.each([
    ['/k', '/k'],
    ['/k?prefix=a&max-keys=2', '/k?prefix=a&max-keys=2'],
    ['/k?X-Amz-Signature=abc123&X-Amz-Credential=AKID%2F2013', '/k?X-Amz-Signature=REDACTED&X-Amz-Credential=AKID%2F2013'],
    ['/k?X-Amz-Security-Token=tok%2Fen&a=b', '/k?X-Amz-Security-Token=REDACTED&a=b'],
    [
      '/k?AWSAccessKeyId=AKID&Signature=sig%3D&x-amz-security-token=tok',
      '/k?AWSAccessKeyId=AKID&Signature=REDACTED&x-amz-security-token=REDACTED',
    ],
    ['/k?x-amz-signature=abc', '/k?x-amz-signature=REDACTED'],
    ['/k?X%2DAmz%2DSignature=abc', '/k?X%2DAmz%2DSignature=REDACTED'],
    ['/k?Signature', '/k?Signature'],
    ['/k?notSignature=keep', '/k?notSignature=keep'],
    ['https://b.s3.amazonaws.com/k?Signature=x', 'https://b.s3.amazonaws.com/k?Signature=REDACTED'],
  ])('%s → %s', (target, expected) => {
    expect(redactTarget(target)).toBe(expected);
  });

  it('never throws', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(typeof redactTarget(s)).toBe('string');
      }),
    );
  });
});

describe('attributeRequest: only wire-valid key IDs are attributed', () => {
  it('calls a key ID the telemetry protocol would refuse bad-credential, so one odd client cannot spoil a batch', () => {
    const auth =
      'AWS4-HMAC-SHA256 Credential=abcdefghijklmnop/20261125/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=' + 'a'.repeat(64);
    expect(attributeRequest({ method: 'GET', target: '/', headers: { authorization: auth } })).toEqual({
      kind: 'malformed',
      reason: 'bad-credential',
    });
    const result = attributeRequest({
      method: 'GET',
      target: '/',
      headers: { authorization: auth.replace('abcdefghijklmnop', 'ASIAY34FZKBOKMUTVV7A') },
    });
    expect(result.kind).toBe('attributed');
    if (result.kind === 'attributed') expect(ACCESS_KEY_ID_PATTERN.test(result.attribution.accessKeyId)).toBe(true);
  });
});
