import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../../common/config/load.js';
import { agentConfigSchema } from '../../../../agent/config/schema.js';
import { MINIMAL_AGENT_CONFIG, agentConfigText } from '../../../helpers/config-text.js';
const { load, problems } = agentConfigText;

const MINIMAL = MINIMAL_AGENT_CONFIG;

describe('agent config: defaults', () => {
  it('fills every section from a minimal file', () => {
    expect(load(MINIMAL)).toEqual({
      gateway: { id: 'gw-test', egress_cidrs: ['203.0.113.0/28'] },
      networks: [{ name: 'lab', cidrs: ['10.0.0.0/8'] }],
      proxy: {
        listen: { host: '0.0.0.0', port: 3128, text: '0.0.0.0:3128' },
        allowed_clients: [],
        allowed_ports: [443, 80],
        allow_destination_cidrs: [],
        max_tunnels: 10_000,
        connect_timeout: 10_000,
        idle_timeout: 300_000,
        header_timeout: 10_000,
        max_header_bytes: 16_384,
        drain_timeout: 30_000,
        tunnel_relay: 'auto',
        workers: 1,
      },
      inspect: null,
      transparent: null,
      upstream: { ca_file: null, resolve: {}, max_connections_per_origin: 64, keep_alive_timeout: 4_000 },
      telemetry: {
        detector_url: null,
        secret_file: null,
        file: null,
        spool_dir: '/var/lib/egress-witness/spool',
        spool_max_bytes: 1024 ** 3,
        flush_interval: 2_000,
        heartbeat_interval: 30_000,
        observe_all: false,
        max_batch_records: 5_000,
        max_pending_records: 100_000,
        max_in_flight: 2,
        egress_check_url: null,
        egress_check_interval: 300_000,
      },
      admin: { listen: { host: '127.0.0.1', port: 9464, text: '127.0.0.1:9464' } },
      log: { level: 'info' },
    });
  });

  it('fills the rest of a partly written section', () => {
    const c = load(`${MINIMAL}proxy:\n  max_tunnels: 5\ntelemetry:\n  file: /tmp/obs.ndjson\n`);
    expect(c.proxy.max_tunnels).toBe(5);
    expect(c.proxy.allowed_ports).toEqual([443, 80]);
    expect(c.telemetry.file).toBe('/tmp/obs.ndjson');
    expect(c.telemetry.flush_interval).toBe(2_000);
  });

  it('gives inspect its defaults once the section is present', () => {
    const c = load(`${MINIMAL}inspect:\n  ca_cert: /etc/ew/ca.pem\n  ca_key: /etc/ew/ca-key.pem\n`);
    expect(c.inspect).toEqual({
      ca_cert: '/etc/ew/ca.pem',
      ca_key: '/etc/ew/ca-key.pem',
      hosts: ['*.amazonaws.com', '*.api.aws'],
      passthrough: [],
      passthrough_on_failure: true,
      passthrough_ttl: 3_600_000,
      passthrough_max_entries: 10_000,
      leaf_validity: 7 * 86_400_000,
      cert_cache_size: 1000,
    });
  });

  it('converts durations and sizes', () => {
    const c = load(
      `${MINIMAL}proxy:\n  connect_timeout: 1500ms\n  idle_timeout: 1h30m\n  max_header_bytes: 64KiB\n  drain_timeout: 5\ntelemetry:\n  spool_max_bytes: 10MB\n`,
    );
    expect(c.proxy.connect_timeout).toBe(1500);
    expect(c.proxy.idle_timeout).toBe(5_400_000);
    expect(c.proxy.max_header_bytes).toBe(65_536);
    expect(c.proxy.drain_timeout).toBe(5_000);
    expect(c.telemetry.spool_max_bytes).toBe(10_000_000);
  });

  it.each([
    ['127.0.0.1:3128', { host: '127.0.0.1', port: 3128, text: '127.0.0.1:3128' }],
    [':3128', { host: '0.0.0.0', port: 3128, text: ':3128' }],
    ['[::1]:3128', { host: '::1', port: 3128, text: '[::1]:3128' }],
    ['[::]:0', { host: '::', port: 0, text: '[::]:0' }],
    ['proxy.internal:8080', { host: 'proxy.internal', port: 8080, text: 'proxy.internal:8080' }],
  ])('reads the listen address %j', (listen, expected) => {
    expect(load(`${MINIMAL}proxy:\n  listen: "${listen}"\n`).proxy.listen).toEqual(expected);
  });

  it.each(['3128', '127.0.0.1', '127.0.0.1:65536', '::1:3128', '127.0.0.1:port', ''])('rejects the listen address %j', (listen) => {
    expect(problems(`${MINIMAL}proxy:\n  listen: "${listen}"\n`)).toEqual([
      `proxy.listen: "${listen}" is not a listen address (use "host:port", "[::1]:port" or ":port") (line 8, column 11)`,
    ]);
  });

  it('accepts static upstream overrides by host or suffix, to IPv4 or IPv6', () => {
    const c = load(
      `${MINIMAL}upstream:\n  resolve:\n    "sts.us-east-1.amazonaws.com": "127.0.0.1:8443"\n    "*.s3.amazonaws.com": "[::1]:443"\n`,
    );
    expect(c.upstream.resolve).toEqual({ 'sts.us-east-1.amazonaws.com': '127.0.0.1:8443', '*.s3.amazonaws.com': '[::1]:443' });
  });

  it('accepts JSON input', () => {
    const c = load(
      JSON.stringify({
        gateway: { id: 'gw-json', egress_cidrs: ['198.51.100.7'] },
        networks: [{ name: 'n', cidrs: ['2001:db8::/32'] }],
        log: { level: 'debug' },
      }),
    );
    expect(c.gateway).toEqual({ id: 'gw-json', egress_cidrs: ['198.51.100.7'] });
    expect(c.log.level).toBe('debug');
    expect(c.proxy.max_tunnels).toBe(10_000);
  });
});

