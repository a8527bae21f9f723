import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { classifyEndpoint, isAwsHost, regionPartition } from '../../../../agent/aws/endpoint.js';
import type { AwsEndpoint } from '../../../../agent/aws/endpoint.js';

const e = (
  service: string,
  region: string | null,
  partition: AwsEndpoint['partition'],
  variant: AwsEndpoint['variant'],
  bucket?: string,
): AwsEndpoint => (bucket === undefined ? { service, region, partition, variant } : { service, region, partition, variant, bucket });

const rows: ReadonlyArray<readonly [host: string, expected: AwsEndpoint | null]> = [
  // regional, FIPS, dual-stack
  ['ec2.us-east-1.amazonaws.com', e('ec2', 'us-east-1', 'aws', 'regional')],
  ['monitoring.eu-west-1.amazonaws.com', e('monitoring', 'eu-west-1', 'aws', 'regional')],
  ['sts.ap-southeast-2.amazonaws.com', e('sts', 'ap-southeast-2', 'aws', 'regional')],
  ['STS.US-EAST-2.AMAZONAWS.COM', e('sts', 'us-east-2', 'aws', 'regional')],
  ['kms.us-west-2.amazonaws.com.', e('kms', 'us-west-2', 'aws', 'regional')],
  ['dynamodb.us-east-1.amazonaws.com:443', e('dynamodb', 'us-east-1', 'aws', 'regional')],
  ['kms-fips.us-east-1.amazonaws.com', e('kms', 'us-east-1', 'aws', 'fips')],
  ['ec2.us-east-1.api.aws', e('ec2', 'us-east-1', 'aws', 'dualstack')],
  ['lambda-fips.us-east-2.api.aws', e('lambda', 'us-east-2', 'aws', 'fips-dualstack')],
  ['ssm.il-central-1.amazonaws.com', e('ssm', 'il-central-1', 'aws', 'regional')],
  // other partitions
  ['ec2.cn-north-1.amazonaws.com.cn', e('ec2', 'cn-north-1', 'aws-cn', 'regional')],
  ['ec2.cn-northwest-1.api.amazonwebservices.com.cn', e('ec2', 'cn-northwest-1', 'aws-cn', 'dualstack')],
  ['sts.us-gov-west-1.amazonaws.com', e('sts', 'us-gov-west-1', 'aws-us-gov', 'regional')],
  ['kms-fips.us-gov-east-1.amazonaws.com', e('kms', 'us-gov-east-1', 'aws-us-gov', 'fips')],
  ['ec2.us-iso-east-1.c2s.ic.gov', e('ec2', 'us-iso-east-1', 'aws-iso', 'regional')],
  ['ec2.us-isob-east-1.sc2s.sgov.gov', e('ec2', 'us-isob-east-1', 'aws-iso-b', 'regional')],
  ['sts.eusc-de-east-1.amazonaws.eu', e('sts', 'eusc-de-east-1', 'aws-eusc', 'regional')],
  // global endpoints: the region they sign for and CloudTrail logs them in
  ['iam.amazonaws.com', e('iam', 'us-east-1', 'aws', 'global')],
  ['sts.amazonaws.com', e('sts', 'us-east-1', 'aws', 'global')],
  ['route53.amazonaws.com', e('route53', 'us-east-1', 'aws', 'global')],
  ['cloudfront.amazonaws.com', e('cloudfront', 'us-east-1', 'aws', 'global')],
  ['iam-fips.amazonaws.com', e('iam', 'us-east-1', 'aws', 'fips')],
  ['organizations.us-east-1.amazonaws.com', e('organizations', 'us-east-1', 'aws', 'global')],
  ['globalaccelerator.us-west-2.amazonaws.com', e('globalaccelerator', 'us-west-2', 'aws', 'global')],
  ['iam.us-gov.amazonaws.com', e('iam', 'us-gov-west-1', 'aws-us-gov', 'global')],
  ['route53.amazonaws.com.cn', e('route53', 'cn-northwest-1', 'aws-cn', 'global')],
  ['iam.cn-north-1.amazonaws.com.cn', e('iam', 'cn-north-1', 'aws-cn', 'global')],
  // S3
  ['s3.amazonaws.com', e('s3', 'us-east-1', 'aws', 'global')],
  ['my-bucket.s3.amazonaws.com', e('s3', 'us-east-1', 'aws', 's3-virtual-host', 'my-bucket')],
  ['s3.eu-central-1.amazonaws.com', e('s3', 'eu-central-1', 'aws', 's3-path')],
  ['my-bucket.s3.eu-central-1.amazonaws.com', e('s3', 'eu-central-1', 'aws', 's3-virtual-host', 'my-bucket')],
  ['logs.example.com.s3.us-west-2.amazonaws.com', e('s3', 'us-west-2', 'aws', 's3-virtual-host', 'logs.example.com')],
  ['s3-us-west-2.amazonaws.com', e('s3', 'us-west-2', 'aws', 's3-legacy')],
  ['old.bucket.s3-eu-west-1.amazonaws.com', e('s3', 'eu-west-1', 'aws', 's3-legacy', 'old.bucket')],
  ['s3-external-1.amazonaws.com', e('s3', 'us-east-1', 'aws', 's3-legacy')],
  ['s3.dualstack.us-east-2.amazonaws.com', e('s3', 'us-east-2', 'aws', 's3-dualstack')],
  ['b1.s3.dualstack.us-east-2.amazonaws.com', e('s3', 'us-east-2', 'aws', 's3-dualstack', 'b1')],
  ['b1.s3-fips.us-east-1.amazonaws.com', e('s3', 'us-east-1', 'aws', 'fips', 'b1')],
  ['s3-fips.dualstack.us-gov-west-1.amazonaws.com', e('s3', 'us-gov-west-1', 'aws-us-gov', 'fips-dualstack')],
  ['b1.s3.cn-north-1.amazonaws.com.cn', e('s3', 'cn-north-1', 'aws-cn', 's3-virtual-host', 'b1')],
  ['reports-123456789012.s3-accesspoint.us-east-1.amazonaws.com', e('s3', 'us-east-1', 'aws', 's3-access-point', 'reports-123456789012')],
  [
    'reports-123456789012.s3-accesspoint.dualstack.eu-west-1.amazonaws.com',
    e('s3', 'eu-west-1', 'aws', 's3-access-point', 'reports-123456789012'),
  ],
  [
    'olap-123456789012.s3-object-lambda.us-east-1.amazonaws.com',
    e('s3-object-lambda', 'us-east-1', 'aws', 's3-access-point', 'olap-123456789012'),
  ],
  ['mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com', e('s3', null, 'aws', 's3-access-point', 'mfzwi23gnjvgw.mrap')],
  ['b1.s3-accelerate.amazonaws.com', e('s3', null, 'aws', 's3-virtual-host', 'b1')],
  ['123456789012.s3-control.us-east-1.amazonaws.com', e('s3-control', 'us-east-1', 'aws', 's3-control')],
  ['s3-control.us-west-2.amazonaws.com', e('s3-control', 'us-west-2', 'aws', 's3-control')],
  [
    'data--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com',
    e('s3express', 'us-west-2', 'aws', 's3-express', 'data--usw2-az1--x-s3'),
  ],
  ['s3express-control.us-west-2.amazonaws.com', e('s3express', 'us-west-2', 'aws', 's3-express')],
  // interface VPC endpoints
  ['vpce-0a1b2c3d4e5f67890-abcdefgh.ec2.us-east-1.vpce.amazonaws.com', e('ec2', 'us-east-1', 'aws', 'vpce')],
  ['vpce-0a1b2c3d4e5f67890-abcdefgh-us-east-1a.sts.us-east-1.vpce.amazonaws.com', e('sts', 'us-east-1', 'aws', 'vpce')],
  ['vpce-0a1b2c3d-abcdefgh.api.ecr.eu-west-1.vpce.amazonaws.com', e('ecr', 'eu-west-1', 'aws', 'vpce')],
  ['bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com', e('s3', 'us-east-1', 'aws', 'vpce')],
  ['my-bucket.bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com', e('s3', 'us-east-1', 'aws', 'vpce', 'my-bucket')],
  ['control.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com', e('s3-control', 'us-east-1', 'aws', 'vpce')],
  // two-label prefixes and API ids: the label left of the region is the service
  ['runtime.sagemaker.us-east-1.amazonaws.com', e('sagemaker', 'us-east-1', 'aws', 'regional')],
  ['api.ecr.us-east-1.amazonaws.com', e('ecr', 'us-east-1', 'aws', 'regional')],
  ['data-ats.iot.eu-west-1.amazonaws.com', e('iot', 'eu-west-1', 'aws', 'regional')],
  ['streams.dynamodb.us-east-1.amazonaws.com', e('dynamodb', 'us-east-1', 'aws', 'regional')],
  ['a1b2c3d4e5.execute-api.us-east-1.amazonaws.com', e('execute-api', 'us-east-1', 'aws', 'regional')],
  // not AWS API endpoints
  ['example.com', null],
  ['amazonaws.com', null],
  ['us-east-1.amazonaws.com', null],
  ['amazonaws.com.evil.com', null],
  ['s3.amazonaws.com.attacker.net', null],
  ['ec2.us-east-1.amazonaws.com.attacker.net', null],
  ['evilamazonaws.com', null],
  ['sts.us-east-1.amazonaws.com.evil', null],
  ['52.94.76.10', null],
  ['[2600:1f18::1]:443', null],
  ['[::1]', null],
  ['', null],
  ['ec2.us-east-1.amazonaws.com:http', null],
  ['ec2..us-east-1.amazonaws.com', null],
  ['ec2.notaregion.amazonaws.com', null],
  ['ec2.us-east-1.amazonaws.com.cn', null],
  ['ec2.cn-north-1.amazonaws.com', null],
  ['ec2-54-1-2-3.compute-1.amazonaws.com', null],
  ['ec2-54-1-2-3.us-west-2.compute.amazonaws.com', null],
  ['my-lb-1234567890.us-east-1.elb.amazonaws.com', null],
  ['mydb.c9akciq32.us-east-1.rds.amazonaws.com', null],
  ['search-dom-abc.us-east-1.es.amazonaws.com', null],
  ['site.s3-website-us-east-1.amazonaws.com', null],
  ['site.s3-website.eu-west-1.amazonaws.com', null],
  ['evil.s3-accesspoint.us-east-1.amazonaws.com', null],
  ['a.b.s3-control.us-east-1.amazonaws.com', null],
  ['notexpress.s3express-usw2-az1.us-west-2.amazonaws.com', null],
  ['ec2.eu-isoe-west-1.amazonaws.com', null],
  ['ec2.us-east-1.amazonaws.com:99999999', null],
];

