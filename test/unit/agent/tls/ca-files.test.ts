import { chmod, lstat, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createInspectionCa } from '../../../../agent/tls/ca.js';
import { readCaFiles, writeCaFiles } from '../../../../agent/tls/ca-files.js';

describe('CA files', () => {
  let pair: { certPem: string; keyPem: string };
  let other: { certPem: string; keyPem: string };
  let dir: string;

  beforeAll(async () => {
    [pair, other] = await Promise.all([createInspectionCa({}), createInspectionCa({})]);
  });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'egress-witness-ca-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

  it('writes ca.pem 0644 and ca-key.pem 0600, into a new folder if needed', async () => {
    const target = join(dir, 'etc', 'egress-witness');
    const { certPath, keyPath } = await writeCaFiles(target, pair);
    expect(certPath).toBe(join(target, 'ca.pem'));
    expect(keyPath).toBe(join(target, 'ca-key.pem'));
    expect(await modeOf(certPath)).toBe(0o644);
    expect(await modeOf(keyPath)).toBe(0o600);
    expect(await readFile(certPath, 'utf8')).toBe(pair.certPem);
    expect(await readFile(keyPath, 'utf8')).toBe(pair.keyPem);
  });

  it('refuses to overwrite without force, and replaces with it', async () => {
    await writeCaFiles(dir, pair);
    await expect(writeCaFiles(dir, other)).rejects.toThrow(/ca-key.pem already exists; pass --force/);
    expect(await readFile(join(dir, 'ca-key.pem'), 'utf8')).toBe(pair.keyPem);
    await chmod(join(dir, 'ca-key.pem'), 0o644);
    await writeCaFiles(dir, other, { force: true });
    expect(await readFile(join(dir, 'ca-key.pem'), 'utf8')).toBe(other.keyPem);
    expect(await readFile(join(dir, 'ca.pem'), 'utf8')).toBe(other.certPem);
    expect(await modeOf(join(dir, 'ca-key.pem'))).toBe(0o600);
  });

  it('leaves no lone key behind when ca.pem already exists', async () => {
    await writeFile(join(dir, 'ca.pem'), "someone else's certificate");
    await expect(writeCaFiles(dir, pair)).rejects.toThrow(/ca.pem already exists/);
    await expect(stat(join(dir, 'ca-key.pem'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('never writes the key through a planted symlink', async () => {
    const victim = join(dir, 'victim');
    await writeFile(victim, 'untouched');
    await symlink(victim, join(dir, 'ca-key.pem'));
    await expect(writeCaFiles(dir, pair)).rejects.toThrow(/already exists/);
    await writeCaFiles(dir, pair, { force: true });
    expect(await readFile(victim, 'utf8')).toBe('untouched');
    expect((await lstat(join(dir, 'ca-key.pem'))).isSymbolicLink()).toBe(false);
  });

  it('reads back what it wrote', async () => {
    const { certPath, keyPath } = await writeCaFiles(dir, pair);
    const ca = await readCaFiles(certPath, keyPath);
    expect(ca.chainPem).toBe(pair.certPem);
  });

  it.each([0o640, 0o604, 0o644, 0o660])('refuses a key file with mode %o and says how to fix it', async (mode) => {
    const { certPath, keyPath } = await writeCaFiles(dir, pair);
    await chmod(keyPath, mode);
    const error = await readCaFiles(certPath, keyPath).catch((err: unknown) => err as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(
      `inspect.ca_key ${keyPath} is accessible by group or others (mode 0${mode.toString(8)}); run: chmod 600 ${keyPath}`,
    );
  });

  it('accepts a key readable only by its owner (0400)', async () => {
    const { certPath, keyPath } = await writeCaFiles(dir, pair);
    await chmod(keyPath, 0o400);
    await expect(readCaFiles(certPath, keyPath)).resolves.toMatchObject({ chainPem: pair.certPem });
  });

  it('names missing files and mismatched pairs', async () => {
    const { certPath, keyPath } = await writeCaFiles(dir, pair);
    await expect(readCaFiles(certPath, join(dir, 'missing.pem'))).rejects.toThrow(/cannot read inspect.ca_key .*missing.pem/);
    await expect(readCaFiles(join(dir, 'missing.pem'), keyPath)).rejects.toThrow(/cannot read inspect.ca_cert .*missing.pem/);
    const otherDir = join(dir, 'other');
    const second = await writeCaFiles(otherDir, other);
    await expect(readCaFiles(certPath, second.keyPath)).rejects.toThrow('inspect.ca_key does not match inspect.ca_cert');
  });
});