describe('agent config: cross-field rules', () => {
  it('names a duplicate network at its second occurrence', () => {
    expect(problems(`${MINIMAL}  - name: lab\n    cidrs: [11.0.0.0/8]\n`)).toEqual([
      'networks[1].name: duplicate network name "lab" (line 7, column 11)',
    ]);
  });

  it('requires telemetry.secret_file with telemetry.detector_url', () => {
    expect(problems(`${MINIMAL}telemetry:\n  detector_url: http://127.0.0.1:8443/v1/telemetry\n`)).toEqual([
      'telemetry.secret_file: required when telemetry.detector_url is set (batches are HMAC-signed) (line 8, column 3)',
    ]);
    expect(
      load(`${MINIMAL}telemetry:\n  detector_url: http://127.0.0.1:8443/v1/telemetry\n  secret_file: /etc/ew/gw.key\n`).telemetry
        .secret_file,
    ).toBe('/etc/ew/gw.key');
  });

  it('refuses a telemetry.detector_url without the /v1/telemetry path (the detector would answer 404 to every batch)', () => {
    const secret = '  secret_file: /etc/ew/gw.key\n';
    expect(problems(`${MINIMAL}telemetry:\n  detector_url: https://detector.example.internal:8443\n${secret}`)).toEqual([
      'telemetry.detector_url: "https://detector.example.internal:8443" does not have the path /v1/telemetry: the detector takes telemetry there and only there (e.g. "https://detector.example.internal:8443/v1/telemetry") (line 8, column 17)',
    ]);
    for (const bad of ['https://detector:8443/v1/cloudtrail', 'https://detector:8443/v1/telemetry/', 'https://detector:8443/'])
      expect(problems(`${MINIMAL}telemetry:\n  detector_url: ${bad}\n${secret}`)).toHaveLength(1);
    const ok = 'https://detector:8443/v1/telemetry';
    expect(load(`${MINIMAL}telemetry:\n  detector_url: ${ok}\n${secret}`).telemetry.detector_url).toBe(ok);
  });

  it('refuses a proxy that would admit nobody, but accepts allowed_clients without networks', () => {
    expect(problems('gateway: {id: gw-a, egress_cidrs: [203.0.113.1]}\n')).toEqual([
      'networks: no routed networks and no proxy.allowed_clients: the proxy would admit nobody (line 1, column 1)',
    ]);
    expect(load('gateway: {id: gw-a, egress_cidrs: [203.0.113.1]}\nproxy: {allowed_clients: [10.0.0.0/8]}\n').networks).toEqual([]);
  });

  it('reports the three mistakes of one file together, each with its exact path and line', () => {
    const r = loadConfigText(
      `gateway:\n  id: gw-test\n  egress_cidrs: [203.0.113.0/33]\nnetworks:\n  - name: lab\n    cidrs: [10.0.0.0/8]\nproxy:\n  max_tunnels: lots\n  bogus_key: 1\n`,
      agentConfigSchema,
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => [p.path, p.line])).toEqual([
      ['gateway.egress_cidrs[0]', 3],
      ['proxy.max_tunnels', 8],
      ['proxy.bogus_key', 9],
    ]);
  });
});

