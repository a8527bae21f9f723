import { describe, expect, it } from 'vitest';
import { detectorConfigText } from '../../../helpers/config-text.js';
const { load, problems } = detectorConfigText;

const GATEWAY = `gateways:
  - id: gw-dc1
    egress_cidrs: [203.0.113.0/28, "2001:db8::/48"]
    secret_file: /etc/egress-witness/gateways/gw-dc1.key
`;

describe('detector config: defaults', () => {
  it('an empty file is a complete config', () => {
    expect(load('')).toEqual({
      listen: { host: '127.0.0.1', port: 8443, text: '127.0.0.1:8443' },
      tls: { cert: null, key: null },
      admin: { listen: { host: '127.0.0.1', port: 9465, text: '127.0.0.1:9465' } },
      store: { path: '/var/lib/egress-witness/detector.db', postgres: null, retention: 8 * 3_600_000 },
      gateways: [],
      cloudtrail: { sqs: null, watch_dir: null, poll_interval: 10_000, max_file_bytes: 256 * 1024 * 1024 },
      aws_ip_ranges: null,
      correlation: { window: 300_000, grace: 600_000, heartbeat_stale: 120_000, endpoint_attestation: 'accept' },
      inventory: { files: [], ec2: null, translated_networks: [] },
      findings: { file: null, webhook: null, security_hub: null },
      guardduty: {
        mode: 'report',
        region: null,
        detector_id: null,
        endpoint: null,
        ca_file: null,
        poll_interval: null,
        webhook_kept: false,
      },
      ingest: {
        max_body_bytes: 8 * 1024 * 1024,
        max_concurrent: 32,
        max_concurrent_per_gateway: 4,
        max_concurrent_events: 4,
        body_timeout: 10_000,
        clock_skew: 300_000,
        max_observation_span: 600_000,
        token_file: null,
        allow_unauthenticated: false,
      },
      log: { level: 'info' },
    });
  });

  it('defaults a gateway to inspect: true', () => {
    expect(load(GATEWAY).gateways).toEqual([
      {
        id: 'gw-dc1',
        egress_cidrs: ['203.0.113.0/28', '2001:db8::/48'],
        secret_file: '/etc/egress-witness/gateways/gw-dc1.key',
        inspect: true,
      },
    ]);
  });

  it('reads the GuardDuty polling settings', () => {
    const c = load(
      'guardduty:\n  mode: archive\n  region: eu-central-1\n  detector_id: 12abc34d567e8fa901bc2d34e56789f0\n  poll_interval: 5m\n',
    );
    expect(c.guardduty).toEqual({
      mode: 'archive',
      region: 'eu-central-1',
      detector_id: '12abc34d567e8fa901bc2d34e56789f0',
      endpoint: null,
      ca_file: null,
      poll_interval: 300_000,
      webhook_kept: false,
    });
  });

  it('polling needs a region and a detector id', () => {
    expect(problems('guardduty:\n  region: us-east-1\n  poll_interval: 5m\n')).toEqual([
      'guardduty.poll_interval: polling needs guardduty.region and guardduty.detector_id (line 3, column 18)',
    ]);
  });

  it('archive mode needs a region and a detector id: findings are read back from there before they are archived', () => {
    expect(problems('guardduty:\n  mode: archive\n  region: us-east-1\n')).toEqual([
      'guardduty.mode: archive mode needs guardduty.region and guardduty.detector_id: each finding is read back from that detector before it is archived (line 2, column 9)',
    ]);
    expect(problems('guardduty:\n  mode: archive\n  region: us-east-1\n  detector_id: 12abc34d567e8fa901bc2d34e56789f0\n')).toEqual([]);
    expect(problems('guardduty:\n  mode: report\n')).toEqual([]);
  });

  it('reads the Security Hub export settings, with the default product', () => {
    expect(load('findings:\n  security_hub:\n    region: eu-central-1\n    account_id: "012345678901"\n').findings.security_hub).toEqual({
      region: 'eu-central-1',
      account_id: '012345678901',
      product_arn: null,
      endpoint: null,
      ca_file: null,
    });
    const arn = 'arn:aws-us-gov:securityhub:us-gov-west-1:123456789012:product/123456789012/default';
    expect(
      load(`findings:\n  security_hub: {region: us-gov-west-1, account_id: 123456789012, product_arn: "${arn}"}\n`).findings.security_hub,
    ).toMatchObject({ account_id: '123456789012', product_arn: arn });
  });

  it('Security Hub needs a region and an account id, and a product ARN of that region', () => {
    expect(problems('findings:\n  security_hub: {}\n')).toEqual([
      'findings.security_hub.region: required: the region of the Security Hub that receives the findings, e.g. "us-east-1" (line 2, column 17)',
      "findings.security_hub.account_id: required: the 12-digit account that imports the findings (the credentials' account) (line 2, column 17)",
    ]);
    // Unquoted, 012345678901 is the number 12345678901: the leading zero is gone, so it is refused.
    expect(problems('findings:\n  security_hub: {region: us-east-1, account_id: 012345678901}\n')).toEqual([
      'findings.security_hub.account_id: expected a 12-digit AWS account id in quotes, e.g. "012345678901" (line 2, column 49)',
    ]);
    expect(
      problems(
        'findings:\n  security_hub: {region: us-east-1, account_id: "123456789012", product_arn: "arn:aws:securityhub:us-east-1::product"}\n',
      ),
    ).toEqual([
      'findings.security_hub.product_arn: expected a Security Hub product ARN, e.g. "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default" (line 2, column 78)',
    ]);
  });

  it('bounds text budgets by what one string can hold: cloudtrail.max_file_bytes and ingest.max_body_bytes at most 256MiB', () => {
    expect(problems('cloudtrail: {max_file_bytes: 512MiB}\ningest: {max_body_bytes: 1GiB}\n')).toEqual([
      'cloudtrail.max_file_bytes: must be more than 0 and at most 256MiB: a log file must fit one JavaScript string with room to parse it (line 1, column 30)',
      'ingest.max_body_bytes: must be more than 0 and at most 256MiB: a body must fit one JavaScript string with room to parse it (line 2, column 26)',
    ]);
    expect(load('cloudtrail: {max_file_bytes: 64MiB}\n').cloudtrail.max_file_bytes).toBe(64 * 1024 * 1024);
  });

  it('accepts JSON input', () => {
    const c = load('{"listen": "127.0.0.1:18443", "correlation": {"window": "2m", "endpoint_attestation": "flag"}}');
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 18443, text: '127.0.0.1:18443' });
    expect(c.correlation).toEqual({ window: 120_000, grace: 600_000, heartbeat_stale: 120_000, endpoint_attestation: 'flag' });
  });
});

