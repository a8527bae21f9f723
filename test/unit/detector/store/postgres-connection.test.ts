/**
 * store.postgres → node-postgres settings: where the URL comes from, which TLS
 * mode applies (the key, the URL, PGSSLMODE, then the default by host), and
 * errors that name the key to fix. No server is contacted.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { postgresTarget, type PostgresStoreConfig } from '../../../../detector/store/postgres-connection.js';

const base: PostgresStoreConfig = {
  url: null,
  url_file: null,
  pool_size: 7,
  statement_timeout: 5_000,
  sslmode: null,
  ca_file: null,
  leader_check: 5_000,
};

describe('postgresTarget', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ew-pg-conn-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a local server is reached in clear by default, another is verified by name', async () => {
    const local = await postgresTarget({ ...base, url: 'postgres://detector:pw@127.0.0.1:5433/ew' }, {});
    expect(local.sslmode).toBe('disable');
    expect(local.pool).toMatchObject({
      ssl: false,
      max: 7,
      statement_timeout: 5_000,
      connectionString: 'postgres://detector:pw@127.0.0.1:5433/ew',
    });
    expect(local.describe).toBe('detector@127.0.0.1:5433/ew');
    const remote = await postgresTarget({ ...base, url: 'postgres://detector@db.example.internal/ew' }, {});
    expect(remote.sslmode).toBe('verify-full');
    expect(remote.pool.ssl).toEqual({ rejectUnauthorized: true, ca: undefined });
  });

  it('the key wins over the URL, the URL over PGSSLMODE; the URL keeps no sslmode of its own', async () => {
    const fromUrl = await postgresTarget(
      { ...base, url: 'postgres://d@db.example.internal/ew?sslmode=require' },
      { PGSSLMODE: 'verify-ca' },
    );
    expect(fromUrl.sslmode).toBe('require');
    expect(fromUrl.pool.ssl).toEqual({ rejectUnauthorized: false });
    expect(fromUrl.pool.connectionString).toBe('postgres://d@db.example.internal/ew');
    const fromKey = await postgresTarget({ ...base, url: 'postgres://d@db.example.internal/ew?sslmode=require', sslmode: 'disable' }, {});
    expect(fromKey.pool.ssl).toBe(false);
    const fromEnv = await postgresTarget({ ...base, url: 'postgres://d@db.example.internal/ew' }, { PGSSLMODE: 'verify-ca' });
    expect(fromEnv.sslmode).toBe('verify-ca');
    const ssl = fromEnv.pool.ssl as { rejectUnauthorized: boolean; checkServerIdentity: () => unknown };
    expect(ssl.rejectUnauthorized).toBe(true);
    expect(ssl.checkServerIdentity()).toBeUndefined();
  });

  it('without a URL the PG* variables name the server', async () => {
    const t = await postgresTarget(base, { PGHOST: 'db.example.internal', PGUSER: 'ew', PGDATABASE: 'witness', PGPORT: '6432' });
    expect(t.pool.connectionString).toBeUndefined();
    expect(t.describe).toBe('ew@db.example.internal:6432/witness');
    expect(t.sslmode).toBe('verify-full');
    const socket = await postgresTarget(base, { PGHOST: '/var/run/postgresql' });
    expect(socket.sslmode).toBe('disable');
  });

  it('url_file holds the URL (the password stays out of the configuration); ca_file the CA', async () => {
    await writeFile(join(dir, 'url'), 'postgres://ew:s3cret@db.example.internal/witness\n');
    await writeFile(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
    const t = await postgresTarget({ ...base, url_file: join(dir, 'url'), ca_file: join(dir, 'ca.pem') }, {});
    expect(t.pool.connectionString).toBe('postgres://ew:s3cret@db.example.internal/witness');
    expect(t.describe).not.toContain('s3cret');
    expect(t.pool.ssl).toMatchObject({ ca: '-----BEGIN CERTIFICATE-----\n' });
  });

  it('errors name the key to fix', async () => {
    await expect(postgresTarget({ ...base, url_file: join(dir, 'missing') }, {})).rejects.toThrow(
      /store\.postgres\.url_file .*missing: cannot read it: ENOENT/,
    );
    await writeFile(join(dir, 'empty'), '\n');
    await expect(postgresTarget({ ...base, url_file: join(dir, 'empty') }, {})).rejects.toThrow(/url_file .* is empty/);
    await expect(postgresTarget({ ...base, url: 'postgres://d@h/ew?sslmode=prefer' }, {})).rejects.toThrow(
      /sslmode prefer \(store\.postgres\.url\) is not supported: use one of disable, require, verify-ca, verify-full/,
    );
    await expect(postgresTarget(base, { PGSSLMODE: 'allow' })).rejects.toThrow(/sslmode allow \(PGSSLMODE\)/);
    await expect(postgresTarget({ ...base, url: 'postgres://d@h/ew?sslrootcert=/x' }, {})).rejects.toThrow(
      /sslrootcert parameter is not supported/,
    );
    await expect(postgresTarget({ ...base, ca_file: join(dir, 'nope.pem') }, {})).rejects.toThrow(/store\.postgres\.ca_file .*nope\.pem/);
  });
});
