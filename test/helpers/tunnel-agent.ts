/**
 * An https.Agent that reaches every origin through an HTTP CONNECT proxy and
 * verifies the origin against a given CA — what the AWS SDK gets as its
 * `httpsAgent` in these tests (https-proxy-agent ignores a per-agent `ca`).
 */
import https from 'node:https';
import http from 'node:http';
import tls from 'node:tls';
import type net from 'node:net';

export class TunnelAgent extends https.Agent {
  readonly connects: string[] = [];

  constructor(
    /** `localAddress`: the client address the proxy sees (any 127.x address on Linux loopback). */
    private readonly proxy: { host: string; port: number; localAddress?: string },
    private readonly tlsOpts: { ca: string | string[] },
    opts: https.AgentOptions = {},
  ) {
    super({ keepAlive: true, ...opts });
  }

  override createConnection(
    options: https.RequestOptions & { servername?: string },
    callback?: (err: Error | null, socket: net.Socket) => void,
  ): undefined {
    const host = options.servername || options.host || 'localhost';
    const fail = (err: Error): void => callback?.(err, undefined as unknown as net.Socket);
    const authority = `${options.host ?? host}:${options.port ?? 443}`;
    this.connects.push(authority);
    const req = http.request({
      host: this.proxy.host,
      port: this.proxy.port,
      ...(this.proxy.localAddress ? { localAddress: this.proxy.localAddress } : {}),
      method: 'CONNECT',
      path: authority,
      headers: { host: authority },
    });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        fail(
          Object.assign(
            new Error(`proxy answered ${res.statusCode} to CONNECT ${authority}: ${String(res.headers['x-egress-witness-error'] ?? '')}`),
            { statusCode: res.statusCode },
          ),
        );
        return;
      }
      const secure = tls.connect({ socket, servername: host, ca: this.tlsOpts.ca, ALPNProtocols: ['http/1.1'] });
      secure.once('secureConnect', () => callback?.(null, secure));
      secure.once('error', fail);
    });
    req.once('error', fail);
    req.end();
    return undefined;
  }
}
