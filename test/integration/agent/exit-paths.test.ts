// Every exit path of the proxy — each failure case of the union in agent/proxy/failures.ts, each
// outcome, explicit and transparent, plain, tunnelled and inspected — ends in one record: exactly one
// canonical decision line and one proxy_requests increment per record, and at most one observation.
// The failure cases are a table keyed by the union's case names: a new failure without a case here
// fails this test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createInspectionCa } from '../../../agent/tls/ca.js';
import { writeCaFiles } from '../../../agent/tls/ca-files.js';
import { DESTINATION_DENY_REASONS, PROXY_FAILURE_CASES } from '../../../agent/proxy/failures.js';
import { systemDialDeps, type DialDeps } from '../../../agent/proxy/dialer.js';
import { createTestCa } from '../../helpers/pki.js';
import { startFakeAws, type FakeAws } from '../../helpers/fake-aws.js';
import { recordingDial, startAgent, type TestAgent } from '../../helpers/agent.js';
import { connectTunnel, rawExchange } from '../../helpers/raw.js';
import { TunnelAgent } from '../../helpers/tunnel-agent.js';
import { RedirectHttpAgent, RedirectHttpsAgent } from '../../helpers/redirect-agent.js';
import { until } from '../../helpers/inspect-rig.js';

const DECISION_EVENTS = new Set(['refused', 'intercept_failed', 'tunnel_closed', 'inspected_closed', 'request']);
const KEY = 'ASIAY34FZKBOKMUTVV7A';
const credentials = { accessKeyId: KEY, secretAccessKey: 'x'.repeat(40), sessionToken: 'tok' };

/** Ports the test's dialer stands in for the network on: a connect that never completes, an unreachable host. */
const NEVER_CONNECTS = 1;
const UNREACHABLE = 2;
/** Dialled as the echo server, the upstream socket kept so a test can break it. */
const BREAKABLE = 3;
/** An allowed address that refuses every connection: a name whose first address it is falls back to the next. */
const REFUSING_IP = '127.0.0.3';

let dir: string;
let fake: FakeAws;
let echo: net.Server;
let echoPort: number;
let web: http.Server;
let webPort: number;
let closedPort: number;
/** Plain-HTTP origins: one that cuts its answer short, one that reads the whole body before answering, one that never finishes. */
let cutting: http.Server;
let cuttingPort: number;
let reading: http.Server;
let readingPort: number;
let endless: http.Server;
let endlessPort: number;
let dial: ReturnType<typeof recordingDial>;
let inspectionCaPem: string;
let upstreamCaPem: string;
let main: TestAgent;
let small: TestAgent;
const breakable: net.Socket[] = [];

