// AWS SDK for JavaScript v3 through the agent, on any Node.js: the SDK ignores HTTPS_PROXY, so give it a
// proxy agent (npm install hpagent). Trust the inspection CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem.
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { HttpsProxyAgent } from 'hpagent';

const agent = new HttpsProxyAgent({ proxy: process.env.HTTPS_PROXY ?? 'http://gateway.example.internal:3128' });
const sts = new STSClient({ region: 'us-east-1', requestHandler: new NodeHttpHandler({ httpAgent: agent, httpsAgent: agent }) });
const me = await sts.send(new GetCallerIdentityCommand({}));
console.log(JSON.stringify({ Account: me.Account, Arn: me.Arn }));
