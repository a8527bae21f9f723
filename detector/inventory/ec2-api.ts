/**
 * DescribeInstances over the AWS SDK, every page, for one region of one
 * account. Credentials come from the SDK's default chain (instance role,
 * environment, profile), through STS AssumeRole when a role is given (another
 * account's instances); the endpoint from the SDK's own settings, so
 * AWS_ENDPOINT_URL_EC2 (and AWS_ENDPOINT_URL_STS for the role) point it
 * elsewhere (VPC endpoints, tests).
 */
import { EC2Client, paginateDescribeInstances } from '@aws-sdk/client-ec2';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import type { ListedInstance } from './history.js';
import { describedInstance } from './parse.js';

export interface Ec2Target {
  region: string;
  /** null: the detector's own credentials. */
  roleArn: string | null;
}

export interface Ec2InventoryApi {
  /** Every instance of the region with its private addresses; rejects when any page fails. */
  describeInstances(target: Ec2Target): Promise<{ instances: ListedInstance[]; rejected: string[] }>;
  close(): void;
}

export function sdkEc2InventoryApi(o: { endpoint: string | null; maxAttempts?: number }): Ec2InventoryApi {
  const clients = new Map<string, EC2Client>();
  // One role session per account, shared by its regions (refreshed by the provider before it expires).
  const roles = new Map<string, ReturnType<typeof fromTemporaryCredentials>>();
  const credentialsOf = (roleArn: string, region: string) => {
    let p = roles.get(roleArn);
    if (p === undefined) {
      p = shared(
        fromTemporaryCredentials({ params: { RoleArn: roleArn, RoleSessionName: 'egress-witness-inventory' }, clientConfig: { region } }),
      );
      roles.set(roleArn, p);
    }
    return p;
  };
  const clientFor = (t: Ec2Target): EC2Client => {
    const key = `${t.roleArn ?? ''} ${t.region}`;
    let c = clients.get(key);
    if (c === undefined) {
      const credentials = t.roleArn ? credentialsOf(t.roleArn, t.region) : undefined;
      c = new EC2Client({
        region: t.region,
        maxAttempts: o.maxAttempts ?? 3,
        ...(credentials ? { credentials } : {}),
        ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      });
      clients.set(key, c);
    }
    return c;
  };
  return {
    async describeInstances(t) {
      const instances: ListedInstance[] = [];
      const rejected: string[] = [];
      for await (const page of paginateDescribeInstances({ client: clientFor(t), pageSize: 1000 }, {})) {
        for (const r of page.Reservations ?? []) {
          for (const inst of r.Instances ?? []) {
            const read = describedInstance(inst);
            if ('error' in read) rejected.push(read.error);
            else if (read.addresses.length > 0) instances.push(read);
          }
        }
      }
      return { instances, rejected };
    },
    close() {
      for (const c of clients.values()) c.destroy();
      clients.clear();
      roles.clear();
    },
  };
}

type CredentialsProvider = ReturnType<typeof fromTemporaryCredentials>;

/** One set of credentials for every client that uses the provider, fetched again 5 minutes before it expires (or after a failure). */
function shared(provider: CredentialsProvider): CredentialsProvider {
  let pending: ReturnType<CredentialsProvider> | null = null;
  return async (options) => {
    if (pending !== null) {
      const c = await pending.catch(() => null);
      if (c !== null && (c.expiration === undefined || c.expiration.getTime() - Date.now() > 300_000)) return c;
    }
    pending = provider(options);
    return pending;
  };
}
