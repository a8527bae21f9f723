// The inspecting proxy's upstream connections dial what the destination policy checked, each address in
// turn as CONNECT and plain HTTP do, then verify TLS on the name: real sockets, a real TLS server with a
// throwaway CA, the connector as undici calls it.
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DestinationPolicy } from '../../../agent/net/address-policy.js';
import { ResolveOverrides } from '../../../agent/net/resolve-overrides.js';
import { policyConnector } from '../../../agent/inspect/upstream-connector.js';
import { systemDialDeps, type DialDeps } from '../../../agent/proxy/dialer.js';
import { recordingDial, type RecordingDial } from '../../helpers/agent.js';
import { createTestCa } from '../../helpers/pki.js';

const HOST = 'sts.us-east-1.amazonaws.com';
/** Stands for an address that refuses every connection. */
const REFUSING_IP = '127.0.0.3';

let server: tls.Server;
let port: number;
let caPem: string;
let dial: RecordingDial;

/** Real sockets, except that REFUSING_IP refuses. */
const network: DialDeps = {
  lookup: systemDialDeps.lookup,
  connect: (opts) => {
    if (opts.host !== REFUSING_IP) return systemDialDeps.connect(opts);
    const s = new net.Socket();
    process.nextTick(() => s.destroy(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })));
    return s;
  },
};

beforeAll(async () => {
  const ca = await createTestCa('upstream dial CA');
  caPem = ca.certPem;
  const leaf = await ca.issue({ dns: [HOST] });
  server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end('hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

function connector(allow: string[]) {
  dial = recordingDial(network);
  const policy = new DestinationPolicy({ allowCidrs: allow, allowedPorts: [port], selfAddresses: [] });
  return policyConnector({
    policy: () => ({ policy, overrides: new ResolveOverrides({}) }),
    deps: dial,
    extraCa: caPem,
    connectTimeoutMs: 2_000,
  });
}

function connectThrough(c: ReturnType<typeof connector>): Promise<{ err: Error | null; socket: tls.TLSSocket | null }> {
  return new Promise((resolve) => {
    c(
      { hostname: HOST, host: HOST, protocol: 'https:', port: String(port), servername: HOST, localAddress: null, httpSocket: undefined },
      (err, socket) => resolve({ err, socket: socket as tls.TLSSocket | null }),
    );
  });
}

describe('inspect upstream connector', () => {
  it('a name whose first address refuses is reached on the next one, TLS verified on the name', async () => {
    const c = connector(['127.0.0.1/32', `${REFUSING_IP}/32`]);
    dial.answers.set(HOST, [
      { address: REFUSING_IP, family: 4 },
      { address: '127.0.0.1', family: 4 },
    ]);
    const { err, socket } = await connectThrough(c);
    expect(err).toBeNull();
    expect(dial.connects.map((x) => x.host)).toEqual([REFUSING_IP, '127.0.0.1']);
    expect(socket!.authorized).toBe(true);
    const text = await new Promise<string>((r) => {
      let got = '';
      socket!.on('data', (d: Buffer) => (got += d.toString()));
      socket!.on('end', () => r(got));
    });
    expect(text).toBe('hello');
    socket!.destroy();
  });

  it('when every address refuses, the failure is the last refusal and nothing else is dialed', async () => {
    const c = connector(['127.0.0.1/32', `${REFUSING_IP}/32`]);
    dial.answers.set(HOST, [{ address: REFUSING_IP, family: 4 }]);
    const { err, socket } = await connectThrough(c);
    expect(socket).toBeNull();
    expect(err).toMatchObject({ failure: { kind: 'connect-refused' } });
    expect(dial.connects.map((x) => x.host)).toEqual([REFUSING_IP]);
  });

  it('a name with one refused address is refused whole, before any dial', async () => {
    const c = connector(['127.0.0.1/32']);
    dial.answers.set(HOST, [
      { address: '127.0.0.1', family: 4 },
      { address: '10.0.0.1', family: 4 },
    ]);
    const { err } = await connectThrough(c);
    expect(err).toMatchObject({ failure: { kind: 'destination-denied' } });
    expect(dial.connects).toEqual([]);
  });

  it('a certificate that does not name the host fails the connection after the dial', async () => {
    const c = connector(['127.0.0.1/32']);
    const other = 'sqs.us-east-1.amazonaws.com';
    dial.answers.set(other, [{ address: '127.0.0.1', family: 4 }]);
    const { err, socket } = await new Promise<{ err: Error | null; socket: unknown }>((resolve) =>
      c(
        {
          hostname: other,
          host: other,
          protocol: 'https:',
          port: String(port),
          servername: other,
          localAddress: null,
          httpSocket: undefined,
        },
        (e, s) => resolve({ err: e, socket: s }),
      ),
    );
    expect(socket).toBeNull();
    expect(err?.message).toMatch(/altnames|does not match|Hostname/i);
    expect(dial.connects.map((x) => x.host)).toEqual(['127.0.0.1']);
  });
});
