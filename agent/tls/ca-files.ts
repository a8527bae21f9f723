/**
 * The inspection CA on disk: `ca.pem` (0644, to hand to clients) and
 * `ca-key.pem` (0600, never leaves the gateway).
 *
 * The key file is created with mode 0600 and O_EXCL, so it is never briefly
 * readable by others and never written through a symlink someone planted;
 * `force` removes old files first rather than writing into them. Reading
 * refuses a key that group or others can access, like ssh does, and checks
 * the mode on the same open handle it reads from.
 */
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { loadInspectionCa, type InspectionCa } from './ca.js';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

/** Creates `path` exclusively with `mode` (chmod'ed too, so the umask cannot narrow a 0644 certificate). */
async function writeNew(path: string, content: string, mode: number): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'wx', mode);
  } catch (err) {
    if (isErrno(err, 'EEXIST')) throw new Error(`${path} already exists; pass --force to replace it`, { cause: err });
    throw err;
  }
  try {
    await handle.chmod(mode);
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes the CA pair into `dir` (created 0755 if missing). Refuses to replace existing files unless `force`. */
export async function writeCaFiles(
  dir: string,
  ca: { certPem: string; keyPem: string },
  opts: { force?: boolean } = {},
): Promise<{ certPath: string; keyPath: string }> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (opts.force) {
    await removeIfPresent(keyPath);
    await removeIfPresent(certPath);
  }
  await writeNew(keyPath, ca.keyPem, 0o600);
  try {
    await writeNew(certPath, ca.certPem, 0o644);
  } catch (err) {
    // Never leave a key without its certificate: the pair is written whole or not at all.
    await removeIfPresent(keyPath);
    throw err;
  }
  return { certPath, keyPath };
}

async function readKeyPrivately(keyPath: string): Promise<string> {
  const handle = await open(keyPath, 'r').catch((err: unknown) => {
    throw new Error(`cannot read inspect.ca_key ${keyPath}: ${(err as Error).message}`, { cause: err });
  });
  try {
    const { mode } = await handle.stat();
    if ((mode & 0o077) !== 0) {
      const shown = (mode & 0o777).toString(8).padStart(4, '0');
      throw new Error(`inspect.ca_key ${keyPath} is accessible by group or others (mode ${shown}); run: chmod 600 ${keyPath}`);
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Reads and checks the CA pair named in the config (`inspect.ca_cert`, `inspect.ca_key`). */
export async function readCaFiles(certPath: string, keyPath: string, opts: { now?: Date } = {}): Promise<InspectionCa> {
  const keyPem = await readKeyPrivately(keyPath);
  const certPem = await readFile(certPath, 'utf8').catch((err: unknown) => {
    throw new Error(`cannot read inspect.ca_cert ${certPath}: ${(err as Error).message}`, { cause: err });
  });
  return loadInspectionCa(certPem, keyPem, opts);
}
