/** Reads a YAML config file and validates it, turning I/O errors into config problems. */
import { readFile, stat } from 'node:fs/promises';
import type { z } from 'zod';
import { documentToJs, loadConfigText, parseYaml, type ConfigKind, type ConfigResult } from '../config/load.js';

export async function readConfigFile<S extends z.ZodType>(path: string, schema: S): Promise<ConfigResult<z.output<S>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, problems: [{ path: '', message: describeFileError(path, err) }] };
  }
  return loadConfigText(text, schema);
}

/**
 * `readConfigFile` for a command that needs a `want` file: given an `other` file (it has some of
 * `other`'s sections and none of `want`'s) it says so in one problem, instead of listing every
 * section as an unknown key.
 */
export async function readConfigFileOf<S extends z.ZodType>(
  path: string,
  schema: S,
  want: ConfigKind,
  other: ConfigKind,
  command: string,
): Promise<ConfigResult<z.output<S>>> {
  const keys = await readTopLevelKeys(path);
  if (keys.ok) {
    const theirs = keys.keys.filter((k) => other.markers.includes(k));
    if (theirs.length > 0 && !keys.keys.some((k) => want.markers.includes(k)))
      return {
        ok: false,
        problems: [
          {
            path: '',
            message: `this is ${article(other.name)} ${other.name} configuration file (it has ${theirs
              .slice(0, 3)
              .map((k) => `"${k}"`)
              .join(
                ', ',
              )}${theirs.length > 3 ? ', …' : ''}), but ${command} needs ${article(want.name)} ${want.name} configuration file (docs/configuration.md#${want.name}-file)`,
          },
        ],
      };
  }
  return readConfigFile(path, schema);
}

function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}

/** Top-level keys of a YAML file (to tell agent from detector files), or the syntax problems. */
export async function readTopLevelKeys(
  path: string,
): Promise<{ ok: true; keys: string[] } | { ok: false; problems: { path: string; message: string; line?: number; column?: number }[] }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, problems: [{ path: '', message: describeFileError(path, err) }] };
  }
  const parsed = parseYaml(text);
  if (!parsed.ok) return parsed;
  const resolved = documentToJs(parsed.doc, parsed.lines);
  if (!resolved.ok) return resolved;
  const js = resolved.value;
  if (js === null || typeof js !== 'object' || Array.isArray(js))
    return { ok: false, problems: [{ path: '', message: 'expected a mapping of sections at the top level' }] };
  return { ok: true, keys: Object.keys(js) };
}

export function describeFileError(path: string, err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') return `${path}: no such file`;
  if (code === 'EACCES') return `${path}: permission denied (the daemon user must be able to read it)`;
  if (code === 'EISDIR') return `${path}: is a directory, expected a file`;
  return `${path}: ${(err as Error).message}`;
}

export type FileCheck = { ok: true } | { ok: false; message: string };

/** A secret or key file must exist, be a file, and not be readable by others (group too when `strict`). */
export async function checkPrivateFile(path: string, what: string, strictGroup: boolean): Promise<FileCheck> {
  try {
    const s = await stat(path);
    if (!s.isFile()) return { ok: false, message: `${path}: ${what} must be a regular file` };
    const mask = strictGroup ? 0o077 : 0o007;
    if ((s.mode & mask) !== 0) {
      return {
        ok: false,
        message: `${path}: ${what} is readable by ${strictGroup ? 'group or others' : 'others'} (mode ${(s.mode & 0o777).toString(8)}); run: chmod ${strictGroup ? '600' : '640'} ${path}`,
      };
    }
    await readFile(path);
    return { ok: true };
  } catch (err) {
    return { ok: false, message: describeFileError(path, err) };
  }
}

export const MIN_SECRET_BYTES = 16;

/**
 * A shared secret (HMAC key, bearer token) as the daemons use it: the file's
 * text, trimmed, at least MIN_SECRET_BYTES long. Throws with the fix in the message.
 */
export async function readSecretFile(path: string, what = 'the secret'): Promise<Buffer> {
  const secret = Buffer.from((await readFile(path, 'utf8')).trim(), 'utf8');
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(
      `${path}: ${what} is shorter than ${MIN_SECRET_BYTES} bytes; generate one with: head -c 32 /dev/urandom | base64 > ${path}`,
    );
  }
  return secret;
}

/** A shared secret file that is private (see checkPrivateFile) and long enough (see readSecretFile). */
export async function checkSecretFile(path: string, what: string): Promise<FileCheck> {
  const priv = await checkPrivateFile(path, what, false);
  if (!priv.ok) return priv;
  try {
    await readSecretFile(path, what);
    return { ok: true };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

export async function checkReadableFile(path: string): Promise<FileCheck> {
  try {
    await readFile(path);
    return { ok: true };
  } catch (err) {
    return { ok: false, message: describeFileError(path, err) };
  }
}
