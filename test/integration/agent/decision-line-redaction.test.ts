// Hostile request text through a running agent: a client that puts an access key ID or a secret-key-shaped
// string where the action is read from (X-Amz-Target, the Action parameter) and signs with a real SigV4
// Authorization header gets its canonical line as usual, with the action redacted and the key masked; the
// secret values appear in no log line. (The line's own serialiser is proved field by field in
// test/unit/agent/observe/canonical-log.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAgent, recordingDial, type TestAgent } from '../../helpers/agent.js';
import { rawExchange } from '../../helpers/raw.js';
import { until } from '../../helpers/inspect-rig.js';

const ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET_SHAPED = 'wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab';
const SIGNATURE = 'fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024';
const AUTHORIZATION = `AWS4-HMAC-SHA256 Credential=${ACCESS_KEY_ID}/20250101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=${SIGNATURE}`;

let agent: TestAgent;
let web: http.Server;
let port: number;

beforeAll(async () => {
  web = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-length': '2' }).end('{}'));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  port = (web.address() as AddressInfo).port;
  const dial = recordingDial();
  for (const host of ['dynamodb.us-east-1.amazonaws.com', 'sts.us-east-1.amazonaws.com'])
    dial.answers.set(host, [{ address: '127.0.0.1', family: 4 }]);
  agent = await startAgent(
    { proxy: { allowed_clients: ['127.0.0.1/32'], allowed_ports: [port], allow_destination_cidrs: ['127.0.0.1/32'] } },
    { dial },
  );
});

afterAll(async () => {
  await agent?.stop();
  web?.closeAllConnections();
  web?.close();
});

describe('the canonical line of a request carrying secret-looking text', () => {
  it('an access key ID as the X-Amz-Target operation, signed with a SigV4 header: action redacted, key masked', async () => {
    const host = 'dynamodb.us-east-1.amazonaws.com';
    const r = await rawExchange(
      agent.proxyPort,
      `POST http://${host}:${port}/ HTTP/1.1\r\nHost: ${host}:${port}\r\nX-Amz-Target: DynamoDB_20120810.${ACCESS_KEY_ID}\r\n` +
        `X-Amz-Date: 20250101T000000Z\r\nAuthorization: ${AUTHORIZATION}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    );
    expect(r.response?.status).toBe(200);
    await until('its decision line', () => agent.logs.find('request').some((l) => l.host === host));
    const line = agent.logs.find('request').find((l) => l.host === host);
    expect(line).toMatchObject({ kind: 'http', aws_service: 'dynamodb', action: '[redacted]', key: 'AKIA…MPLE', status: 200 });
    const raw = agent.logs.raw.join('\n');
    for (const secret of [ACCESS_KEY_ID, SIGNATURE, AUTHORIZATION]) expect(raw).not.toContain(secret);
  });

  it('a secret-key-shaped Action parameter: action redacted', async () => {
    const host = 'sts.us-east-1.amazonaws.com';
    const r = await rawExchange(
      agent.proxyPort,
      `GET http://${host}:${port}/?Action=${SECRET_SHAPED}&Version=2011-06-15 HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`,
    );
    expect(r.response?.status).toBe(200);
    await until('its decision line', () => agent.logs.find('request').some((l) => l.host === host));
    expect(agent.logs.find('request').find((l) => l.host === host)).toMatchObject({ aws_service: 'sts', action: '[redacted]' });
    expect(agent.logs.raw.join('\n')).not.toContain(SECRET_SHAPED);
  });
});
