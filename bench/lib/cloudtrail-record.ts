/** The CloudTrail record the detector benches decide: an IMDSv2 instance-role STS GetCallerIdentity call. */
export interface BenchRecordSpec {
  eventId: string;
  requestId: string;
  eventTimeMs: number;
  accessKeyId: string;
  sourceIp: string;
  /** When the role session began. */
  sessionCreatedMs: number;
  /** The instance the role session is named after (default i-0a1b2c3d4e5f60718). */
  instanceId?: string;
}

export function benchCloudTrailRecord(r: BenchRecordSpec): Record<string, unknown> {
  const instance = r.instanceId ?? 'i-0a1b2c3d4e5f60718';
  return {
    eventVersion: '1.11',
    eventTime: new Date(r.eventTimeMs).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    eventSource: 'sts.amazonaws.com',
    eventName: 'GetCallerIdentity',
    awsRegion: 'us-east-1',
    sourceIPAddress: r.sourceIp,
    userAgent: 'aws-sdk-js/3',
    eventID: r.eventId,
    requestID: r.requestId,
    recipientAccountId: '123456789012',
    userIdentity: {
      type: 'AssumedRole',
      principalId: `AROAEXAMPLE:${instance}`,
      arn: `arn:aws:sts::123456789012:assumed-role/app/${instance}`,
      accountId: '123456789012',
      accessKeyId: r.accessKeyId,
      sessionContext: {
        sessionIssuer: { type: 'Role', arn: 'arn:aws:iam::123456789012:role/app', userName: 'app' },
        attributes: { creationDate: new Date(r.sessionCreatedMs).toISOString() },
        ec2RoleDelivery: '2.0',
      },
    },
  };
}
