/**
 * Every file in test/fixtures/config/invalid is checked against its exact
 * messages (blackbox_exporter style): a reworded message or a moved position
 * shows up here. `agent-*` files use the agent schema, `detector-*` the detector's.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatProblem, loadConfigText } from '../../../../common/config/load.js';
import { agentConfigSchema } from '../../../../agent/config/schema.js';
import { detectorConfigSchema } from '../../../../detector/config/schema.js';

const dir = fileURLToPath(new URL('../../../fixtures/config/invalid/', import.meta.url));

const expected: Record<string, string[]> = {
  'agent-admits-nobody.yaml': [
    'networks: no routed networks and no proxy.allowed_clients: the proxy would admit nobody (line 1, column 1)',
  ],
  'agent-bad-values.yaml': [
    'gateway.id: expected lower-case letters, digits and "-" (at most 63), e.g. "gw-dc1" (line 2, column 7)',
    'gateway.egress_cidrs: at least one egress CIDR is required (line 3, column 17)',
    'networks[0].cidrs[1]: "10.0.0.256" is not a valid CIDR (line 6, column 25)',
    'networks[0].color: unknown key "color" (line 7, column 5)',
    'proxy.listen: "localhost" is not a listen address (use "host:port", "[::1]:port" or ":port") (line 9, column 11)',
    'proxy.allowed_ports[0]: port must be 1-65535 (line 10, column 19)',
    'proxy.allowed_ports[2]: port must be 1-65535 (line 10, column 27)',
    'proxy.connect_timeout: "10 seconds" is not a duration (use ms, s, m, h, d: "10s", "5m", "1h30m") (line 11, column 20)',
    'proxy.max_header_bytes: "1PiB" is not a size (use B, KiB, MiB, GiB or KB, MB, GB: "1GiB") (line 12, column 21)',
    'proxy.max_tunnels: expected max_tunnels to be an integer (line 13, column 16)',
    'upstream.resolve.localhost: "localhost:443" is not "ip:port" (use "127.0.0.1:8443" or "[::1]:8443") (line 16, column 16)',
    'telemetry.detector_url: "ftp://detector.example.internal/" must use http or https (line 18, column 17)',
    'telemetry.egress_check_url: "not a url" is not a URL (line 20, column 21)',
    'log.level: expected one of fatal, error, warn, info, debug, trace, silent; got "verbose" (line 22, column 10)',
  ],
  'agent-detector-url-without-secret.yaml': [
    'telemetry.secret_file: required when telemetry.detector_url is set (batches are HMAC-signed) (line 8, column 3)',
  ],
  'agent-duplicate-network.yaml': ['networks[2].name: duplicate network name "lab" (line 9, column 11)'],
  'agent-three-mistakes.yaml': [
    'gateway.egress_cidrs[0]: "203.0.113.0/33" is not a valid CIDR (line 4, column 18)',
    'proxy.max_tunnels: expected max_tunnels (a positive integer), got "lots" (line 9, column 16)',
    'proxy.bogus_key: unknown key "bogus_key" (line 10, column 3)',
  ],
  'agent-unknown-top-level-key.yaml': [
    // An unknown key is reported where the key itself is written, not at its value (the block map on line 8).
    'prxoy: unknown key "prxoy" (line 7, column 1)',
  ],
  'agent-wrong-types.yaml': [
    'networks[0].cidrs: expected a list of CIDRs, got "10.0.0.0/8" (line 6, column 12)',
    'networks[1].name: required: the network name, e.g. "vpc-prod" (line 7, column 5)',
    'proxy.max_tunnels: expected max_tunnels to be positive (line 9, column 16)',
    'proxy.allowed_clients[0]: expected a CIDR string, got true (line 10, column 21)',
    'proxy.idle_timeout: expected a duration like "10s" or "5m", got ["5m"] (line 11, column 17)',
    'telemetry.observe_all: Invalid input: expected boolean, received string (line 13, column 16)',
    'telemetry.max_in_flight: expected max_in_flight to be positive (line 14, column 18)',
  ],
  'detector-bad-values.yaml': [
    'listen: expected "host:port", got 8443 (line 1, column 9)',
    'store.retention: "forever" is not a duration (use ms, s, m, h, d: "10s", "5m", "1h30m") (line 3, column 14)',
    'gateways[0].egress_cidrs: required: the public CIDRs AWS sees from this gateway (line 5, column 5)',
    "gateways[0].secret_file: required: the HMAC key file shared with this gateway's agent (line 5, column 5)",
    'correlation.endpoint_attestation: Invalid option: expected one of "accept"|"flag" (line 7, column 25)',
    'guardduty.mode: Invalid option: expected one of "report"|"archive" (line 9, column 9)',
    'guardduty.region: expected an AWS region such as "us-east-1" (line 10, column 11)',
    'guardduty.detector_id: expected a GuardDuty detector id (lower-case hex) (line 11, column 16)',
    'guardduty.poll_interval: "sometimes" is not a duration (use ms, s, m, h, d: "10s", "5m", "1h30m") (line 12, column 18)',
    'ingest.max_body_bytes: "8 megs" is not a size (use B, KiB, MiB, GiB or KB, MB, GB: "1GiB") (line 14, column 19)',
    'ingest.max_concurrent: expected max_concurrent to be positive (line 15, column 19)',
  ],
  'detector-duplicate-gateway.yaml': ['gateways[1].id: duplicate gateway id "gw-dc1" (line 5, column 9)'],
  'detector-half-tls.yaml': ['tls: set both tls.cert and tls.key, or neither (line 2, column 3)'],
  // TLS is set: it hides the traffic, it does not say who posts.
  'detector-open-ingest.yaml': [
    'listen: 0.0.0.0:8443 is reachable from other hosts and ingest.token_file is not set: anyone who reaches it could post CloudTrail events and GuardDuty findings; set ingest.token_file (with tls), listen on 127.0.0.1, or accept the risk with ingest.allow_unauthenticated: true (line 1, column 9)',
  ],
  'detector-mistyped-gateway.yaml': [
    'gateways[0].id: expected a string, got 42 (line 3, column 9)',
    'gateways[0].egress_cidrs: expected a list of CIDRs, got "203.0.113.0/28" (line 4, column 19)',
    'gateways[0].secret_file: expected a string, got ["/etc/egress-witness/gateways/gw-dc1.key"] (line 5, column 18)',
    'gateways[1].egress_cidrs: required: the public CIDRs AWS sees from this gateway (line 6, column 5)',
    "gateways[1].secret_file: required: the HMAC key file shared with this gateway's agent (line 6, column 5)",
  ],
  'detector-unknown-keys.yaml': [
    'correlaton: unknown key "correlaton" (line 2, column 1)',
    'findings.webook: unknown key "webook" (line 6, column 3)',
  ],
  'detector-store-postgres.yaml': [
    'store.postgres.url: expected a URL such as postgres://detector@db.example.internal:5432/egress_witness (line 3, column 10)',
    'store.postgres.pool_size: expected pool_size to be positive (line 5, column 16)',
    'store.postgres.statement_timeout: "soon" is not a duration (use ms, s, m, h, d: "10s", "5m", "1h30m") (line 6, column 24)',
    'store.postgres.sslmode: expected one of disable, require, verify-ca, verify-full; got "prefer" (line 7, column 14)',
    'store.postgres.password: unknown key "password" (line 9, column 5)',
  ],
  'detector-store-both.yaml': [
    'store.postgres: set store.path (SQLite, one detector) or store.postgres (a shared database), not both (line 4, column 5)',
    'store.postgres.url_file: set store.postgres.url or store.postgres.url_file, not both (line 5, column 15)',
    'store.postgres.ca_file: ca_file is for TLS: set sslmode to verify-full (or verify-ca), or remove ca_file (line 7, column 14)',
  ],
  'detector-security-hub.yaml': [
    'findings.security_hub.product_arn: names region eu-west-1, but findings.security_hub.region is us-east-1: BatchImportFindings takes a product of its own region (line 5, column 18)',
    'findings.security_hub.account_id: expected a 12-digit AWS account id in quotes, e.g. "012345678901" (line 6, column 17)',
    'findings.security_hub.endpoint: "securityhub.local" is not a URL (line 7, column 15)',
    'findings.security_hub.color: unknown key "color" (line 8, column 5)',
  ],
};

const files = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('invalid config fixtures', () => {
  it('every fixture has expected messages, and every expectation a fixture', () => {
    expect(files).toEqual(Object.keys(expected).sort());
  });

  it.each(files)('%s fails with exactly its messages', (file) => {
    const schema = file.startsWith('agent-') ? agentConfigSchema : detectorConfigSchema;
    const result = loadConfigText(readFileSync(`${dir}${file}`, 'utf8'), schema);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map(formatProblem)).toEqual(expected[file]);
  });
});
