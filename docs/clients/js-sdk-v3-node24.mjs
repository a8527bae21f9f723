// AWS SDK for JavaScript v3 through the agent on Node.js 24.5 or later, without a proxy package: the SDK builds
// its own https.Agent, so NODE_USE_ENV_PROXY=1 alone does not reach it; pass proxyEnv to that agent instead.
// Trust the inspection CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem.
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';

const sts = new STSClient({ region: 'us-east-1', requestHandler: { httpsAgent: { proxyEnv: process.env } } });
const me = await sts.send(new GetCallerIdentityCommand({}));
console.log(JSON.stringify({ Account: me.Account, Arn: me.Arn }));
