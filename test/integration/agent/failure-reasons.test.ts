// Every failure says why: the canonical log line and the observation carry the exact reason the client
// got in X-Egress-Witness-Error, not only the outcome class.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { startInspectRig, until, type InspectRig } from '../../helpers/inspect-rig.js';
import { TunnelAgent } from '../../helpers/tunnel-agent.js';
import { connectTunnel, rawExchange } from '../../helpers/raw.js';

let rig: InspectRig;
let httpsAgent: TunnelAgent;

beforeAll(async () => {
  // The fake's certificate names us-east-1 only: an inspected call to eu-west-1 fails upstream verification.
  rig = await startInspectRig({ upstreamNames: ['*.us-east-1.amazonaws.com'], proxy: { allowed_ports: [443, 80] } });
  httpsAgent = new TunnelAgent({ host: '127.0.0.1', port: rig.agent.proxyPort }, { ca: rig.inspectionCaPem });
}, 30_000);

afterAll(async () => {
  httpsAgent?.destroy();
  await rig?.close();
});

async function lastObservation(host: string): Promise<Record<string, unknown>> {
  await new Promise((r) => setTimeout(r, 30));
  await rig.agent.flush();
  const o = rig.agent
    .observations()
    .filter((r) => r.host === host)
    .at(-1);
  expect(o, `an observation for ${host}`).toBeDefined();
  return o!;
}

describe('failure reasons in the log line and the observation', () => {
  it('an inspected call whose upstream certificate does not verify: upstream-tls-verify-failed', async () => {
    const host = 'sts.eu-west-1.amazonaws.com';
    const sts = new STSClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'ASIAY34FZKBOKMUTVV7A', secretAccessKey: 'x'.repeat(40), sessionToken: 'tok' },
      requestHandler: new NodeHttpHandler({ httpsAgent }),
      maxAttempts: 1,
    });
    const status = await sts.send(new GetCallerIdentityCommand({})).then(
      () => 200,
      (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode,
    );
    expect(status).toBe(502);
    await until('the request line', () => rig.agent.logs.find('request').some((l) => l.host === host));
    expect(rig.agent.logs.find('request').find((l) => l.host === host)).toMatchObject({
      mode: 'inspect',
      outcome: 'upstream_error',
      reason: 'upstream-tls-verify-failed',
      status: 502,
    });
    expect(await lastObservation(host)).toMatchObject({
      mode: 'inspect',
      outcome: 'upstream_error',
      reason: 'upstream-tls-verify-failed',
      accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
    });
  });

  it('a refused CONNECT: the destination reason', async () => {
    const t = await connectTunnel(rig.agent.proxyPort, 'sts.us-east-1.amazonaws.com:8443');
    t.socket.destroy();
    expect(t.headers['x-egress-witness-error']).toBe('destination-denied:port-not-allowed');
    await until('the refused line', () => rig.agent.logs.find('refused').some((l) => l.port === 8443));
    expect(rig.agent.logs.find('refused').find((l) => l.port === 8443)).toMatchObject({
      outcome: 'denied',
      reason: 'destination-denied:port-not-allowed',
    });
  });

  it('a plain-HTTP request whose name does not resolve: dns-failure', async () => {
    const r = await rawExchange(rig.agent.proxyPort, 'GET http://no-such-name.invalid/ HTTP/1.1\r\nHost: no-such-name.invalid\r\n\r\n');
    expect(r.response?.headers['x-egress-witness-error']).toBe('dns-failure');
    await until('the refused line', () => rig.agent.logs.find('refused').some((l) => l.host === 'no-such-name.invalid'));
    expect(rig.agent.logs.find('refused').find((l) => l.host === 'no-such-name.invalid')).toMatchObject({
      mode: 'http',
      outcome: 'dns_error',
      reason: 'dns-failure',
    });
  });

  it('a successful call has no reason', async () => {
    const sts = new STSClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'ASIAY34FZKBOKMUTVV7A', secretAccessKey: 'x'.repeat(40), sessionToken: 'tok' },
      requestHandler: new NodeHttpHandler({ httpsAgent }),
      maxAttempts: 1,
    });
    expect((await sts.send(new GetCallerIdentityCommand({}))).Account).toBe('123456789012');
    const host = 'sts.us-east-1.amazonaws.com';
    await until('the request line', () => rig.agent.logs.find('request').some((l) => l.host === host));
    expect(rig.agent.logs.find('request').find((l) => l.host === host)).toMatchObject({ outcome: 'ok', reason: null });
    expect(await lastObservation(host)).not.toHaveProperty('reason');
  });
});
