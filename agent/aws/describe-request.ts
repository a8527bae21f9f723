/**
 * One HTTP request to an AWS endpoint → who signed it, which action, which
 * service and region. Shared by inspect mode and plain-HTTP forwarding.
 * The credential scope's service and region win over the host name's.
 */
import { attributeRequest, type AttributionResult } from './signature.js';
import { accountIdFromAccessKey, keyKind } from './access-key.js';
import { actionFromRequest } from './action.js';
import { classifyEndpoint, type AwsEndpoint } from './endpoint.js';
import { FormActionSniffer } from './form-action-sniffer.js';
import type { HeaderMap } from './http-request.js';
import type { EndpointInfo, KeyAttribution } from '../observe/model/observation.js';

export type UnattributedReason = 'unsigned' | 'bad-authorization' | 'unknown-algorithm' | 'bad-credential' | 'bad-query';

export interface RequestDescription {
  key: KeyAttribution | null;
  action: string | null;
  aws: EndpointInfo | null;
  unattributed: UnattributedReason | null;
  /** Set when the action is in a form body: feed it the body chunks as they stream on. */
  sniffer: FormActionSniffer | null;
}

export function describeRequest(input: {
  method: string;
  target: string;
  headers: HeaderMap;
  host: string;
  endpoint?: AwsEndpoint | null;
}): RequestDescription {
  const endpoint = input.endpoint !== undefined ? input.endpoint : classifyEndpoint(input.host);
  const signed: AttributionResult = attributeRequest({ method: input.method, target: input.target, headers: input.headers });
  let key: KeyAttribution | null = null;
  let aws: EndpointInfo | null = endpoint ? { service: endpoint.service, region: endpoint.region, partition: endpoint.partition } : null;
  let unattributed: UnattributedReason | null = null;
  if (signed.kind === 'attributed') {
    const a = signed.attribution;
    key = {
      accessKeyId: a.accessKeyId,
      keyKind: keyKind(a.accessKeyId),
      accountId: accountIdFromAccessKey(a.accessKeyId),
      sessionToken: a.sessionToken,
      signatureVersion: a.signatureVersion,
      auth: a.auth,
    };
    if (a.service || a.region) {
      aws = {
        service: a.service ?? aws?.service ?? 'unknown',
        region: a.region ?? aws?.region ?? null,
        partition: aws?.partition ?? 'aws',
      };
    }
  } else {
    unattributed = signed.kind === 'unsigned' ? 'unsigned' : signed.reason;
  }
  const act = actionFromRequest({
    method: input.method,
    target: input.target,
    headers: input.headers,
    service: aws?.service ?? null,
    endpoint,
  });
  return {
    key,
    action: act.action,
    aws,
    unattributed,
    sniffer: act.source === 'needs-body' ? new FormActionSniffer() : null,
  };
}

/**
 * The request's action, taking it from the form body when that is where it
 * is: `peek` sees each body chunk as it streams on (never holding it back),
 * `action()` gives the final answer once the exchange is over.
 */
export function actionReader(d: RequestDescription): { peek: ((chunk: Uint8Array) => void) | null; action(): string | null } {
  const sniffer = d.sniffer;
  if (!sniffer) return { peek: null, action: () => d.action };
  let found: string | null | undefined;
  return {
    peek: (chunk) => {
      if (found === undefined) found = sniffer.push(chunk);
    },
    action: () => (found ??= sniffer.end()),
  };
}

/** Plain-HTTP forwarding's view: the host is the one the URL named and the proxy dialled, not the Host header. */
export function describePlainHttp(
  req: { method?: string | undefined; headers: HeaderMap },
  path: string,
  host: string,
): RequestDescription {
  return describeRequest({ method: req.method ?? 'GET', target: path, headers: req.headers, host });
}
