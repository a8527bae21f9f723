/**
 * S3 REST requests → the eventName CloudTrail records for them, from method,
 * sub-resource query flags and whether the request names a bucket and a key.
 * Where the bucket lives (host or first path segment) is the caller's call.
 *
 * Unknown combinations return a template that hides the bucket and key
 * ("GET /{bucket}/{key}"): object keys can be sensitive and never leave here.
 */
import { headerValue } from './http-request.js';
import type { HeaderMap, QueryParam } from './http-request.js';

export interface S3Request {
  method: string;
  /** Path of the request-target (still percent-encoded). */
  path: string;
  params: readonly QueryParam[];
  headers: HeaderMap;
  /** True when the host names the bucket (virtual-host style, access point, S3 Express zonal). */
  bucketInHost: boolean;
}

export interface S3Operation {
  /** CloudTrail eventName, or null when the table has no entry (see `template`). */
  eventName: string | null;
  /** Method plus the folded shape of the path, used when eventName is null. */
  template: string;
}

type MethodMap = Readonly<Partial<Record<string, string>>>;
type SubresourceTable = ReadonlyArray<readonly [subresource: string, byMethod: MethodMap]>;

/** Order matters: the first sub-resource present wins (uploadId before acl, and so on). */
const OBJECT_SUBRESOURCES: SubresourceTable = [
  ['uploadid', { GET: 'ListParts', POST: 'CompleteMultipartUpload', DELETE: 'AbortMultipartUpload' }],
  ['uploads', { POST: 'CreateMultipartUpload' }],
  ['acl', { GET: 'GetObjectAcl', PUT: 'PutObjectAcl' }],
  ['tagging', { GET: 'GetObjectTagging', PUT: 'PutObjectTagging', DELETE: 'DeleteObjectTagging' }],
  ['retention', { GET: 'GetObjectRetention', PUT: 'PutObjectRetention' }],
  ['legal-hold', { GET: 'GetObjectLegalHold', PUT: 'PutObjectLegalHold' }],
  ['attributes', { GET: 'GetObjectAttributes' }],
  ['restore', { POST: 'RestoreObject' }],
  ['select', { POST: 'SelectObjectContent' }],
  ['torrent', { GET: 'GetObjectTorrent' }],
];

const BUCKET_SUBRESOURCES: SubresourceTable = [
  ['uploads', { GET: 'ListMultipartUploads' }],
  ['delete', { POST: 'DeleteObjects' }],
  ['location', { GET: 'GetBucketLocation' }],
  ['policy', { GET: 'GetBucketPolicy', PUT: 'PutBucketPolicy', DELETE: 'DeleteBucketPolicy' }],
  ['policystatus', { GET: 'GetBucketPolicyStatus' }],
  ['acl', { GET: 'GetBucketAcl', PUT: 'PutBucketAcl' }],
  ['tagging', { GET: 'GetBucketTagging', PUT: 'PutBucketTagging', DELETE: 'DeleteBucketTagging' }],
  ['versioning', { GET: 'GetBucketVersioning', PUT: 'PutBucketVersioning' }],
  ['versions', { GET: 'ListObjectVersions' }],
  ['cors', { GET: 'GetBucketCors', PUT: 'PutBucketCors', DELETE: 'DeleteBucketCors' }],
  ['encryption', { GET: 'GetBucketEncryption', PUT: 'PutBucketEncryption', DELETE: 'DeleteBucketEncryption' }],
  ['lifecycle', { GET: 'GetBucketLifecycle', PUT: 'PutBucketLifecycle', DELETE: 'DeleteBucketLifecycle' }],
  ['website', { GET: 'GetBucketWebsite', PUT: 'PutBucketWebsite', DELETE: 'DeleteBucketWebsite' }],
  ['logging', { GET: 'GetBucketLogging', PUT: 'PutBucketLogging' }],
  ['publicaccessblock', { GET: 'GetBucketPublicAccessBlock', PUT: 'PutBucketPublicAccessBlock', DELETE: 'DeleteBucketPublicAccessBlock' }],
  ['session', { GET: 'CreateSession' }],
];

/** Query parameters that ride along with any operation and say nothing about which one it is. */
const NEUTRAL_PARAM =
  /^(?:x-id|versionid|response-.*|x-amz-.*|awsaccesskeyid|signature|expires|prefix|delimiter|max-keys|marker|encoding-type|continuation-token|start-after|fetch-owner|key-marker|upload-id-marker|version-id-marker|max-uploads|max-parts|part-number-marker)$/;

export function s3Operation(req: S3Request): S3Operation {
  const method = req.method.toUpperCase();
  const { hasBucket, hasKey } = locate(req.path, req.bucketInHost);
  const template = `${method} ${hasKey ? '/{bucket}/{key}' : hasBucket ? '/{bucket}' : '/'}`;
  const present = new Set(req.params.map((p) => p.name?.toLowerCase() ?? ''));
  const has = (name: string): boolean => present.has(name);
  const eventName = hasKey
    ? objectOperation(method, has, req.headers)
    : hasBucket
      ? bucketOperation(method, has, present)
      : serviceOperation(method);
  return { eventName, template };
}

function locate(path: string, bucketInHost: boolean): { hasBucket: boolean; hasKey: boolean } {
  const rest = path.replace(/^\/+/, '');
  if (bucketInHost) return { hasBucket: true, hasKey: rest !== '' };
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const key = slash === -1 ? '' : rest.slice(slash + 1);
  return { hasBucket: bucket !== '', hasKey: bucket !== '' && key !== '' };
}

function fromTable(table: SubresourceTable, method: string, has: (name: string) => boolean): string | null | undefined {
  for (const [subresource, byMethod] of table) {
    if (has(subresource)) return byMethod[method] ?? null;
  }
  return undefined;
}

function objectOperation(method: string, has: (name: string) => boolean, headers: HeaderMap): string | null {
  const copy = headerValue(headers, 'x-amz-copy-source').kind !== 'absent';
  if (method === 'PUT' && has('partnumber') && has('uploadid')) return copy ? 'UploadPartCopy' : 'UploadPart';
  const sub = fromTable(OBJECT_SUBRESOURCES, method, has);
  if (sub !== undefined) return sub;
  switch (method) {
    case 'GET':
      return 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'PUT':
      return copy ? 'CopyObject' : 'PutObject';
    case 'DELETE':
      return 'DeleteObject';
    default:
      return null;
  }
}

function bucketOperation(method: string, has: (name: string) => boolean, present: ReadonlySet<string>): string | null {
  const sub = fromTable(BUCKET_SUBRESOURCES, method, has);
  if (sub !== undefined) return sub;
  // An unrecognised sub-resource flag must not be mistaken for the plain bucket operation.
  const unknownFlag = [...present].some((name) => name !== '' && name !== 'list-type' && !NEUTRAL_PARAM.test(name));
  if (unknownFlag) return null;
  switch (method) {
    case 'GET':
      return has('list-type') ? 'ListObjectsV2' : 'ListObjects';
    case 'HEAD':
      return 'HeadBucket';
    case 'PUT':
      return 'CreateBucket';
    case 'DELETE':
      return 'DeleteBucket';
    case 'POST':
      return 'PostObject';
    default:
      return null;
  }
}

function serviceOperation(method: string): string | null {
  return method === 'GET' ? 'ListBuckets' : null;
}