/** The OS as the agent sees it: real sockets, except for the ports that stand for a dead network. */
function networkStandIn(echoPortOf: () => number): DialDeps {
  return {
    lookup: systemDialDeps.lookup,
    connect: (opts) => {
      if (opts.port === NEVER_CONNECTS) return new net.Socket();
      if (opts.host === REFUSING_IP) {
        const s = new net.Socket();
        process.nextTick(() => s.destroy(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })));
        return s;
      }
      if (opts.port === UNREACHABLE) {
        const s = new net.Socket();
        process.nextTick(() => s.destroy(Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' })));
        return s;
      }
      if (opts.port === BREAKABLE) {
        const s = systemDialDeps.connect({ host: opts.host, port: echoPortOf() });
        breakable.push(s);
        return s;
      }
      return systemDialDeps.connect(opts);
    },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ew-exit-paths-'));
  const upstreamCa = await createTestCa('fake AWS CA');
  upstreamCaPem = upstreamCa.certPem;
  const upstreamCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(upstreamCaFile, upstreamCa.certPem);
  fake = await startFakeAws(await upstreamCa.issue({ dns: ['*.us-east-1.amazonaws.com'] }));
  const ca = await createInspectionCa({ permittedDomains: ['amazonaws.com'] });
  inspectionCaPem = ca.certPem;
  const paths = await writeCaFiles(join(dir, 'ca'), ca);
  echo = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (c: Buffer) => s.write(c));
    s.on('end', () => s.end());
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
  web = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' }).end('hello\n');
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as AddressInfo).port;
  cutting = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': '1000' });
    res.write('x'.repeat(100), () => res.socket?.destroy());
  });
  reading = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end('read\n'));
  });
  endless = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write('x'.repeat(1000));
  });
  for (const server of [cutting, reading, endless]) await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cuttingPort = (cutting.address() as AddressInfo).port;
  readingPort = (reading.address() as AddressInfo).port;
  endlessPort = (endless.address() as AddressInfo).port;
  const gone = net.createServer();
  await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
  closedPort = (gone.address() as AddressInfo).port;
  await new Promise((r) => gone.close(r));

  const ports = [443, 80, echoPort, webPort, closedPort, cuttingPort, readingPort, endlessPort, NEVER_CONNECTS, UNREACHABLE, BREAKABLE];
  dial = recordingDial(networkStandIn(() => echoPort));
  dial.answers.set('weird.example.test', [{ address: 'not-an-address', family: 4 }]);
  dial.answers.set('fallback.example.test', [
    { address: REFUSING_IP, family: 4 },
    { address: '127.0.0.1', family: 4 },
  ]);
  dial.answers.set('echo.example.test', [{ address: '127.0.0.1', family: 4 }]);
  const base = {
    proxy: {
      allow_destination_cidrs: ['127.0.0.1/32', `${REFUSING_IP}/32`],
      allowed_clients: ['127.0.0.1/32'],
      allowed_ports: ports,
      header_timeout: '1s',
      connect_timeout: '1s',
      idle_timeout: '1s',
    },
    telemetry: { observe_all: true },
    upstream: {
      ca_file: upstreamCaFile,
      resolve: {
        '*.amazonaws.com': `127.0.0.1:${fake.port}`,
        'tunnel.example.test': `127.0.0.1:${echoPort}`,
        'plain.example.test': `127.0.0.1:${webPort}`,
      },
    },
  };
  main = await startAgent(
    {
      ...base,
      inspect: { ca_cert: paths.certPath, ca_key: paths.keyPath, hosts: ['*.amazonaws.com'] },
      transparent: { listen: '127.0.0.1:0' },
    },
    { dial },
  );
  // The agent's own proxy port in the allowed ports, so only the 'self' rule refuses it.
  const self = structuredClone(main.config);
  self.proxy.allowed_ports = [...ports, main.proxyPort];
  expect(await main.app.reload({ ok: true, value: self })).toBe(true);
  // The JavaScript relay: the broken-tunnel cases inject an error into the agent's own upstream socket,
  // which the native relay does not keep (native-relay.test.ts resets a real connection instead).
  small = await startAgent({ ...base, proxy: { ...base.proxy, max_tunnels: 1, idle_timeout: '1m', tunnel_relay: 'js' } }, { dial });
}, 30_000);

