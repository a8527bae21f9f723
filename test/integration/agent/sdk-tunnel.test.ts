// The AWS SDK for JavaScript v3 as a real client, through the agent's CONNECT tunnel, to a loopback "STS".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { TunnelAgent } from '../../helpers/tunnel-agent.js';
import { createTestCa, type TestCa } from '../../helpers/pki.js';
import { startFakeAws, type FakeAws } from '../../helpers/fake-aws.js';
import { startAgent, type TestAgent } from '../../helpers/agent.js';

let ca: TestCa;
let fake: FakeAws;
let agent: TestAgent;

beforeAll(async () => {
  ca = await createTestCa();
  fake = await startFakeAws(await ca.issue({ dns: ['*.us-east-1.amazonaws.com', 'sts.amazonaws.com'] }));
  agent = await startAgent({
    proxy: { allow_destination_cidrs: ['127.0.0.1/32'] },
    upstream: { resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}` } },
  });
});

afterAll(async () => {
  await agent?.stop();
  await fake?.close();
});

describe('tunnel mode with the AWS SDK', () => {
  it('GetCallerIdentity succeeds through CONNECT and yields a tunnel observation with service, region and network', async () => {
    const httpsAgent = new TunnelAgent({ host: '127.0.0.1', port: agent.proxyPort }, { ca: ca.certPem }, { keepAlive: false });
    const sts = new STSClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'ASIAY34FZKBOKMUTVV7A', secretAccessKey: 'test-secret-not-real', sessionToken: 'test-session-token' },
      requestHandler: new NodeHttpHandler({ httpsAgent }),
      maxAttempts: 1,
    });
    const out = await sts.send(new GetCallerIdentityCommand({}));
    expect(out.Account).toBe('123456789012');
    sts.destroy();
    httpsAgent.destroy();
    // the fake server saw the SDK's own request: the tunnel does not touch bytes
    const seen = fake.requests.at(-1);
    expect(seen?.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A\//);
    await waitFor(() => agent.app.status().active_tunnels === 0);
    await agent.flush();
    const obs = agent.observations().filter((o) => (o.aws as { service?: string } | null)?.service === 'sts');
    expect(obs).toHaveLength(1);
    expect(obs[0]).toMatchObject({
      type: 'observation',
      gatewayId: 'gw-test',
      mode: 'tunnel',
      capture: 'explicit',
      host: 'sts.us-east-1.amazonaws.com',
      port: 443,
      clientIp: '127.0.0.1',
      network: 'lab',
      resolvedIp: '127.0.0.1',
      aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
      accessKeyId: null,
      action: null,
      outcome: 'ok',
      count: 1,
    });
    expect(obs[0]?.bytesUp).toBeGreaterThan(500);
    expect(obs[0]?.bytesDown).toBeGreaterThan(500);
    // the canonical log line for the closed tunnel
    const line = agent.logs.find('tunnel_closed').find((l) => l.host === 'sts.us-east-1.amazonaws.com');
    expect(line).toMatchObject({ mode: 'tunnel', client_ip: '127.0.0.1', network: 'lab', aws_service: 'sts', outcome: 'ok' });
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
