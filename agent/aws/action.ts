/**
 * Which API operation a request calls, from what the proxy sees before the
 * body: the X-Amz-Target header (awsJson), `Action` in the query (awsQuery,
 * ec2Query), the rpcv2Cbor path, or method + path (restJson1, restXml).
 * awsQuery POSTs carry `Action` in the body; those answer "needs-body" and the
 * caller feeds the body to a FormActionSniffer.
 *
 * REST services other than S3 get a path template instead of an operation
 * name: "METHOD /seg/seg…" with identifier-like segments folded to "{id}",
 * at most 6 segments, never the query. A segment is folded when it
 *   - is percent-encoded, or has characters outside [A-Za-z0-9._~-];
 *   - is all digits, a UUID, hex of 8+ characters, or an ARN;
 *   - is upper-case alphanumeric of 8+ (Route 53 zone, CloudFront IDs),
 *     or 8+ characters with 2+ digits (i-0abc…, vol-…);
 *   - is longer than 32 characters; or
 *   - follows a kept plural literal ("functions", "restapis", "tags"), which
 *     in resource-style paths is followed by a name; words ending in -ss or
 *     -us ("access", "status") are not taken for plurals.
 * API-version segments (2015-03-31, v1, v20180820) are always kept, and a
 * path longer than 6 segments ends in "/...". So Lambda's
 * `POST /2015-03-31/functions/my-fn/invocations` becomes
 * `POST /2015-03-31/functions/{id}/invocations`. Names after singular
 * literals (`/v20180820/accesspoint/my-ap`) are kept unless they look like
 * identifiers: without the service model the two cannot be told apart.
 */
import { isOperationName } from './form-action-sniffer.js';
import { headerValue, parseQuery, singleHeader, splitTarget } from './http-request.js';
import type { HeaderMap, QueryParam } from './http-request.js';
import type { AwsEndpoint } from './endpoint.js';
import { s3Operation } from './s3-operation.js';

export { FormActionSniffer, FORM_SNIFF_LIMIT_BYTES, isOperationName } from './form-action-sniffer.js';

export type ActionSource = 'target-header' | 'query' | 'rpcv2' | 'rest' | 'needs-body';

export interface ActionResult {
  /** Operation name, CloudTrail eventName (S3) or REST path template; at most 128 characters. */
  action: string | null;
  source: ActionSource;
}

export interface ActionRequest {
  method: string;
  target: string;
  headers: HeaderMap;
  /** Signing name from the SigV4 scope when known, else the endpoint's service. */
  service: string | null;
  endpoint?: AwsEndpoint | null;
}

export const MAX_ACTION_LENGTH = 128;
const MAX_TEMPLATE_SEGMENTS = 6;
const MAX_LITERAL_LENGTH = 32;
const S3_REST_SERVICES: ReadonlySet<string> = new Set(['s3', 's3express', 's3-object-lambda']);
const RPCV2_PATH = /\/service\/([^/]+)\/operation\/([^/]+)$/;

export function actionFromRequest(req: ActionRequest): ActionResult {
  const { path, query } = splitTarget(req.target);
  const params = parseQuery(query);
  return (
    fromTargetHeader(req.headers) ??
    fromQueryAction(params) ??
    fromRpcV2Path(req.headers, path) ??
    needsBody(req) ??
    fromRestPath(req, path, params)
  );
}

/** `X-Amz-Target: DynamoDB_20120810.GetItem` → GetItem. */
function fromTargetHeader(headers: HeaderMap): ActionResult | undefined {
  const target = headerValue(headers, 'x-amz-target');
  if (target.kind === 'absent') return undefined;
  if (target.kind === 'repeated') return { action: null, source: 'target-header' };
  const op = target.value.trim().split('.').at(-1) ?? '';
  return { action: isOperationName(op) ? op : null, source: 'target-header' };
}

