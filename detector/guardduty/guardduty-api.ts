/**
 * The GuardDuty calls the detector makes, over the AWS SDK: list and get
 * OutsideAWS findings (polling), get findings by id (reading back what was
 * pushed, and before each archive) and archive attested ones. Credentials come
 * from the SDK's default provider chain; the endpoint can be overridden.
 */
import https from 'node:https';
import tls from 'node:tls';
import { GuardDutyClient, ListFindingsCommand, GetFindingsCommand, ArchiveFindingsCommand } from '@aws-sdk/client-guardduty';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { OUTSIDE_AWS_FINDING_TYPE } from '../correlate/types.js';
import { toWireShape } from './wire-shape.js';

export interface GuardDutyApi {
  listOutsideAwsFindings(detectorId: string, region: string): Promise<unknown[]>;
  /** The findings of this detector with these ids, in the wire shape; ids it does not hold are left out. */
  getFindings(detectorId: string, region: string, findingIds: readonly string[]): Promise<unknown[]>;
  archive(detectorId: string, region: string, findingIds: readonly string[]): Promise<void>;
  close(): void;
}

export interface GuardDutyApiOptions {
  endpoint: string | null;
  extraCa: string | null;
  maxAttempts?: number;
}

export function sdkGuardDutyApi(opts: GuardDutyApiOptions): GuardDutyApi {
  const clients = new Map<string, GuardDutyClient>();
  const agent = opts.extraCa ? new https.Agent({ keepAlive: true, ca: [...tls.rootCertificates, opts.extraCa] }) : undefined;
  const client = (region: string): GuardDutyClient => {
    let c = clients.get(region);
    if (!c) {
      c = new GuardDutyClient({
        region,
        maxAttempts: opts.maxAttempts ?? 5,
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        ...(agent ? { requestHandler: new NodeHttpHandler({ httpsAgent: agent }) } : {}),
      });
      clients.set(region, c);
    }
    return c;
  };
  const getFindings = async (detectorId: string, region: string, findingIds: readonly string[]): Promise<unknown[]> => {
    const findings: unknown[] = [];
    for (let i = 0; i < findingIds.length; i += 50) {
      const got = await client(region).send(new GetFindingsCommand({ DetectorId: detectorId, FindingIds: findingIds.slice(i, i + 50) }));
      findings.push(...(got.Findings ?? []).map(toWireShape));
    }
    return findings;
  };
  return {
    async listOutsideAwsFindings(detectorId, region) {
      const c = client(region);
      const ids: string[] = [];
      let nextToken: string | undefined;
      do {
        const page = await c.send(
          new ListFindingsCommand({
            DetectorId: detectorId,
            MaxResults: 50,
            NextToken: nextToken,
            FindingCriteria: { Criterion: { type: { Equals: [OUTSIDE_AWS_FINDING_TYPE] }, 'service.archived': { Equals: ['false'] } } },
          }),
        );
        ids.push(...(page.FindingIds ?? []));
        nextToken = page.NextToken || undefined;
      } while (nextToken && ids.length < 10_000);
      return getFindings(detectorId, region, ids);
    },
    getFindings,
    async archive(detectorId, region, findingIds) {
      for (let i = 0; i < findingIds.length; i += 50) {
        await client(region).send(new ArchiveFindingsCommand({ DetectorId: detectorId, FindingIds: findingIds.slice(i, i + 50) }));
      }
    },
    close() {
      for (const c of clients.values()) c.destroy();
      agent?.destroy();
    },
  };
}
