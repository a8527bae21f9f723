/**
 * Clients as the kernel's redirect delivers them, on loopback: every
 * connection, whatever host it is for, lands on the agent's transparent
 * listener, and the client speaks to it as to the real endpoint (TLS with
 * the host as SNI, or plain HTTP with the host in `Host`). No proxy setting
 * anywhere. The routed version, with the real redirect, is in
 * test/e2e/transparent-netns.test.ts.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

export interface Listener {
  host: string;
  port: number;
  /** The client address the agent sees (any 127.x address on Linux loopback). */
  localAddress?: string;
}

/** An https.Agent for the AWS SDK: TLS to the transparent listener, SNI and certificate check for the real host. */
export class RedirectHttpsAgent extends https.Agent {
  constructor(
    private readonly listener: Listener,
    private readonly trust: { ca: string | string[] },
    opts: https.AgentOptions = {},
  ) {
    super({ keepAlive: true, ...opts });
  }

  override createConnection(options: https.RequestOptions & { servername?: string }): net.Socket {
    const host = options.servername || options.host || 'localhost';
    return tls.connect({
      host: this.listener.host,
      port: this.listener.port,
      ...(this.listener.localAddress ? { localAddress: this.listener.localAddress } : {}),
      servername: host,
      ca: this.trust.ca,
      ALPNProtocols: ['http/1.1'],
    });
  }
}

/** An http.Agent whose connections all land on the transparent listener (plain HTTP, `Host` as the client sets it). */
export class RedirectHttpAgent extends http.Agent {
  constructor(
    private readonly listener: Listener,
    opts: http.AgentOptions = {},
  ) {
    super({ keepAlive: true, ...opts });
  }

  override createConnection(): net.Socket {
    return net.connect({
      host: this.listener.host,
      port: this.listener.port,
      ...(this.listener.localAddress ? { localAddress: this.listener.localAddress } : {}),
    });
  }
}