afterAll(async () => {
  await main?.stop();
  await small?.stop().catch(() => undefined);
  await fake?.close();
  echo?.close();
  web?.close();
  for (const server of [cutting, reading, endless]) {
    server?.closeAllConnections();
    server?.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function proxyRequestsTotal(agent: TestAgent): Promise<number> {
  const m = await agent.app.registry.getSingleMetric('egress_witness_proxy_requests_total')?.get();
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

function decisionLines(agent: TestAgent): Record<string, unknown>[] {
  return agent.logs.lines.filter((l) => DECISION_EVENTS.has(String(l.event)));
}

/** Observations in the telemetry sink, one per event aggregated (`count`). */
async function observed(agent: TestAgent): Promise<number> {
  await agent.flush();
  return agent.observations().reduce((n, o) => n + (o.count as number), 0);
}

interface Expect {
  /** Records the path ends in (an inspected connection: itself and each decrypted request). */
  records?: number;
  observations: number;
  /** What the last decision line says. */
  line: Record<string, unknown>;
  /** What the line before it says, when the path ends in two. */
  before?: Record<string, unknown>;
}

interface Case {
  on?: 'small';
  run(agent: TestAgent): Promise<void>;
  expect: Expect;
}

async function check(c: Case): Promise<void> {
  const agent = c.on === 'small' ? small : main;
  const records = c.expect.records ?? 1;
  const lines0 = decisionLines(agent).length;
  const metric0 = await proxyRequestsTotal(agent);
  const obs0 = await observed(agent);
  await c.run(agent);
  await until('the decision lines', () => decisionLines(agent).length >= lines0 + records);
  await until('the tunnels to close', () => agent.app.status().active_tunnels === 0);
  // Settled: nothing more comes for this path.
  await new Promise((r) => setTimeout(r, 50));
  const lines = decisionLines(agent).slice(lines0);
  expect(lines, JSON.stringify(lines)).toHaveLength(records);
  expect(lines.at(-1)).toMatchObject(c.expect.line);
  if (c.expect.before) expect(lines.at(-2)).toMatchObject(c.expect.before);
  expect((await proxyRequestsTotal(agent)) - metric0).toBe(records);
  expect((await observed(agent)) - obs0).toBe(c.expect.observations);
  expect(c.expect.observations).toBeLessThanOrEqual(records);
}

const connect =
  (authority: string, opts: { localAddress?: string } = {}) =>
  async (agent: TestAgent) => {
    const t = await connectTunnel(agent.proxyPort, authority, opts);
    t.socket.destroy();
  };
const raw =
  (payload: string | Buffer, port: 'proxy' | 'transparent' = 'proxy') =>
  async (agent: TestAgent) => {
    await rawExchange(port === 'proxy' ? agent.proxyPort : agent.transparentPort!, payload, { timeoutMs: 5_000 });
  };
const refusedConnect = (reason: string, observations = 1): Case => ({
  run: connect(
    {
      'port-not-allowed': '127.0.0.1:9',
      loopback: '[::1]:443',
      unspecified: '0.0.0.0:443',
      'link-local': '169.254.1.1:443',
      metadata: '169.254.169.254:443',
      private: '10.1.2.3:443',
      cgnat: '100.64.1.1:443',
      ula: '[fd00::1]:443',
      multicast: '224.0.0.1:443',
      broadcast: '255.255.255.255:443',
      reserved: '240.0.0.1:443',
      'ipv4-embedded': '[2002:a00:1::1]:443',
      invalid: 'weird.example.test:443',
    }[reason] ?? '',
  ),
  expect: { observations, line: { event: 'refused', kind: 'connect', outcome: 'denied', reason: `destination-denied:${reason}` } },
});

/** An inspected STS call through CONNECT; the connection is closed after it. */
async function inspectedCall(agent: TestAgent, region: string): Promise<void> {
  const httpsAgent = new TunnelAgent({ host: '127.0.0.1', port: agent.proxyPort }, { ca: inspectionCaPem });
  const sts = new STSClient({ region, credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 });
  await sts.send(new GetCallerIdentityCommand({})).catch(() => undefined);
  httpsAgent.destroy();
}

/** A tunnel through the echo server whose upstream socket the "network" then breaks with `code`. */
function brokenTunnel(code: string): (agent: TestAgent) => Promise<void> {
  return async (agent) => {
    const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${BREAKABLE}`);
    t.socket.on('error', () => undefined);
    const echoed = new Promise((r) => t.socket.once('data', r));
    t.socket.write('ping');
    await echoed;
    breakable.pop()?.destroy(Object.assign(new Error(code), { code }));
    await new Promise((r) => t.socket.once('close', r));
  };
}

const FAILURE_CASES: Record<string, Case> = {
  'client-not-allowed': {
    run: connect(`127.0.0.1:${443}`, { localAddress: '127.0.0.2' }),
    expect: { observations: 0, line: { event: 'refused', kind: 'connect', reason: 'client-not-allowed', host: null } },
  },
  'bad-request:origin-form': {
    run: raw('GET / HTTP/1.1\r\nHost: x.example.test\r\n\r\n'),
    expect: { observations: 0, line: { event: 'refused', kind: 'invalid', reason: 'origin-form' } },
  },
  'bad-request:bad-authority': {
    run: raw('CONNECT no-port-here HTTP/1.1\r\nHost: no-port-here\r\n\r\n'),
    expect: { observations: 0, line: { event: 'refused', kind: 'invalid', reason: 'bad-authority' } },
  },
  'bad-request:bad-url': {
    run: raw('GET http://user:pw@x.example.test/ HTTP/1.1\r\nHost: x.example.test\r\n\r\n'),
    expect: { observations: 0, line: { event: 'refused', kind: 'invalid', reason: 'bad-url' } },
  },
  'bad-request:unsupported-scheme': {
    run: raw('GET ftp://x.example.test/ HTTP/1.1\r\nHost: x.example.test\r\n\r\n'),
    expect: { observations: 0, line: { event: 'refused', kind: 'invalid', reason: 'unsupported-scheme' } },
  },
  'bad-request:header-too-large': {
    run: raw(`GET http://x.example.test/ HTTP/1.1\r\nHost: x.example.test\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`),
    expect: { observations: 0, line: { event: 'refused', kind: 'invalid', reason: 'header-too-large' } },
  },
  'bad-request:header-timeout': {
    run: raw('GET http://x.example.test/ HTTP/1.1\r\nHost: x.exa'),
    expect: { observations: 0, line: { event: 'refused', kind: 'invalid', reason: 'header-timeout' } },
  },
  'bad-request:malformed': {
    run: raw('GARBAGE\x00\x01 nonsense\r\n\r\n'),
    expect: { observations: 0, line: { event: 'refused', kind: 'invalid', reason: 'malformed' } },
  },
  'bad-request:no-host': {
    run: raw('GET /x HTTP/1.0\r\n\r\n', 'transparent'),
    expect: { observations: 0, line: { event: 'refused', kind: 'transparent_http', capture: 'transparent', reason: 'no-host' } },
  },
  'bad-request:repeated-authorization': {
    run: raw(
      'GET http://x.example.test/ HTTP/1.1\r\nHost: x.example.test\r\nAuthorization: AWS4-HMAC-SHA256 a\r\nAuthorization: AWS4-HMAC-SHA256 b\r\n\r\n',
    ),
    expect: {
      observations: 1,
      line: { event: 'refused', kind: 'invalid', outcome: 'client_error', reason: 'repeated-authorization', host: 'x.example.test' },
    },
  },
  'bad-request:repeated-host': {
    run: raw('GET http://x.example.test/ HTTP/1.1\r\nHost: x.example.test\r\nHost: x.example.test\r\n\r\n'),
    expect: {
      observations: 1,
      line: { event: 'refused', kind: 'invalid', outcome: 'client_error', reason: 'repeated-host', host: 'x.example.test' },
    },
  },
  'bad-request:host-mismatch': {
    // Inside an inspected tunnel (plain HTTP replaces such a Host instead): the refused request, then its connection.
    run: async (agent) => {
      const httpsAgent = new TunnelAgent({ host: '127.0.0.1', port: agent.proxyPort }, { ca: inspectionCaPem });
      const host = 'sts.us-east-1.amazonaws.com';
      await new Promise<void>((resolve) => {
        const options = {
          host,
          servername: host,
          port: 443,
          path: '/',
          agent: httpsAgent,
          headers: { host: 'other.us-east-1.amazonaws.com' },
        };
        const req = https.request(options, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', () => resolve());
        req.end();
      });
      httpsAgent.destroy();
    },
    expect: {
      records: 2,
      observations: 1,
      before: { event: 'refused', kind: 'invalid', mode: 'inspect', reason: 'host-mismatch', status: 400 },
      line: { event: 'inspected_closed', kind: 'connect', mode: 'inspect', requests: 1 },
    },
  },
  'destination-denied:port-not-allowed': refusedConnect('port-not-allowed'),
  'destination-denied:loopback': refusedConnect('loopback'),
  'destination-denied:unspecified': refusedConnect('unspecified'),
  'destination-denied:link-local': refusedConnect('link-local'),
  'destination-denied:metadata': refusedConnect('metadata'),
  'destination-denied:private': refusedConnect('private'),
  'destination-denied:cgnat': refusedConnect('cgnat'),
  'destination-denied:ula': refusedConnect('ula'),
  'destination-denied:multicast': refusedConnect('multicast'),
  'destination-denied:broadcast': refusedConnect('broadcast'),
  'destination-denied:reserved': refusedConnect('reserved'),
  'destination-denied:ipv4-embedded': refusedConnect('ipv4-embedded'),
  'destination-denied:invalid': refusedConnect('invalid'),
  'destination-denied:self': {
    run: (agent) => connect(`127.0.0.1:${agent.proxyPort}`)(agent),
    expect: { observations: 1, line: { event: 'refused', kind: 'connect', reason: 'destination-denied:self' } },
  },
  'dns-failure': {
    run: raw('GET http://nowhere.example.test/ HTTP/1.1\r\nHost: nowhere.example.test\r\n\r\n'),
    expect: { observations: 1, line: { event: 'refused', kind: 'http', outcome: 'dns_error', reason: 'dns-failure' } },
  },
  'connect-refused': {
    run: (agent) => connect(`127.0.0.1:${closedPort}`)(agent),
    expect: { observations: 1, line: { event: 'refused', kind: 'connect', outcome: 'connect_error', reason: 'connect-refused' } },
  },
  unreachable: {
    run: connect(`127.0.0.1:${UNREACHABLE}`),
    expect: { observations: 1, line: { event: 'refused', kind: 'connect', outcome: 'connect_error', reason: 'unreachable' } },
  },
  'connect-timeout': {
    run: connect(`127.0.0.1:${NEVER_CONNECTS}`),
    expect: { observations: 1, line: { event: 'refused', kind: 'connect', outcome: 'connect_timeout', reason: 'connect-timeout' } },
  },
  'upstream-error': {
    on: 'small',
    run: brokenTunnel('ECONNRESET'),
    expect: { observations: 1, line: { event: 'tunnel_closed', kind: 'connect', outcome: 'upstream_error', reason: 'upstream-error' } },
  },
  'upstream-timeout': {
    on: 'small',
    run: brokenTunnel('ETIMEDOUT'),
    expect: { observations: 1, line: { event: 'tunnel_closed', kind: 'connect', outcome: 'upstream_error', reason: 'upstream-timeout' } },
  },
  'upstream-tls': {
    // The fake's certificate names us-east-1 only: the upstream of an inspected eu-west-1 call does not verify.
    run: (agent) => inspectedCall(agent, 'eu-west-1'),
    expect: { records: 2, observations: 1, line: { event: 'inspected_closed', kind: 'connect', mode: 'inspect', requests: 1 } },
  },
  'tunnel-limit': {
    on: 'small',
    run: async (agent) => {
      const holder = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
      const refused = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
      refused.socket.destroy();
      expect(refused.headers['x-egress-witness-error']).toBe('tunnel-limit');
      await until('the refusal', () => decisionLines(agent).some((l) => l.reason === 'tunnel-limit'));
      holder.socket.end();
    },
    expect: { records: 2, observations: 2, line: { event: 'tunnel_closed', kind: 'connect', outcome: 'ok' } },
  },
  draining: {
    on: 'small',
    run: async (agent) => {
      // A tunnel keeps the drain waiting; a CONNECT whose head was under way when it began meets the drain.
      const holder = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
      holder.socket.on('error', () => undefined);
      const late = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
      late.on('error', () => undefined);
      let answer = '';
      late.on('data', (c: Buffer) => (answer += c.toString('latin1')));
      const closed = new Promise((r) => late.once('close', r));
      await new Promise((r) => late.once('connect', r));
      late.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\n`);
      await new Promise((r) => setTimeout(r, 100));
      const stopping = agent.app.stop(1_500);
      late.write(`Host: 127.0.0.1:${echoPort}\r\n\r\n`);
      await closed;
      expect(answer).toMatch(/^HTTP\/1\.1 503 [^\r]*\r\n[\s\S]*X-Egress-Witness-Error: draining/i);
      await stopping;
    },
    expect: { records: 2, observations: 1, line: { event: 'tunnel_closed', outcome: 'drained' } },
  },
};

/** An absolute-form request for `url`, the connection closed after the answer. */
const plainGet = (url: string, host = new URL(url).host): ((agent: TestAgent) => Promise<void>) =>
  raw(`GET ${url} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);

/** Where a plain-HTTP request refused for `reason` goes (the same addresses as the CONNECT cases). */
function refusedPlainUrl(reason: string, agent: TestAgent): string {
  if (reason === 'self') return `http://127.0.0.1:${agent.proxyPort}/`;
  if (reason === 'port-not-allowed') return 'http://127.0.0.1:9/';
  if (reason === 'invalid') return 'http://weird.example.test/';
  const authority = {
    loopback: '[::1]',
    unspecified: '0.0.0.0',
    'link-local': '169.254.1.1',
    metadata: '169.254.169.254',
    private: '10.1.2.3',
    cgnat: '100.64.1.1',
    ula: '[fd00::1]',
    multicast: '224.0.0.1',
    broadcast: '255.255.255.255',
    reserved: '240.0.0.1',
    'ipv4-embedded': '[2002:a00:1::1]',
  }[reason];
  if (authority === undefined) throw new Error(`no plain-HTTP address for ${reason}`);
  return `http://${authority}/`;
}

/** A plain-HTTP request refused by the destination policy: answered 403, recorded, and nothing dialled. */
const refusedPlain = (reason: string): Case => ({
  run: async (agent) => {
    const url = refusedPlainUrl(reason, agent);
    const connects = dial.connects.length;
    const r = await rawExchange(agent.proxyPort, `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n\r\n`, { timeoutMs: 5_000 });
    expect(r.response?.status).toBe(403);
    expect(r.response?.headers['x-egress-witness-error']).toBe(`destination-denied:${reason}`);
    expect(dial.connects.slice(connects)).toEqual([]);
  },
  expect: { observations: 1, line: { event: 'refused', kind: 'http', outcome: 'denied', reason: `destination-denied:${reason}` } },
});

/** Plain HTTP's own ways out: each refusal before a dial, each upstream failure, and a client that leaves. */
const PLAIN_CASES: Record<string, Case> = {
  ...Object.fromEntries(
    DESTINATION_DENY_REASONS.map((reason) => [`plain HTTP refused: destination-denied:${reason}`, refusedPlain(reason)]),
  ),
  'plain HTTP, the upstream refuses the connection': {
    run: (agent) => plainGet(`http://127.0.0.1:${closedPort}/`)(agent),
    expect: { observations: 1, line: { event: 'refused', kind: 'http', outcome: 'connect_error', reason: 'connect-refused', status: 502 } },
  },
  'plain HTTP, the upstream never accepts': {
    run: plainGet(`http://127.0.0.1:${NEVER_CONNECTS}/`),
    expect: {
      observations: 1,
      line: { event: 'refused', kind: 'http', outcome: 'connect_timeout', reason: 'connect-timeout', status: 504 },
    },
  },
  'plain HTTP, the upstream is unreachable': {
    run: plainGet(`http://127.0.0.1:${UNREACHABLE}/`),
    expect: { observations: 1, line: { event: 'refused', kind: 'http', outcome: 'connect_error', reason: 'unreachable', status: 502 } },
  },
  'plain HTTP, the first address refuses and the next one answers': {
    run: async (agent) => {
      const connects = dial.connects.length;
      const r = await rawExchange(
        agent.proxyPort,
        `GET http://fallback.example.test:${webPort}/ HTTP/1.1\r\nHost: fallback.example.test\r\nConnection: close\r\n\r\n`,
        { timeoutMs: 5_000 },
      );
      expect(r.response?.status).toBe(200);
      expect(dial.connects.slice(connects).map((c) => c.host)).toEqual([REFUSING_IP, '127.0.0.1']);
    },
    expect: { observations: 1, line: { event: 'request', kind: 'http', outcome: 'ok', status: 200, resolved_ip: '127.0.0.1' } },
  },
  'plain HTTP, the upstream resets mid-body': {
    run: async (agent) => {
      const r = await rawExchange(agent.proxyPort, `GET http://127.0.0.1:${cuttingPort}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, {
        timeoutMs: 5_000,
      });
      expect(r.response?.status).toBe(200);
      expect(r.closed).toBe(true);
    },
    expect: { observations: 1, line: { event: 'request', kind: 'http', outcome: 'upstream_error', reason: 'upstream-error', status: 200 } },
  },
  'plain HTTP, the client leaves while sending its body': {
    run: async (agent) => {
      const s = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
      s.on('error', () => undefined);
      await new Promise((r) => s.once('connect', r));
      // A body larger than the proxy reads whole before forwarding (64 KiB): it streams to the origin as it comes.
      s.write(`POST http://127.0.0.1:${readingPort}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(10)}`);
      await until('the upload to reach the origin', () => dial.connects.some((c) => c.port === readingPort));
      await new Promise((r) => setTimeout(r, 50));
      s.destroy();
    },
    expect: { observations: 1, line: { event: 'request', kind: 'http', outcome: 'client_error', reason: 'client-error' } },
  },
  'plain HTTP, the client leaves while the answer streams': {
    run: async (agent) => {
      const s = net.connect({ host: '127.0.0.1', port: agent.proxyPort });
      s.on('error', () => undefined);
      const first = new Promise((r) => s.once('data', r));
      s.write(`GET http://127.0.0.1:${endlessPort}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      await first;
      s.destroy();
    },
    expect: { observations: 1, line: { event: 'request', kind: 'http', outcome: 'client_error', reason: 'client-error', status: 200 } },
  },
};

/** The other ways out: every outcome, explicit and transparent, plain, tunnelled and inspected. */
const OUTCOME_CASES: Record<string, Case> = {
  ...PLAIN_CASES,
  'explicit tunnel, ok': {
    run: async (agent) => {
      const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
      const back = new Promise((r) => t.socket.once('data', r));
      t.socket.write('hi');
      await back;
      t.socket.end();
      await new Promise((r) => t.socket.once('close', r));
    },
    expect: { observations: 1, line: { event: 'tunnel_closed', kind: 'connect', outcome: 'ok', bytes_up: 2, bytes_down: 2 } },
  },
  'explicit tunnel, idle timeout': {
    run: async (agent) => {
      const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
      await new Promise((r) => t.socket.once('close', r));
    },
    expect: { observations: 1, line: { event: 'tunnel_closed', outcome: 'idle_timeout', reason: 'idle-timeout' } },
  },
  'explicit tunnel, the client resets it': {
    run: async (agent) => {
      const t = await connectTunnel(agent.proxyPort, `127.0.0.1:${echoPort}`);
      const back = new Promise((r) => t.socket.once('data', r));
      t.socket.write('hi');
      await back;
      t.socket.resetAndDestroy();
    },
    expect: { observations: 1, line: { event: 'tunnel_closed', kind: 'connect', outcome: 'client_error' } },
  },
  'plain HTTP, ok': {
    run: (agent) => raw(`GET http://127.0.0.1:${webPort}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)(agent),
    expect: { observations: 1, line: { event: 'request', kind: 'http', mode: 'http', status: 200, outcome: 'ok' } },
  },
  'inspected call, ok': {
    run: (agent) => inspectedCall(agent, 'us-east-1'),
    expect: { records: 2, observations: 1, line: { event: 'inspected_closed', kind: 'connect', outcome: 'ok', requests: 1 } },
  },
  'interception refused by the client': {
    run: async (agent) => {
      const t = await connectTunnel(agent.proxyPort, 'sqs.us-east-1.amazonaws.com:443');
      const secure = tls.connect({ socket: t.socket, servername: 'sqs.us-east-1.amazonaws.com', ca: upstreamCaPem });
      await new Promise((r) => secure.once('error', r));
      secure.destroy();
    },
    expect: {
      observations: 1,
      line: { event: 'intercept_failed', kind: 'connect', outcome: 'tls_intercept_failed', reason: 'cert-rejected' },
    },
  },
  'an h2-only client is tunnelled': {
    run: async (agent) => {
      const t = await connectTunnel(agent.proxyPort, 'sns.us-east-1.amazonaws.com:443');
      const secure = tls.connect({ socket: t.socket, servername: 'sns.us-east-1.amazonaws.com', ca: upstreamCaPem, ALPNProtocols: ['h2'] });
      await new Promise((r, j) => secure.once('secureConnect', r).once('error', j));
      secure.end();
      await new Promise((r) => secure.once('close', r));
    },
    expect: { observations: 1, line: { event: 'tunnel_closed', kind: 'connect', mode: 'tunnel', outcome: 'ok' } },
  },
  'transparent, inspected call': {
    run: async (agent) => {
      const httpsAgent = new RedirectHttpsAgent({ host: '127.0.0.1', port: agent.transparentPort! }, { ca: inspectionCaPem });
      const sts = new STSClient({ region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 });
      await sts.send(new GetCallerIdentityCommand({}));
      httpsAgent.destroy();
    },
    expect: {
      records: 2,
      observations: 1,
      line: { event: 'inspected_closed', kind: 'transparent', capture: 'transparent', outcome: 'ok', requests: 1 },
    },
  },
  'transparent, tunnel': {
    run: async (agent) => {
      const secure = tls.connect({ host: '127.0.0.1', port: agent.transparentPort!, servername: 'tunnel.example.test' });
      await new Promise((r) => secure.once('error', r).once('close', r));
      secure.destroy();
    },
    expect: { observations: 1, line: { event: 'tunnel_closed', kind: 'transparent', capture: 'transparent', host: 'tunnel.example.test' } },
  },
  'transparent, plain HTTP': {
    run: async (agent) => {
      const httpAgent = new RedirectHttpAgent({ host: '127.0.0.1', port: agent.transparentPort! });
      await new Promise<void>((resolve, reject) =>
        http.get({ host: 'plain.example.test', path: '/', agent: httpAgent }, (res) => res.resume().on('end', resolve)).on('error', reject),
      );
      httpAgent.destroy();
    },
    expect: { observations: 1, line: { event: 'request', kind: 'transparent_http', status: 200, outcome: 'ok' } },
  },
  'transparent, client not allowed': {
    run: async (agent) => {
      const s = net.connect({ host: '127.0.0.1', port: agent.transparentPort!, localAddress: '127.0.0.2' });
      s.on('error', () => undefined);
      await new Promise((r) => s.once('close', r));
    },
    expect: { observations: 0, line: { event: 'refused', kind: 'transparent', reason: 'client-not-allowed' } },
  },
  'transparent, no SNI': {
    run: async (agent) => {
      const secure = tls.connect({ host: '127.0.0.1', port: agent.transparentPort!, rejectUnauthorized: false });
      await new Promise((r) => secure.once('error', r).once('close', r));
      secure.destroy();
    },
    expect: { observations: 0, line: { event: 'refused', kind: 'transparent', outcome: 'client_error', reason: 'no-sni' } },
  },
  'transparent, neither TLS nor HTTP': {
    run: raw(Buffer.from([0x00, 0x01, 0x02, 0xff]), 'transparent'),
    expect: { observations: 0, line: { event: 'refused', kind: 'transparent', reason: 'not-tls-or-http' } },
  },
  'transparent, malformed HTTP': {
    run: raw('GARBAGE\x00\x01 nonsense\r\n\r\n', 'transparent'),
    expect: { observations: 0, line: { event: 'refused', kind: 'transparent_http', reason: 'malformed-http' } },
  },
  'transparent, the client leaves at once': {
    run: async (agent) => {
      const s = net.connect({ host: '127.0.0.1', port: agent.transparentPort! });
      await new Promise((r) => s.once('connect', r));
      s.end();
      await new Promise((r) => s.once('close', r));
    },
    expect: { observations: 0, line: { event: 'refused', kind: 'transparent', reason: 'client-closed' } },
  },
};

describe('every exit path of the proxy: one decision line, one proxy_requests increment, at most one observation', () => {
  it('has a case for every failure the union can express', () => {
    expect(Object.keys(FAILURE_CASES).sort()).toEqual([...PROXY_FAILURE_CASES].sort());
  });

  for (const [name, c] of Object.entries(OUTCOME_CASES)) it(name, () => check(c));
  // The cases on the small agent end by stopping it: they go last, the drain last of all.
  const ordered = Object.entries(FAILURE_CASES).sort(([a], [b]) => Number(a === 'draining') - Number(b === 'draining'));
  for (const [name, c] of ordered) it(`failure ${name}`, () => check(c));
});