/** Only a parameter named exactly `Action` counts; a repeated one is ambiguous. */
function fromQueryAction(params: readonly QueryParam[]): ActionResult | undefined {
  const actions = params.filter((p) => p.name === 'Action');
  if (actions.length === 0) return undefined;
  const value = actions.length === 1 ? actions[0]?.value?.trim() : undefined;
  return { action: value !== undefined && isOperationName(value) ? value : null, source: 'query' };
}

/** rpcv2Cbor clients must send `smithy-protocol: rpc-v2-cbor`; the path then ends in /service/S/operation/Op. */
function fromRpcV2Path(headers: HeaderMap, path: string): ActionResult | undefined {
  if (singleHeader(headers, 'smithy-protocol')?.trim().toLowerCase() !== 'rpc-v2-cbor') return undefined;
  const op = RPCV2_PATH.exec(path)?.[2] ?? '';
  return { action: isOperationName(op) ? op : null, source: 'rpcv2' };
}

function needsBody(req: ActionRequest): ActionResult | undefined {
  if (req.method.toUpperCase() !== 'POST') return undefined;
  const contentType = singleHeader(req.headers, 'content-type')?.split(';')[0]?.trim().toLowerCase();
  return contentType === 'application/x-www-form-urlencoded' ? { action: null, source: 'needs-body' } : undefined;
}

function fromRestPath(req: ActionRequest, path: string, params: readonly QueryParam[]): ActionResult {
  const service = req.endpoint?.service ?? req.service;
  if (service !== null && S3_REST_SERVICES.has(service)) {
    const bucketInHost = req.endpoint?.bucket !== undefined;
    const op = s3Operation({ method: req.method, path, params, headers: req.headers, bucketInHost });
    return { action: op.eventName ?? op.template, source: 'rest' };
  }
  return { action: restTemplate(req.method, path), source: 'rest' };
}

const API_VERSION = /^(?:\d{4}-\d{2}-\d{2}|v\d{1,8}(?:\.\d+)*)$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PLAIN_SEGMENT = /^[A-Za-z0-9._~-]+$/;
const COLLECTION = /^[a-z][a-z-]*[a-z]s$/;
const NOT_PLURAL = /(?:ss|us)$/;

function looksLikeIdentifier(segment: string): boolean {
  // ARNs contain ":" and so fail PLAIN_SEGMENT, encoded or not.
  if (!PLAIN_SEGMENT.test(segment) || segment.length > MAX_LITERAL_LENGTH) return true;
  if (/^\d+$/.test(segment) || UUID.test(segment) || /^[0-9a-f]{8,}$/i.test(segment)) return true;
  if (/^[A-Z0-9]{8,}$/.test(segment)) return true;
  return segment.length >= 8 && (segment.match(/\d/g)?.length ?? 0) >= 2;
}

function isCollection(segment: string): boolean {
  return COLLECTION.test(segment) && !NOT_PLURAL.test(segment);
}

function keepSegment(segment: string, previousKept: string | null): boolean {
  if (API_VERSION.test(segment)) return true;
  if (previousKept !== null && isCollection(previousKept)) return false;
  return !looksLikeIdentifier(segment);
}

/** Method plus folded path (rules in the header comment). */
export function restTemplate(method: string, path: string): string {
  const verb = /^[A-Za-z]{1,16}$/.test(method) ? method.toUpperCase() : 'OTHER';
  const segments = path.split('/').filter((s) => s !== '');
  const folded: string[] = [];
  let previousKept: string | null = null;
  for (const segment of segments.slice(0, MAX_TEMPLATE_SEGMENTS)) {
    const keep = keepSegment(segment, previousKept);
    folded.push(keep ? segment : '{id}');
    previousKept = keep ? segment : null;
  }
  if (segments.length > MAX_TEMPLATE_SEGMENTS) folded.push('...');
  return `${verb} /${folded.join('/')}`.slice(0, MAX_ACTION_LENGTH);
}