describe('detector config: rules', () => {
  it('names a duplicate gateway id at its second occurrence', () => {
    expect(problems(`${GATEWAY}  - id: gw-dc1\n    egress_cidrs: [198.51.100.0/28]\n    secret_file: /x\n`)).toEqual([
      'gateways[1].id: duplicate gateway id "gw-dc1" (line 5, column 9)',
    ]);
  });

  it('refuses event routes reachable from other hosts without a token, with or without TLS', () => {
    const open =
      /^listen: .* is reachable from other hosts and ingest\.token_file is not set: anyone who reaches it could post CloudTrail events and GuardDuty findings; set ingest\.token_file \(with tls\), listen on 127\.0\.0\.1, or accept the risk with ingest\.allow_unauthenticated: true/;
    for (const listen of [
      '0.0.0.0:8443',
      ':8443',
      '"[::]:8443"',
      '10.1.2.3:8443',
      'detector.example.internal:8443',
      '"[::ffff:10.1.2.3]:8443"',
    ]) {
      expect(problems(`listen: ${listen}\n`), listen).toEqual([expect.stringMatching(open)]);
      expect(problems(`listen: ${listen}\ntls: {cert: /c.pem, key: /k.pem}\n`), listen).toEqual([expect.stringMatching(open)]);
    }
  });

  it('accepts a loopback listener without a token, a reachable one with a token, or one explicitly left open', () => {
    for (const listen of ['127.0.0.1:8443', '127.0.0.2:8443', 'localhost:8443', '"[::1]:8443"', '"[::ffff:127.0.0.1]:8443"']) {
      expect(problems(`listen: ${listen}\n`), listen).toEqual([]);
    }
    expect(problems('listen: 0.0.0.0:8443\ningest: {token_file: /etc/egress-witness/ingest.token}\n')).toEqual([]);
    expect(load('listen: 0.0.0.0:8443\ningest: {allow_unauthenticated: true}\n').ingest.allow_unauthenticated).toBe(true);
  });

  it('requires tls.cert and tls.key together', () => {
    expect(problems('tls:\n  key: /k.pem\n')).toEqual(['tls: set both tls.cert and tls.key, or neither (line 2, column 3)']);
    expect(load('tls: {cert: /c.pem, key: /k.pem}\n').tls).toEqual({ cert: '/c.pem', key: '/k.pem' });
  });

  it("requires each gateway's egress CIDRs and secret file", () => {
    expect(problems('gateways:\n  - id: gw-a\n    egress_cidrs: []\n')).toEqual([
      "gateways[0].secret_file: required: the HMAC key file shared with this gateway's agent (line 2, column 5)",
      'gateways[0].egress_cidrs: at least one egress CIDR is required (line 3, column 19)',
    ]);
  });

  it.each([
    ['us-east-1', true],
    ['eu-central-1', true],
    ['us-gov-west-1', true],
    ['mars', false],
    ['US-EAST-1', false],
    ['us-east', false],
  ])('GuardDuty region %j valid: %s', (region, valid) => {
    expect(problems(`guardduty: {region: ${region}, detector_id: abc123}\n`).length === 0).toBe(valid);
  });

  it('rejects unknown keys at every level, by name', () => {
    expect(problems('gateway: {}\ngateways:\n  - {id: gw-a, egress_cidrs: [203.0.113.1], secret_file: /x, color: red}\n')).toEqual([
      'gateway: unknown key "gateway" (line 1, column 1)',
      'gateways[0].color: unknown key "color" (line 3, column 62)',
    ]);
  });

  it('reports an unknown key where the key is written, not at its value', () => {
    expect(problems('findings:\n  file: null\n  webook:\n    url: https://siem.example.internal/\n')).toEqual([
      'findings.webook: unknown key "webook" (line 3, column 3)',
    ]);
  });

  it('calls a present but mistyped gateway value "expected …, got …", not "required"', () => {
    expect(problems('gateways:\n  - id: 42\n    egress_cidrs: 203.0.113.0/28\n    secret_file: [a]\n')).toEqual([
      'gateways[0].id: expected a string, got 42 (line 2, column 9)',
      'gateways[0].egress_cidrs: expected a list of CIDRs, got "203.0.113.0/28" (line 3, column 19)',
      'gateways[0].secret_file: expected a string, got ["a"] (line 4, column 18)',
    ]);
  });

  it('says "required: …" only for an absent gateway key', () => {
    expect(problems('gateways:\n  - secret_file: /x\n')).toEqual([
      'gateways[0].id: required: the gateway id the agent uses (gateway.id in its config) (line 2, column 5)',
      'gateways[0].egress_cidrs: required: the public CIDRs AWS sees from this gateway (line 2, column 5)',
    ]);
  });

  it('rejects a webhook that is not http(s)', () => {
    expect(problems('findings: {webhook: "file:///tmp/x"}\n')).toEqual([
      'findings.webhook: "file:///tmp/x" must use http or https (line 1, column 21)',
    ]);
  });
});
