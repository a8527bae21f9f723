import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GetCallerIdentityCommand, AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { DynamoDBClient, GetItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketAclCommand,
  GetBucketLocationCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { actionFromRequest, FormActionSniffer, FORM_SNIFF_LIMIT_BYTES, restTemplate } from '../../../../agent/aws/action.js';
import type { ActionResult } from '../../../../agent/aws/action.js';
import { classifyEndpoint } from '../../../../agent/aws/endpoint.js';
import { attributeRequest } from '../../../../agent/aws/signature.js';
import { capture, capturingHandler, TEST_CREDENTIALS } from './sdk-capture.js';
import type { CapturedRequest } from './sdk-capture.js';

type Headers = Record<string, string | string[] | undefined>;

const config = { region: 'eu-west-1', credentials: TEST_CREDENTIALS, requestHandler: capturingHandler };
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The caller's pipeline: endpoint from Host, service from the SigV4 scope, body sniffed when needed. */
function actionOf(req: CapturedRequest): ActionResult & { sniffed?: string | null } {
  const endpoint = classifyEndpoint(req.host);
  const attribution = attributeRequest(req);
  const service = attribution.kind === 'attributed' ? attribution.attribution.service : (endpoint?.service ?? null);
  const result = actionFromRequest({ method: req.method, target: req.target, headers: req.headers, service, endpoint });
  if (result.source !== 'needs-body') return result;
  const sniffer = new FormActionSniffer();
  return { ...result, sniffed: sniffer.push(req.body) ?? sniffer.end() };
}

const sniff = (chunks: readonly Uint8Array[]): string | null => {
  const sniffer = new FormActionSniffer();
  for (const chunk of chunks) {
    const answer = sniffer.push(chunk);
    if (answer !== undefined) return answer;
  }
  return sniffer.end();
};

describe('actionFromRequest: awsQuery / ec2Query (SDK requests)', () => {
  it.each([
    ['STS GetCallerIdentity', () => capture(new STSClient(config), new GetCallerIdentityCommand({})), 'GetCallerIdentity'],
    [
      'STS AssumeRole',
      () => capture(new STSClient(config), new AssumeRoleCommand({ RoleArn: 'arn:aws:iam::123456789012:role/r', RoleSessionName: 's' })),
      'AssumeRole',
    ],
    ['EC2 DescribeInstances', () => capture(new EC2Client(config), new DescribeInstancesCommand({})), 'DescribeInstances'],
  ] as const)('%s needs the body, which names the action', async (_name, send, expected) => {
    const req = await send();
    expect(actionOf(req)).toEqual({ action: null, source: 'needs-body', sniffed: expected });
  });

  it.each<[string, string, Headers, ActionResult]>([
    [
      'STS GET with Action in the query',
      '/?Action=GetCallerIdentity&Version=2011-06-15',
      {},
      { action: 'GetCallerIdentity', source: 'query' },
    ],
    [
      'IAM POST with Action in the query wins over the body',
      '/?Action=ListUsers&Version=2010-05-08',
      { 'content-type': 'application/x-www-form-urlencoded' },
      { action: 'ListUsers', source: 'query' },
    ],
    ['EC2 GET', '/?Version=2016-11-15&Action=DescribeRegions', {}, { action: 'DescribeRegions', source: 'query' }],
    ['percent-encoded action', '/?Action=Get%43allerIdentity', {}, { action: 'GetCallerIdentity', source: 'query' }],
    ['absolute-form target', 'http://sts.amazonaws.com/?Action=GetSessionToken', {}, { action: 'GetSessionToken', source: 'query' }],
    ['an invalid action value', '/?Action=Get%20Caller', {}, { action: null, source: 'query' }],
    ['a repeated Action', '/?Action=A&Action=B', {}, { action: null, source: 'query' }],
    ['"SomeAction" is not "Action"', '/?SomeAction=GetX', {}, { action: 'GET /', source: 'rest' }],
    ['"action" is not "Action"', '/?action=GetX', {}, { action: 'GET /', source: 'rest' }],
    [
      'form POST with charset',
      '/',
      { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      { action: null, source: 'needs-body' },
    ],
  ])('%s', (_name, target, headers, expected) => {
    const method = headers['content-type'] === undefined ? 'GET' : 'POST';
    expect(actionFromRequest({ method, target, headers, service: 'sts' })).toEqual(expected);
  });
});

describe('actionFromRequest: awsJson and rpcv2Cbor', () => {
  it.each([
    [
      'DynamoDB GetItem',
      () => capture(new DynamoDBClient(config), new GetItemCommand({ TableName: 't', Key: { k: { S: 'v' } } })),
      'GetItem',
    ],
    [
      'DynamoDB Query',
      () => capture(new DynamoDBClient(config), new QueryCommand({ TableName: 't', KeyConditionExpression: 'k = :v' })),
      'Query',
    ],
    ['KMS Decrypt', () => capture(new KMSClient(config), new DecryptCommand({ CiphertextBlob: new Uint8Array([1, 2, 3]) })), 'Decrypt'],
  ] as const)('%s from X-Amz-Target', async (_name, send, expected) => {
    expect(actionOf(await send())).toEqual({ action: expected, source: 'target-header' });
  });

  it.each<[string, string, Headers, ActionResult]>([
    ['Secrets Manager', '/', { 'x-amz-target': 'secretsmanager.GetSecretValue' }, { action: 'GetSecretValue', source: 'target-header' }],
    ['SSM', '/', { 'x-amz-target': 'AmazonSSM.GetParameter' }, { action: 'GetParameter', source: 'target-header' }],
    ['target without a prefix', '/', { 'x-amz-target': 'ListTables' }, { action: 'ListTables', source: 'target-header' }],
    ['garbled target', '/', { 'x-amz-target': 'DynamoDB_20120810.Get Item' }, { action: null, source: 'target-header' }],
    ['repeated target', '/', { 'x-amz-target': ['A.B', 'C.D'] }, { action: null, source: 'target-header' }],
    [
      'target header wins over the query',
      '/?Action=Other',
      { 'x-amz-target': 'Logs_20140328.PutLogEvents' },
      { action: 'PutLogEvents', source: 'target-header' },
    ],
    [
      'rpcv2Cbor',
      '/service/GraniteServiceVersion20100801/operation/GetMetricData',
      { 'smithy-protocol': 'rpc-v2-cbor' },
      { action: 'GetMetricData', source: 'rpcv2' },
    ],
    [
      'rpcv2Cbor under a path prefix',
      '/prefix/service/S/operation/PutMetricData',
      { 'smithy-protocol': 'rpc-v2-cbor' },
      { action: 'PutMetricData', source: 'rpcv2' },
    ],
    ['rpcv2Cbor with a bad path', '/service/S/operations/X', { 'smithy-protocol': 'rpc-v2-cbor' }, { action: null, source: 'rpcv2' }],
    [
      'rpcv2 path without the protocol header is REST',
      '/service/S/operation/X',
      {},
      { action: 'POST /service/S/operation/X', source: 'rest' },
    ],
  ])('%s', (_name, target, headers, expected) => {
    expect(actionFromRequest({ method: 'POST', target, headers, service: 'monitoring' })).toEqual(expected);
  });
});

describe('actionFromRequest: S3 (SDK requests, virtual-host and path style)', () => {
  const b = 'example-bucket';
  const k = 'dir/report 2024.csv';
  const u = 'upload-id-123';
  const commands: ReadonlyArray<readonly [string, unknown]> = [
    ['GetObject', new GetObjectCommand({ Bucket: b, Key: k })],
    ['PutObject', new PutObjectCommand({ Bucket: b, Key: k, Body: 'x' })],
    ['HeadObject', new HeadObjectCommand({ Bucket: b, Key: k })],
    ['DeleteObject', new DeleteObjectCommand({ Bucket: b, Key: k })],
    ['CopyObject', new CopyObjectCommand({ Bucket: b, Key: k, CopySource: `${b}/src.csv` })],
    ['ListObjectsV2', new ListObjectsV2Command({ Bucket: b, Prefix: 'dir/' })],
    ['ListObjects', new ListObjectsCommand({ Bucket: b })],
    ['ListObjectVersions', new ListObjectVersionsCommand({ Bucket: b })],
    ['HeadBucket', new HeadBucketCommand({ Bucket: b })],
    ['CreateBucket', new CreateBucketCommand({ Bucket: b })],
    ['DeleteBucket', new DeleteBucketCommand({ Bucket: b })],
    ['GetBucketLocation', new GetBucketLocationCommand({ Bucket: b })],
    ['GetBucketPolicy', new GetBucketPolicyCommand({ Bucket: b })],
    ['PutBucketPolicy', new PutBucketPolicyCommand({ Bucket: b, Policy: '{}' })],
    ['DeleteBucketPolicy', new DeleteBucketPolicyCommand({ Bucket: b })],
    ['GetBucketAcl', new GetBucketAclCommand({ Bucket: b })],
    ['GetBucketVersioning', new GetBucketVersioningCommand({ Bucket: b })],
    ['GetObjectAcl', new GetObjectAclCommand({ Bucket: b, Key: k })],
    ['GetObjectTagging', new GetObjectTaggingCommand({ Bucket: b, Key: k })],
    ['PutObjectTagging', new PutObjectTaggingCommand({ Bucket: b, Key: k, Tagging: { TagSet: [] } })],
    ['CreateMultipartUpload', new CreateMultipartUploadCommand({ Bucket: b, Key: k })],
    ['UploadPart', new UploadPartCommand({ Bucket: b, Key: k, UploadId: u, PartNumber: 1, Body: 'x' })],
    ['UploadPartCopy', new UploadPartCopyCommand({ Bucket: b, Key: k, UploadId: u, PartNumber: 1, CopySource: `${b}/src` })],
    ['ListParts', new ListPartsCommand({ Bucket: b, Key: k, UploadId: u })],
    [
      'CompleteMultipartUpload',
      new CompleteMultipartUploadCommand({ Bucket: b, Key: k, UploadId: u, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"e"' }] } }),
    ],
    ['AbortMultipartUpload', new AbortMultipartUploadCommand({ Bucket: b, Key: k, UploadId: u })],
    ['ListMultipartUploads', new ListMultipartUploadsCommand({ Bucket: b })],
    ['DeleteObjects', new DeleteObjectsCommand({ Bucket: b, Delete: { Objects: [{ Key: 'a' }] } })],
    ['ListBuckets', new ListBucketsCommand({})],
  ];
  const clients = [
    ['virtual-host', new S3Client(config)],
    ['path-style', new S3Client({ ...config, forcePathStyle: true })],
  ] as const;
  const rows = clients.flatMap(([style, client]) => commands.map(([name, command]) => [style, name, client, command] as const));

  it.each(rows)('%s %s', async (style, expected, client, command) => {
    const req = await capture(client, command);
    const endpoint = classifyEndpoint(req.host);
    if (expected !== 'ListBuckets') expect(endpoint?.bucket).toBe(style === 'virtual-host' ? b : undefined);
    expect(actionOf(req)).toEqual({ action: expected, source: 'rest' });
  });

  it.each<[string, string, string, Headers, string]>([
    ['unknown bucket sub-resource hides the bucket', 'GET', '/my-bucket?intelligent-tiering', {}, 'GET /{bucket}'],
    ['unknown object method hides the key', 'PATCH', '/my-bucket/secret/payroll.csv', {}, 'PATCH /{bucket}/{key}'],
    ['bucket tagging', 'PUT', '/my-bucket?tagging', {}, 'PutBucketTagging'],
    ['object DELETE with uploadId', 'DELETE', '/my-bucket/k?uploadId=abc', {}, 'AbortMultipartUpload'],
    ['bucket POST without sub-resource', 'POST', '/my-bucket', { 'content-type': 'multipart/form-data; boundary=x' }, 'PostObject'],
    ['service-level PUT', 'PUT', '/', {}, 'PUT /'],
  ])('%s', (_name, method, target, headers, expected) => {
    expect(actionFromRequest({ method, target, headers, service: 's3', endpoint: classifyEndpoint('s3.eu-west-1.amazonaws.com') })).toEqual(
      { action: expected, source: 'rest' },
    );
  });

  it('reads the key from the path on access points and S3 Express zonal endpoints', () => {
    for (const host of [
      'ap-123456789012.s3-accesspoint.us-east-1.amazonaws.com',
      'd--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com',
    ]) {
      const endpoint = classifyEndpoint(host);
      expect(actionFromRequest({ method: 'GET', target: '/k', headers: {}, service: endpoint?.service ?? null, endpoint }).action).toBe(
        'GetObject',
      );
      expect(
        actionFromRequest({ method: 'GET', target: '/?list-type=2', headers: {}, service: endpoint?.service ?? null, endpoint }).action,
      ).toBe('ListObjectsV2');
    }
  });

  it('treats S3 Control as generic REST even when the scope says s3', () => {
    const endpoint = classifyEndpoint('123456789012.s3-control.us-east-1.amazonaws.com');
    expect(actionFromRequest({ method: 'GET', target: '/v20180820/accesspoint', headers: {}, service: 's3', endpoint })).toEqual({
      action: 'GET /v20180820/accesspoint',
      source: 'rest',
    });
  });
});

describe('actionFromRequest: generic REST templates', () => {
  it.each<[string, string, string]>([
    ['POST', '/2015-03-31/functions/my-fn/invocations', 'POST /2015-03-31/functions/{id}/invocations'],
    ['GET', '/2015-03-31/functions/', 'GET /2015-03-31/functions'],
    [
      'GET',
      '/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/configuration',
      'GET /2015-03-31/functions/{id}/configuration',
    ],
    ['GET', '/2017-03-31/tags/arn:aws:lambda:us-east-1:123456789012:function:f', 'GET /2017-03-31/tags/{id}'],
    ['GET', '/restapis/a1b2c3/resources/xyz/methods/GET', 'GET /restapis/{id}/resources/{id}/methods/{id}'],
    ['GET', '/2013-04-01/hostedzone/Z1D633PJN98FT9/rrset', 'GET /2013-04-01/hostedzone/{id}/rrset'],
    ['GET', '/2020-05-31/distribution/E2QWRUHAPOMQZL/config', 'GET /2020-05-31/distribution/{id}/config'],
    ['DELETE', '/clusters/prod/node-groups/ng-1', 'DELETE /clusters/{id}/node-groups/{id}'],
    ['GET', '/v1/jobs/3f2504e0-4f89-11d3-9a0c-0305e82c3301', 'GET /v1/jobs/{id}'],
    ['GET', '/v20180820/bucket/abc/12345', 'GET /v20180820/bucket/abc/{id}'],
    ['GET', '/instance/i-0abc1234def567890/status', 'GET /instance/{id}/status'],
    ['GET', '/hex/deadbeefcafe/x', 'GET /hex/{id}/x'],
    ['GET', '/a/b/c/d/e/f/g/h', 'GET /a/b/c/d/e/f/...'],
    ['GET', '/', 'GET /'],
    ['GET', '/status/health', 'GET /status/health'],
    ['get', '/x?secret=1', 'GET /x'],
    ['GE T', '/x', 'OTHER /x'],
    ['GET', `/${'a'.repeat(40)}/b`, 'GET /{id}/b'],
  ])('%s %s → %s', (method, target, expected) => {
    expect(actionFromRequest({ method, target, headers: {}, service: 'lambda', endpoint: null })).toEqual({
      action: expected,
      source: 'rest',
    });
  });

  it('never exceeds 128 characters and never includes the query', () => {
    fc.assert(
      fc.property(fc.string(), fc.webPath(), fc.string(), (method, path, query) => {
        const result = actionFromRequest({ method, target: `${path}?${query}`, headers: {}, service: null });
        expect(result.action?.length ?? 0).toBeLessThanOrEqual(128);
        if (query.length > 3 && !/[/?]/.test(query)) expect(result.action ?? '').not.toContain(`?${query}`);
        expect(restTemplate(method, path).length).toBeLessThanOrEqual(128);
      }),
    );
  });
});

describe('actionFromRequest: never throws', () => {
  it('on arbitrary requests', () => {
    const headers = fc.dictionary(
      fc.constantFrom('x-amz-target', 'content-type', 'smithy-protocol', 'x-amz-copy-source', 'host'),
      fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 2 }), fc.constant(undefined)),
    );
    const service = fc.option(fc.constantFrom('s3', 'sts', 'lambda', 's3express', 'dynamodb', ''));
    const host = fc.constantFrom(
      'b.s3.us-east-1.amazonaws.com',
      's3.us-east-1.amazonaws.com',
      'lambda.us-east-1.amazonaws.com',
      'example.com',
    );
    fc.assert(
      fc.property(
        fc.string(),
        fc.oneof(fc.string(), fc.webUrl({ withQueryParameters: true })),
        headers,
        service,
        host,
        (method, target, h, svc, hostName) => {
          const result = actionFromRequest({ method, target, headers: h, service: svc, endpoint: classifyEndpoint(hostName) });
          expect(result.action === null || result.action.length <= 128).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('FormActionSniffer', () => {
  it.each<[string, string, string | null]>([
    ['STS body', 'Action=GetCallerIdentity&Version=2011-06-15', 'GetCallerIdentity'],
    ['Action last, no trailing "&"', 'Version=2011-06-15&Action=AssumeRole', 'AssumeRole'],
    ['encoded name', 'Version=1&%41ction=ListUsers&X=1', 'ListUsers'],
    ['encoded value', 'Action=Describe%49nstances&Version=2016-11-15', 'DescribeInstances'],
    ['SomeAction is not Action', 'SomeAction=Evil&Action=DescribeRegions', 'DescribeRegions'],
    ['only SomeAction', 'SomeAction=Evil&Version=1', null],
    ['lower-case action', 'action=GetCallerIdentity', null],
    ['a value with spaces', 'Action=Get+Caller', null],
    ['an empty value', 'Action=&Version=1', null],
    ['no Action', 'Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam', null],
    ['empty body', '', null],
    ['broken encoding in the value', 'Action=%ZZ', null],
    ['a long parameter before Action', `Policy=${'x'.repeat(5000)}&Action=AssumeRole`, 'AssumeRole'],
    ['a long name before Action', `${'N'.repeat(500)}=1&Action=AssumeRole`, 'AssumeRole'],
    ['a bare name before Action', 'flag&Action=GetSessionToken', 'GetSessionToken'],
    ['trailing newline', 'Action=GetCallerIdentity\n', 'GetCallerIdentity'],
    ['value longer than any operation', `Action=${'A'.repeat(400)}&x=1`, null],
  ])('%s', (_name, body, expected) => {
    expect(sniff([enc(body)])).toBe(expected);
  });

  it('gives up past 64 KiB', () => {
    const filler = `Padding=${'p'.repeat(FORM_SNIFF_LIMIT_BYTES)}`;
    const sniffer = new FormActionSniffer();
    expect(sniffer.push(enc(`${filler}&Action=GetCallerIdentity`))).toBeNull();
    expect(sniffer.push(enc('&Action=X'))).toBeNull();
    expect(sniffer.end()).toBeNull();
  });

  it('reads a body of exactly 64 KiB to its end', () => {
    const tail = '&Action=GetCallerIdentity';
    const body = `Padding=${'p'.repeat(FORM_SNIFF_LIMIT_BYTES - 'Padding='.length - tail.length)}${tail}`;
    expect(body.length).toBe(FORM_SNIFF_LIMIT_BYTES);
    const sniffer = new FormActionSniffer();
    expect(sniffer.push(enc(body))).toBeUndefined();
    expect(sniffer.end()).toBe('GetCallerIdentity');
  });

  it('keeps its first answer', () => {
    const sniffer = new FormActionSniffer();
    expect(sniffer.push(enc('Action=A1&'))).toBe('A1');
    expect(sniffer.push(enc('Action=B2&'))).toBe('A1');
    expect(sniffer.end()).toBe('A1');
  });

  it('answers the same for a body split at every position', () => {
    const bodies = [
      'Action=GetCallerIdentity&Version=2011-06-15',
      'Version=2011-06-15&%41ction=Assume%52ole',
      'SomeAction=X&Action=DescribeInstances',
      'Action=Bad+Value&x=1',
      'NoActionHere=1',
    ];
    for (const text of bodies) {
      const body = enc(text);
      const whole = sniff([body]);
      for (let i = 0; i <= body.length; i++) {
        expect(sniff([body.subarray(0, i), body.subarray(i)])).toBe(whole);
      }
    }
  });

  it('answers the same for any split of any body (property)', () => {
    const part = fc.oneof(
      fc.constantFrom('Action', 'action', 'SomeAction', '%41ction', 'Version', '=', '&', '%', '+', 'Get', 'CallerIdentity', '2011-06-15'),
      fc.string({ maxLength: 6 }),
    );
    const body = fc.array(part, { maxLength: 30 }).map((parts) => enc(parts.join('')));
    fc.assert(
      fc.property(body, fc.array(fc.nat(), { maxLength: 5 }), (bytes, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
        const chunks: Uint8Array[] = [];
        let from = 0;
        for (const p of points) {
          chunks.push(bytes.subarray(from, p));
          from = p;
        }
        chunks.push(bytes.subarray(from));
        expect(sniff(chunks)).toBe(sniff([bytes]));
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on random bytes and only returns operation names', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 5 }), (chunks) => {
        const answer = sniff(chunks);
        expect(answer === null || /^[A-Za-z][A-Za-z0-9_]{0,127}$/.test(answer)).toBe(true);
      }),
    );
  });
});
