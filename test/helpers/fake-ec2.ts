/**
 * A loopback EC2 and STS for the inventory: one HTTP server speaking both
 * query protocols (form-encoded POST, XML answers) as the real SDK clients
 * send them, pointed at with AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL_STS.
 *
 *   STS AssumeRole       → temporary credentials whose key names the role's account
 *   EC2 DescribeInstances → that account's instances in the region of the request's
 *                           SigV4 scope, `pageSize` per page, NextToken to go on
 *
 * The caller's account comes from the access key in the Authorization header
 * (the default key is `ownAccount`'s); a region can be made to fail.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeInstance {
  id: string;
  ips: string[];
  ipv6?: string[];
  launchTime?: string;
}

export interface FakeEc2 {
  /** http://127.0.0.1:PORT (both services). */
  readonly endpoint: string;
  /** Requests by `Action`, account and region: `DescribeInstances 222233334444 eu-west-1`, `AssumeRole arn:…`. */
  readonly calls: string[];
  setInstances(account: string, region: string, instances: FakeInstance[]): void;
  /** DescribeInstances in this region answers 403 UnauthorizedOperation until healed. */
  failRegion(region: string, failing: boolean): void;
  close(): Promise<void>;
}

/** The key the SDK's default chain finds in the tests' environment. */
export const FAKE_EC2_DEFAULT_KEY = 'AKIAIOSFODNN7EXAMPLE';

export function fakeEc2Env(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_EC2: endpoint,
    AWS_ENDPOINT_URL_STS: endpoint,
    AWS_ACCESS_KEY_ID: FAKE_EC2_DEFAULT_KEY,
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function instanceXml(i: FakeInstance): string {
  const [primary] = i.ips;
  const ips = i.ips.map((ip, n) => `<item><privateIpAddress>${ip}</privateIpAddress><primary>${n === 0}</primary></item>`).join('');
  const v6 = (i.ipv6 ?? []).map((ip) => `<item><ipv6Address>${ip}</ipv6Address></item>`).join('');
  return (
    `<item><instanceId>${i.id}</instanceId><imageId>ami-0123456789abcdef0</imageId>` +
    `<instanceState><code>16</code><name>running</name></instanceState>` +
    (primary ? `<privateIpAddress>${primary}</privateIpAddress>` : '') +
    `<instanceType>t3.micro</instanceType><launchTime>${i.launchTime ?? '2024-05-01T08:00:00.000Z'}</launchTime>` +
    `<networkInterfaceSet><item><networkInterfaceId>eni-0123456789abcdef0</networkInterfaceId>` +
    (primary ? `<privateIpAddress>${primary}</privateIpAddress>` : '') +
    `<privateIpAddressesSet>${ips}</privateIpAddressesSet><ipv6AddressesSet>${v6}</ipv6AddressesSet></item></networkInterfaceSet></item>`
  );
}

export async function startFakeEc2(o: { ownAccount: string; pageSize?: number }): Promise<FakeEc2> {
  const pageSize = o.pageSize ?? 2;
  const instances = new Map<string, FakeInstance[]>();
  const failing = new Set<string>();
  /** Temporary keys handed out by AssumeRole → their account. */
  const keys = new Map<string, string>([[FAKE_EC2_DEFAULT_KEY, o.ownAccount]]);
  const calls: string[] = [];
  const sockets = new Set<Socket>();

  const answer = (res: http.ServerResponse, status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': randomUUID() });
    res.end(body);
  };
  const error = (res: http.ServerResponse, status: number, code: string, message: string) =>
    answer(
      res,
      status,
      `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>`,
    );

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const auth = req.headers.authorization ?? '';
      const scope = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth);
      if (!scope) return error(res, 403, 'MissingAuthenticationToken', 'no SigV4 signature');
      const [, key = '', region = '', service = ''] = scope;
      const action = form.get('Action');
      if (service === 'sts' && action === 'AssumeRole') {
        const roleArn = form.get('RoleArn') ?? '';
        calls.push(`AssumeRole ${roleArn} ${form.get('RoleSessionName') ?? ''}`);
        const account = /^arn:aws:iam::(\d{12}):role\//.exec(roleArn)?.[1];
        if (!account || !keys.has(key)) return error(res, 403, 'AccessDenied', `not authorized to assume ${roleArn}`);
        const tempKey = `ASIA${account}${String(keys.size).padStart(4, '0')}`;
        keys.set(tempKey, account);
        const expiration = new Date(Date.now() + 3_600_000).toISOString();
        return answer(
          res,
          200,
          `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>` +
            `<Credentials><AccessKeyId>${tempKey}</AccessKeyId><SecretAccessKey>fake-secret-${account}</SecretAccessKey>` +
            `<SessionToken>fake-session-token-${account}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
            `<AssumedRoleUser><Arn>arn:aws:sts::${account}:assumed-role/inventory-reader/egress-witness-inventory</Arn>` +
            `<AssumedRoleId>AROAEXAMPLEROLEID0001:egress-witness-inventory</AssumedRoleId></AssumedRoleUser>` +
            `</AssumeRoleResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleResponse>`,
        );
      }
      if (service === 'ec2' && action === 'DescribeInstances') {
        const account = keys.get(key);
        calls.push(`DescribeInstances ${account ?? key} ${region}`);
        if (!account) return error(res, 401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
        if (failing.has(region)) return error(res, 403, 'UnauthorizedOperation', 'You are not authorized to perform this operation.');
        const all = instances.get(`${account} ${region}`) ?? [];
        const max = Math.min(Number(form.get('MaxResults') ?? 1000), pageSize);
        const from = Number(form.get('NextToken') ?? 0);
        const page = all.slice(from, from + max);
        const next = from + max < all.length ? `<nextToken>${from + max}</nextToken>` : '';
        // One reservation per page, as EC2 groups instances launched together.
        return answer(
          res,
          200,
          `<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
            `<requestId>${randomUUID()}</requestId><reservationSet>` +
            (page.length > 0
              ? `<item><reservationId>r-0${from.toString(16).padStart(16, '0')}</reservationId><ownerId>${account}</ownerId><groupSet/>` +
                `<instancesSet>${page.map(instanceXml).join('')}</instancesSet></item>`
              : '') +
            `</reservationSet>${next}</DescribeInstancesResponse>`,
        );
      }
      return error(res, 400, 'InvalidAction', `the fake does not answer ${service} ${action ?? '(no Action)'}`);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    setInstances(account, region, list) {
      instances.set(`${account} ${region}`, list);
    },
    failRegion(region, fail) {
      if (fail) failing.add(region);
      else failing.delete(region);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
