/** Pure AWS request logic: endpoint classification, signer attribution, API action extraction. */
export { classifyEndpoint, isAwsHost, regionPartition } from './endpoint.js';
export type { AwsEndpoint, EndpointVariant, Partition } from './endpoint.js';

export { accountIdFromAccessKey, isAccessKeyId, keyKind, maskAccessKey } from './access-key.js';
export type { AccessKeyKind } from './access-key.js';

export { attributeRequest, redactTarget } from './signature.js';
export type { Attribution, AttributionResult, MalformedReason, SignatureVersion, SignedRequest } from './signature.js';

export { actionFromRequest, MAX_ACTION_LENGTH, restTemplate } from './action.js';
export type { ActionRequest, ActionResult, ActionSource } from './action.js';
export { FormActionSniffer, FORM_SNIFF_LIMIT_BYTES, isOperationName } from './form-action-sniffer.js';

export { s3Operation } from './s3-operation.js';
export type { S3Operation, S3Request } from './s3-operation.js';

export type { HeaderMap } from './http-request.js';
