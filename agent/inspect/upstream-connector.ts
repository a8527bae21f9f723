/**
 * undici connector for inspected requests: the destination policy runs on
 * every new upstream connection (overrides or one DNS lookup, every address
 * checked, each checked address dialed in turn until one answers), and TLS is verified against the
 * system roots plus `upstream.ca_file`, with SNI and the certificate check
 * on the original host name.
 */
import tls from 'node:tls';
import type { buildConnector } from 'undici';
import { parseConnectAuthority } from '../net/authority.js';
import type { ResolveOverrides } from '../net/resolve-overrides.js';
import type { DestinationPolicy } from '../net/address-policy.js';
import { connectFirst, resolveTarget, type DialDeps } from '../proxy/dialer.js';
import { ProxyFailureError } from '../proxy/failures.js';
import { trustedSecureContext } from '../tls/trust-store.js';

export interface ConnectorOptions {
  policy: () => { policy: DestinationPolicy; overrides: ResolveOverrides };
  deps: DialDeps;
  extraCa: string | null;
  connectTimeoutMs: number;
}

export function policyConnector(opts: ConnectorOptions): buildConnector.connector {
  const secureContext = trustedSecureContext(opts.extraCa);
  return (options, callback) => {
    const host = options.hostname;
    const port = Number(options.port) || 443;
    const target = parseConnectAuthority(`${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`);
    if (!target) {
      callback(new ProxyFailureError({ kind: 'bad-request', reason: 'bad-authority' }), null);
      return;
    }
    const { policy, overrides } = opts.policy();
    resolveTarget(target, { policy, overrides, deps: opts.deps, lookupTimeoutMs: opts.connectTimeoutMs }).then(
      (resolution) => {
        if (!resolution.ok) {
          callback(new ProxyFailureError(resolution.failure), null);
          return;
        }
        // Each checked address in turn within the connect timeout, as CONNECT and plain HTTP dial (dialer.ts);
        // TLS then runs over the connection that answered.
        return connectFirst(resolution.candidates, opts.connectTimeoutMs, opts.deps).then((dial) => {
          if (!dial.ok) {
            callback(new ProxyFailureError(dial.failure), null);
            return;
          }
          const socket = tls.connect({
            socket: dial.socket,
            servername: target.isIp ? undefined : target.host,
            secureContext,
            ALPNProtocols: ['http/1.1'],
            rejectUnauthorized: true,
          } as tls.ConnectionOptions);
          // tls.connect verifies the name against `servername`; check IP-literal targets explicitly.
          if (target.isIp)
            socket.once('secureConnect', () => {
              const err = tls.checkServerIdentity(target.host, socket.getPeerCertificate());
              if (err) socket.destroy(err);
            });
          const timer = setTimeout(
            () => socket.destroy(Object.assign(new Error('TLS handshake timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })),
            opts.connectTimeoutMs,
          );
          const done = (err: Error | null): void => {
            clearTimeout(timer);
            socket.off('error', onError);
            socket.off('secureConnect', onSecure);
            if (err) {
              dial.socket.destroy();
              callback(err, null);
            } else callback(null, socket);
          };
          const onError = (err: Error): void => done(err);
          const onSecure = (): void => done(null);
          socket.once('error', onError);
          socket.once('secureConnect', onSecure);
        });
      },
      (err: Error) => callback(err, null),
    );
  };
}
