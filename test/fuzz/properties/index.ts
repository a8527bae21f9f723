/** Every fuzz target, in the order the runner and the suite take them. */
import type { AnyFuzzTarget } from '../lib/target.js';
import { authorizationHeaderTarget, describeRequestTarget, presignedQueryTarget } from './aws-signature.js';
import { clientHelloTarget } from './client-hello.js';
import { cloudTrailFileTarget, cloudTrailRecordTarget } from './cloudtrail.js';
import { agentConfigTarget, detectorConfigTarget } from './config.js';
import { connectAuthorityTarget } from './connect-authority.js';
import { connectHeadTarget } from './connect-head.js';
import { formActionTarget } from './form-action.js';
import { guardDutyFindingTarget } from './guardduty.js';
import { spoolRecordTarget } from './spool-record.js';
import { telemetryBatchTarget, telemetrySignatureTarget } from './telemetry.js';

export const FUZZ_TARGETS: readonly AnyFuzzTarget[] = [
  clientHelloTarget,
  connectAuthorityTarget,
  connectHeadTarget,
  authorizationHeaderTarget,
  presignedQueryTarget,
  describeRequestTarget,
  formActionTarget,
  cloudTrailRecordTarget,
  cloudTrailFileTarget,
  guardDutyFindingTarget,
  telemetryBatchTarget,
  telemetrySignatureTarget,
  spoolRecordTarget,
  agentConfigTarget,
  detectorConfigTarget,
];