describe('agent config: field rules', () => {
  it.each([
    ['gw-dc1', true],
    ['a', true],
    ['0gw', true],
    [`g${'a'.repeat(62)}`, true],
    [`g${'a'.repeat(63)}`, false],
    ['GW-DC1', false],
    ['gw_dc1', false],
    ['-gw', false],
    ['', false],
  ])('gateway id %j valid: %s', (id, valid) => {
    expect(problems(`gateway: {id: "${id}", egress_cidrs: [203.0.113.1]}\nnetworks: [{name: n, cidrs: [10.0.0.0/8]}]\n`).length === 0).toBe(
      valid,
    );
  });

  it.each([
    ['vpc-prod', true],
    ['Outpost_Rack.1', true],
    ['-x', false],
    ['has space', false],
    [`n${'a'.repeat(62)}`, true],
    [`n${'a'.repeat(63)}`, false],
  ])('network name %j valid: %s', (name, valid) => {
    expect(
      problems(`gateway: {id: gw, egress_cidrs: [203.0.113.1]}\nnetworks: [{name: "${name}", cidrs: [10.0.0.0/8]}]\n`).length === 0,
    ).toBe(valid);
  });

  it('requires the gateway section', () => {
    expect(problems('networks: [{name: n, cidrs: [10.0.0.0/8]}]\n')).toEqual([expect.stringMatching(/^gateway: .* \(line 1, column 1\)$/)]);
  });

  it.each([
    [
      'inspect.hosts',
      'inspect: {ca_cert: a, ca_key: b, hosts: ["amazonaws.com", "*.api.aws", "bad host"]}',
      'inspect.hosts[2]: expected a host name or "*.suffix"',
    ],
    ['inspect.ca_key', 'inspect: {ca_cert: a}', 'inspect.ca_key: required: path to the inspection CA key (PEM, mode 0600)'],
    // zod 4 reports a bad record key without the key schema's message.
    ['upstream.resolve key', 'upstream: {resolve: {"bad host": "127.0.0.1:1"}}', 'upstream.resolve.bad host: Invalid key in record'],
    [
      'upstream.resolve port',
      'upstream: {resolve: {"h.example": "127.0.0.1:0"}}',
      'upstream.resolve.h.example: "127.0.0.1:0" is not "ip:port" (use "127.0.0.1:8443" or "[::1]:8443")',
    ],
    [
      'upstream.resolve leading zero',
      'upstream: {resolve: {"h.example": "127.0.0.01:443"}}',
      'upstream.resolve.h.example: "127.0.0.01:443" is not "ip:port" (use "127.0.0.1:8443" or "[::1]:8443")',
    ],
    ['telemetry.spool_dir', 'telemetry: {spool_dir: ""}', 'telemetry.spool_dir: Too small: expected string to have >=1 characters'],
    ['telemetry.file', 'telemetry: {file: ""}', 'telemetry.file: path must not be empty'],
    ['proxy.allowed_ports', 'proxy: {allowed_ports: []}', 'proxy.allowed_ports: at least one port is required'],
  ])('%s', (_what, extra, message) => {
    const got = problems(`${MINIMAL}${extra}\n`);
    expect(got).toHaveLength(1);
    expect(got[0]!.startsWith(`${message} (line 7, column `)).toBe(true);
  });

  // A present but mistyped value is a type error, not a missing key.
  it('does not call a present but mistyped value "required"', () => {
    const got = problems('gateway:\n  id: 42\n  egress_cidrs: 203.0.113.0/28\nnetworks: [{name: n, cidrs: [10.0.0.0/8]}]\n');
    expect(got).toHaveLength(2);
    for (const p of got) expect(p).not.toMatch(/required/);
  });

  // An unknown key is reported where the key is written, even when a block follows it.
  it('points an unknown section at the line of its key', () => {
    expect(problems(`prxoy:\n  listen: 127.0.0.1:3128\n${MINIMAL}`)).toEqual(['prxoy: unknown key "prxoy" (line 1, column 1)']);
  });
});
