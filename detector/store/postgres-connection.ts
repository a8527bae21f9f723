/**
 * From `store.postgres` to node-postgres pool settings. The server is named
 * by `url` or `url_file` (a file holding the URL, so the password stays out of
 * the configuration), or by libpq's environment variables (PGHOST, PGPORT,
 * PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE; ~/.pgpass) for what the URL
 * leaves out. TLS: `sslmode` (or the URL's, or PGSSLMODE) is one of disable,
 * require, verify-ca or verify-full; unset, a server on this host is reached
 * in clear and any other is verified (verify-full) against `ca_file` or the
 * system's trust store.
 */
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { isLoopbackHost } from '../../common/cidr/ip.js';

import { SSL_MODES, type SslMode } from '../config/schema.js';

/** `store.postgres` as validated (detector/config/schema.ts). */
export interface PostgresStoreConfig {
  url: string | null;
  url_file: string | null;
  pool_size: number;
  /** Milliseconds; the server cancels a statement running longer. */
  statement_timeout: number;
  sslmode: SslMode | null;
  ca_file: string | null;
  /** Milliseconds between a follower's tries of the leader lock and the leader's checks of its session. */
  leader_check: number;
}

/** The pool settings and a description of the server safe to log (no password). */
export interface PostgresTarget {
  pool: pg.PoolConfig;
  /** user@host:port/database, for logs and errors. */
  describe: string;
  sslmode: SslMode;
}

const UNSUPPORTED_URL_PARAMS = ['sslcert', 'sslkey', 'sslpassword', 'sslrootcert', 'ssl'];

/** BIGINT (oid 20) read as a number: every integer the store keeps is a time in ms or a count, well inside 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? (v: string) => Number(v) : (pg.types.getTypeParser(oid, format) as unknown)) as pg.CustomTypesConfig['getTypeParser'],
};

/** `env`: the process's environment (PG* variables), passed in by the caller that owns it. */
export async function postgresTarget(c: PostgresStoreConfig, env: Readonly<Record<string, string | undefined>>): Promise<PostgresTarget> {
  let url = c.url;
  if (c.url_file !== null) {
    try {
      url = (await readFile(c.url_file, 'utf8')).trim();
    } catch (err) {
      throw new Error(
        `store.postgres.url_file ${c.url_file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    if (url === '')
      throw new Error(`store.postgres.url_file ${c.url_file} is empty: write the server's URL in it (postgres://user:password@host/db)`);
  }
  let urlSslMode: string | null = null;
  let host = env.PGHOST ?? 'localhost';
  let user = env.PGUSER ?? null;
  let database = env.PGDATABASE ?? null;
  let port = env.PGPORT ?? '5432';
  if (url !== null) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`${urlKey(c)} is not a URL: expected postgres://user@host:5432/database`);
    }
    if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')
      throw new Error(`${urlKey(c)} must start with postgres:// or postgresql://, got ${parsed.protocol}//`);
    for (const p of UNSUPPORTED_URL_PARAMS)
      if (parsed.searchParams.has(p))
        throw new Error(`${urlKey(c)}: the ${p} parameter is not supported; use store.postgres.ca_file and sslmode`);
    urlSslMode = parsed.searchParams.get('sslmode');
    if (urlSslMode !== null) {
      // TLS is set from the mode below; node-postgres would let the URL's parameter win over it.
      parsed.searchParams.delete('sslmode');
      url = parsed.toString();
    }
    if (parsed.hostname !== '') host = decodeURIComponent(parsed.hostname);
    else if (parsed.searchParams.has('host')) host = parsed.searchParams.get('host') ?? host;
    if (parsed.username !== '') user = decodeURIComponent(parsed.username);
    if (parsed.port !== '') port = parsed.port;
    if (parsed.pathname.length > 1) database = decodeURIComponent(parsed.pathname.slice(1));
  }
  const bare = host.replace(/^\[|\]$/g, '');
  const local = bare.startsWith('/') || isLoopbackHost(bare);
  const given = c.sslmode ?? urlSslMode ?? env.PGSSLMODE ?? null;
  let sslmode: SslMode;
  if (given === null) sslmode = local ? 'disable' : 'verify-full';
  else if ((SSL_MODES as readonly string[]).includes(given)) sslmode = given as SslMode;
  else
    throw new Error(
      `sslmode ${given} (${c.sslmode !== null ? 'store.postgres.sslmode' : urlSslMode !== null ? urlKey(c) : 'PGSSLMODE'}) is not supported: ` +
        `use one of ${SSL_MODES.join(', ')}`,
    );
  let ca: string | undefined;
  if (c.ca_file !== null) {
    try {
      ca = await readFile(c.ca_file, 'utf8');
    } catch (err) {
      throw new Error(
        `store.postgres.ca_file ${c.ca_file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
  let ssl: false | ConnectionOptions;
  switch (sslmode) {
    case 'disable':
      ssl = false;
      break;
    case 'require':
      ssl = { rejectUnauthorized: false };
      break;
    case 'verify-ca':
      // The chain is verified; the name is not (libpq's verify-ca).
      ssl = { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
      break;
    case 'verify-full':
      ssl = { rejectUnauthorized: true, ca };
      break;
  }
  const pool: pg.PoolConfig = {
    ...(url !== null ? { connectionString: url } : {}),
    ssl,
    max: c.pool_size,
    statement_timeout: c.statement_timeout,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    application_name: 'egress-witness-detector',
    types,
  };
  return { pool, describe: `${user ?? '(PGUSER)'}@${host}:${port}/${database ?? user ?? '(PGDATABASE)'}`, sslmode };
}

function urlKey(c: PostgresStoreConfig): string {
  return c.url_file !== null ? `the URL in store.postgres.url_file ${c.url_file}` : 'store.postgres.url';
}
