import { describe, expect, it } from 'vitest';
import { endpointCandidates, endpointOfHost } from '../../../../detector/correlate/endpoint-of-event.js';
import { stsCall } from '../scenario.js';

describe('endpointOfHost', () => {
  it.each([
    ['sts.us-east-1.amazonaws.com', 'sts', 'us-east-1'],
    ['sts.amazonaws.com', 'sts', null],
    ['sts-fips.us-east-2.amazonaws.com', 'sts', 'us-east-2'],
    ['ec2.eu-west-1.api.aws', 'ec2', 'eu-west-1'],
    ['ec2.cn-north-1.amazonaws.com.cn', 'ec2', 'cn-north-1'],
    ['api.ecr.eu-west-1.amazonaws.com', 'ecr', 'eu-west-1'],
    ['runtime.sagemaker.eu-west-1.amazonaws.com', 'sagemaker', 'eu-west-1'],
    ['example-reports.s3.eu-west-1.amazonaws.com', 's3', 'eu-west-1'],
    ['example-reports.s3.dualstack.eu-west-1.amazonaws.com', 's3', 'eu-west-1'],
    ['s3-eu-west-1.amazonaws.com', 's3', 'eu-west-1'],
    ['example-reports.s3.amazonaws.com', 's3', null],
    ['finance-111122223333.s3-accesspoint.us-east-1.amazonaws.com', 's3', 'us-east-1'],
    ['111122223333.s3-control.us-east-1.amazonaws.com', 's3-control', 'us-east-1'],
    ['b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com', 's3express', 'us-east-1'],
    ['STS.US-EAST-1.AMAZONAWS.COM.', 'sts', 'us-east-1'],
  ])('%s', (host, service, region) => {
    expect(endpointOfHost(host)).toEqual({ service, region });
  });

  it('knows nothing of other hosts', () => {
    expect(endpointOfHost('example.org')).toBeNull();
    expect(endpointOfHost('amazonaws.com')).toBeNull();
  });
});

describe('endpointCandidates', () => {
  it('prefers the dialled host and its region', () => {
    expect(endpointCandidates(stsCall())).toEqual([{ service: 'sts', region: 'us-east-1' }]);
  });

  it('without a host, tries eventSource with awsRegion and the global endpoint', () => {
    expect(endpointCandidates(stsCall({ requestHost: null }))).toEqual([
      { service: 'sts', region: 'us-east-1' },
      { service: 'sts', region: null },
    ]);
  });

  it('adds the endpoint prefixes a service is known by', () => {
    const ses = stsCall({ requestHost: 'email.eu-west-1.amazonaws.com', eventSource: 'ses.amazonaws.com', awsRegion: 'eu-west-1' });
    expect(endpointCandidates(ses)).toEqual([
      { service: 'email', region: 'eu-west-1' },
      { service: 'ses', region: 'eu-west-1' },
    ]);
  });

  it('a global host matches agent sightings with region null or the signing region', () => {
    expect(endpointCandidates(stsCall({ requestHost: 'sts.amazonaws.com' }))).toEqual([
      { service: 'sts', region: 'us-east-1' },
      { service: 'sts', region: null },
    ]);
  });
});