describe('classifyEndpoint', () => {
  it('has a table of at least 45 rows', () => {
    expect(rows.length).toBeGreaterThanOrEqual(45);
  });

  it.each(rows)('%s', (host, expected) => {
    expect(classifyEndpoint(host)).toEqual(expected);
    expect(isAwsHost(host)).toBe(expected !== null);
  });

  it('never throws and only classifies hosts under an AWS suffix', () => {
    const suffix =
      /\.(?:amazonaws\.com(?:\.cn)?|api\.aws|api\.amazonwebservices\.com\.cn|amazonaws\.eu|api\.amazonwebservices\.eu|c2s\.ic\.gov|api\.aws\.ic\.gov|sc2s\.sgov\.gov|api\.aws\.scloud)$/;
    fc.assert(
      fc.property(fc.string({ maxLength: 120 }), (host) => {
        const result = classifyEndpoint(host);
        if (result !== null) expect(host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '').trim()).toMatch(suffix);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads any service label in front of a well-formed region', () => {
    const label = fc.stringMatching(/^[a-z][a-z0-9]{1,15}$/).filter((s) => !s.startsWith('s3'));
    const region = fc.constantFrom('us-east-1', 'eu-west-3', 'ap-northeast-2', 'us-gov-east-1', 'cn-northwest-1');
    fc.assert(
      fc.property(label, region, (service, r) => {
        const suffix = r.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
        const got = classifyEndpoint(`${service}.${r}.${suffix}`);
        expect(got?.service).toBe(service);
        expect(got?.region).toBe(r);
        expect(got?.partition).toBe(regionPartition(r));
      }),
    );
  });
});

describe('regionPartition', () => {
  it.each([
    ['us-east-1', 'aws'],
    ['us-gov-west-1', 'aws-us-gov'],
    ['cn-north-1', 'aws-cn'],
    ['us-iso-east-1', 'aws-iso'],
    ['us-isob-east-1', 'aws-iso-b'],
    ['eusc-de-east-1', 'aws-eusc'],
    ['us-isof-south-1', null],
    ['useast1', null],
    ['website-us-east-1', null],
  ] as const)('%s → %s', (region, partition) => {
    expect(regionPartition(region)).toBe(partition);
  });
});
